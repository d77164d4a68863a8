import { describe, fail, type Layout, Tensor } from '@shuffle/core';

/** A number for both spatial axes, or [height, width]. */
export type Pair = number | readonly [number, number];
/** PyTorch-style padding, plus explicit [top, bottom, left, right] and TensorFlow's 'valid' / 'same'. */
export type Padding = number | readonly [number, number] | readonly [number, number, number, number] | 'valid' | 'same';

/** Padding resolved to four explicit amounts. */
export interface Pad4 {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/**
 * What checkTensor accepts besides a Tensor while `acceptingTensorLikes` runs; nothing otherwise.
 * The gpu backend's device tensors have a Tensor's shape, layout, dtype and rank (all a check reads) but
 * no host data, so only the gpu backend's own checks may take them: a synchronous backend handed one
 * refuses it here instead of reading data that is not there.
 */
let acceptedTensorLike: ((x: unknown) => boolean) | undefined;

/** Runs `check` (an op's argument checks) with the values for which `accept` holds passing checkTensor as tensors. */
export function acceptingTensorLikes<R>(accept: (x: unknown) => boolean, check: () => R): R {
  const outer = acceptedTensorLike;
  acceptedTensorLike = accept;
  try {
    return check();
  } finally {
    acceptedTensorLike = outer;
  }
}

/** Throws unless `x` is a Tensor of the given rank (4 means logical [N, C, H, W]). */
export function checkTensor(op: string, argument: string, x: unknown, rank?: number | readonly number[]): asserts x is Tensor {
  if (!(x instanceof Tensor || acceptedTensorLike?.(x))) fail(op, argument, 'a Tensor', x);
  const t = x as Tensor;
  if (rank === undefined) return;
  const ranks = typeof rank === 'number' ? [rank] : rank;
  if (!ranks.includes(t.rank)) {
    const expected = ranks.map((r) => (r === 4 ? '4-D [N, C, H, W]' : `${r}-D`)).join(' or ');
    fail(op, argument, `a ${expected} tensor`, `shape ${describe(t.shape)}`);
  }
}

/** Ops with several tensor inputs need one layout; returns it. */
export function checkSameLayout(op: string, tensors: Record<string, Tensor>): Layout {
  const entries = Object.entries(tensors).filter(([, t]) => t.rank === 4);
  const first = entries[0];
  if (!first) return 'NCHW';
  for (const [name, t] of entries) {
    if (t.layout !== first[1].layout) {
      fail(op, name, `the layout of ${first[0]} (${first[1].layout}); convert one with toLayout()`, t.layout);
    }
  }
  return first[1].layout;
}

/** Throws unless two tensors have the same dtype (float32 and float64 are never mixed silently). */
export function checkSameDType(op: string, tensors: Record<string, Tensor>): void {
  const entries = Object.entries(tensors);
  const first = entries[0];
  if (!first) return;
  for (const [name, t] of entries) {
    if (t.dtype !== first[1].dtype) fail(op, name, `the dtype of ${first[0]} (${first[1].dtype})`, t.dtype);
  }
}

/** Throws unless `shape` equals `expected` exactly. */
export function checkShapeEquals(op: string, argument: string, shape: readonly number[], expected: readonly number[], why = ''): void {
  if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
    fail(op, argument, `shape ${describe(expected)}${why ? ` (${why})` : ''}`, describe(shape));
  }
}

export function checkPositiveInteger(op: string, argument: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) fail(op, argument, 'a positive integer', value);
  return value;
}

/** A number or [h, w] of positive integers, as [h, w]. */
export function positivePair(op: string, argument: string, value: unknown): [number, number] {
  const pair = toPair(op, argument, value);
  if (!pair.every((v) => Number.isInteger(v) && v >= 1)) fail(op, argument, 'a positive integer or [h, w] of positive integers', value);
  return pair;
}

function toPair(op: string, argument: string, value: unknown): [number, number] {
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number'))
    return [value[0] as number, value[1] as number];
  return fail(op, argument, 'a number or [h, w]', value);
}

/**
 * Resolves padding to four amounts. 'same' pads so that out = ceil(in / stride) (TensorFlow's rule), the
 * odd pixel going to the bottom/right; PyTorch allows 'same' only at stride 1, where both rules agree.
 */
export function resolvePadding(
  op: string,
  padding: unknown,
  input: { height: number; width: number },
  kernel: { height: number; width: number },
  stride: readonly [number, number],
  dilation: readonly [number, number],
): Pad4 {
  if (padding === 'valid') return { top: 0, bottom: 0, left: 0, right: 0 };
  if (padding === 'same') {
    const total = (size: number, k: number, s: number, d: number) => Math.max(0, (Math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size);
    const ph = total(input.height, kernel.height, stride[0], dilation[0]);
    const pw = total(input.width, kernel.width, stride[1], dilation[1]);
    return { top: Math.floor(ph / 2), bottom: ph - Math.floor(ph / 2), left: Math.floor(pw / 2), right: pw - Math.floor(pw / 2) };
  }
  const expected = "a non-negative integer, [h, w], [top, bottom, left, right], 'valid' or 'same'";
  let pad: Pad4;
  if (typeof padding === 'number') pad = { top: padding, bottom: padding, left: padding, right: padding };
  else if (Array.isArray(padding) && padding.length === 2) {
    pad = { top: padding[0], bottom: padding[0], left: padding[1], right: padding[1] };
  } else if (Array.isArray(padding) && padding.length === 4) {
    pad = { top: padding[0], bottom: padding[1], left: padding[2], right: padding[3] };
  } else return fail(op, 'padding', expected, padding);
  if (!Object.values(pad).every((p) => Number.isInteger(p) && p >= 0)) fail(op, 'padding', expected, padding);
  return pad;
}

/**
 * Output length of a sliding window: floor or ceil of (in + padding - dilation*(k-1) - 1) / stride, + 1.
 * Throws when no window fits, naming the op and the sizes involved.
 */
export function windowOutputSize(
  op: string,
  axis: 'height' | 'width',
  size: number,
  padBefore: number,
  padAfter: number,
  kernel: number,
  stride: number,
  dilation: number,
  ceilMode = false,
): number {
  const span = dilation * (kernel - 1) + 1;
  const room = size + padBefore + padAfter - span;
  let out = (ceilMode ? Math.ceil(room / stride) : Math.floor(room / stride)) + 1;
  // PyTorch: in ceil mode the last window may overhang the padded input, but must start inside the
  // input or the left padding, never wholly in the right padding.
  if (ceilMode && (out - 1) * stride >= size + padBefore) out--;
  if (out < 1) {
    fail(op, `kernel ${axis}`, `a window (${span} with dilation) that fits the padded input (${size + padBefore + padAfter})`, kernel);
  }
  return out;
}

/**
 * Checks that `options` is undefined or a plain object holding only `allowedKeys`, so a misspelt option
 * (or `groups` passed to depthwiseConv2d) is an error rather than silently ignored.
 */
export function checkOptionKeys(op: string, options: unknown, allowedKeys: readonly string[]): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    fail(op, 'options', `an object with some of ${allowedKeys.join(', ')}`, options);
  }
  for (const key of Object.keys(options)) {
    if (!allowedKeys.includes(key)) fail(op, 'options', `only the keys ${allowedKeys.join(', ')}`, key);
  }
  return options as Record<string, unknown>;
}
