import { fail, type Tensor } from '@shuffle/core';
import {
  checkOptionKeys,
  checkSameDType,
  checkSameLayout,
  checkShapeEquals,
  checkTensor,
  type Pad4,
  type Padding,
  type Pair,
  positivePair,
  resolvePadding,
  windowOutputSize,
} from '../common/args.js';

export interface MaxPool2dOptions {
  kernelSize: Pair;
  /** Default: kernelSize. */
  stride?: Pair;
  /** Numeric padding only (PyTorch's rule: at most half the kernel). */
  padding?: Exclude<Padding, 'same' | 'valid'> | 'valid';
  dilation?: Pair;
  ceilMode?: boolean;
}

/**
 * For each output element, the logical flat index h*W + w of the input element that won its window.
 * `argmax` lists the output elements in logical [N, C, outH, outW] row-major order, whatever the
 * layout, so a forward in one layout and a backward in the other agree.
 */
export interface MaxPool2dSaved {
  argmax: Int32Array;
}

export interface MaxPool2dOps {
  maxPool2d(x: Tensor, options: MaxPool2dOptions): Tensor;
  maxPool2dWithSaved(x: Tensor, options: MaxPool2dOptions): { y: Tensor; saved: MaxPool2dSaved };
  /** Without `saved`, the argmax is recomputed from x. */
  maxPool2dBackward(dy: Tensor, x: Tensor, options: MaxPool2dOptions, saved?: MaxPool2dSaved): { dx: Tensor };
}

/** Every number a 2-D pooling call needs, resolved and checked. Average pooling shares it (dilation 1). */
export interface Pool2dGeometry {
  batch: number;
  channels: number;
  inHeight: number;
  inWidth: number;
  kernelHeight: number;
  kernelWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  pad: Pad4;
  ceilMode: boolean;
  outHeight: number;
  outWidth: number;
}

const MAX_POOL_KEYS = ['kernelSize', 'stride', 'padding', 'dilation', 'ceilMode'] as const;

/**
 * The checks and output-shape rule shared by max and average pooling, PyTorch's:
 * - stride defaults to the kernel size; kernel, stride and dilation are positive integers;
 * - padding is at most half the (undilated) kernel on every side, floor(k / 2), so that no window of
 *   consecutive taps lies wholly in the padding (PyTorch's `pad <= kernel_size / 2`, dilation or not);
 * - out = floor((in + padBefore + padAfter - span) / stride) + 1 with span = dilation * (k - 1) + 1, or
 *   ceil(...) in ceil mode, where the last window must still start inside the input or the left padding;
 * - options are checked by name, so an option the op does not have (average pooling has no dilation)
 *   is an error rather than silently ignored.
 */
export function pool2dGeometry(op: string, x: Tensor, options: unknown, allowedKeys: readonly string[]): Pool2dGeometry {
  checkTensor(op, 'x', x, 4);
  if (options === undefined) fail(op, 'options', 'an object with kernelSize', options);
  const { kernelSize, stride, padding, dilation, ceilMode } = checkOptionKeys(op, options, allowedKeys) as Partial<MaxPool2dOptions>;
  const [batch, channels, inHeight, inWidth] = x.shape as [number, number, number, number];
  const [kernelHeight, kernelWidth] = positivePair(op, 'kernelSize', kernelSize);
  const [strideHeight, strideWidth] = positivePair(op, 'stride', stride ?? kernelSize);
  const [dilationHeight, dilationWidth] = positivePair(op, 'dilation', dilation ?? 1);
  if (ceilMode !== undefined && typeof ceilMode !== 'boolean') fail(op, 'ceilMode', 'a boolean', ceilMode);
  if ((padding as unknown) === 'same') {
    fail(op, 'padding', "a non-negative integer, [h, w], [top, bottom, left, right] or 'valid' (pooling has no 'same')", padding);
  }
  const pad = resolvePadding(
    op,
    padding ?? 0,
    { height: inHeight, width: inWidth },
    { height: kernelHeight, width: kernelWidth },
    [strideHeight, strideWidth],
    [dilationHeight, dilationWidth],
  );
  const maxPadHeight = Math.floor(kernelHeight / 2);
  const maxPadWidth = Math.floor(kernelWidth / 2);
  if (Math.max(pad.top, pad.bottom) > maxPadHeight || Math.max(pad.left, pad.right) > maxPadWidth) {
    fail(
      op,
      'padding',
      `at most half the kernel on each side (<= ${maxPadHeight} for kernel height ${kernelHeight}, <= ${maxPadWidth} for kernel width ${kernelWidth})`,
      padding,
    );
  }
  const ceil = ceilMode ?? false;
  const outHeight = windowOutputSize(op, 'height', inHeight, pad.top, pad.bottom, kernelHeight, strideHeight, dilationHeight, ceil);
  const outWidth = windowOutputSize(op, 'width', inWidth, pad.left, pad.right, kernelWidth, strideWidth, dilationWidth, ceil);
  // Without dilation every window overlaps the input (padding <= k/2 and the start rule above see to it);
  // with dilation a window's taps can straddle the whole input and land on padding only, leaving it no
  // element to pool.
  checkWindowsTouchInput(op, 'height', inHeight, pad.top, kernelHeight, strideHeight, dilationHeight, outHeight, dilation);
  checkWindowsTouchInput(op, 'width', inWidth, pad.left, kernelWidth, strideWidth, dilationWidth, outWidth, dilation);
  return {
    batch,
    channels,
    inHeight,
    inWidth,
    kernelHeight,
    kernelWidth,
    strideHeight,
    strideWidth,
    dilationHeight,
    dilationWidth,
    pad,
    ceilMode: ceil,
    outHeight,
    outWidth,
  };
}

function checkWindowsTouchInput(
  op: string,
  axis: 'height' | 'width',
  size: number,
  padBefore: number,
  kernel: number,
  stride: number,
  dilation: number,
  outSize: number,
  dilationOption: unknown,
): void {
  for (let o = 0; o < outSize; o++) {
    const start = o * stride - padBefore;
    let touches = false;
    for (let k = 0; k < kernel; k++) {
      const i = start + k * dilation;
      if (i >= 0 && i < size) touches = true;
    }
    if (!touches) {
      fail(
        op,
        'dilation',
        `windows that each cover an input element (along the ${axis}, window ${o} of ${outSize} covers only padding)`,
        dilationOption,
      );
    }
  }
}

export function maxPool2dGeometry(x: Tensor, options: MaxPool2dOptions, op = 'maxPool2d'): Pool2dGeometry {
  return pool2dGeometry(op, x, options, MAX_POOL_KEYS);
}

/** Checks a backward call (dy shaped like the forward's output, one layout, one dtype, a usable `saved`). */
export function checkMaxPool2dBackward(dy: Tensor, x: Tensor, options: MaxPool2dOptions, saved?: MaxPool2dSaved): Pool2dGeometry {
  const op = 'maxPool2dBackward';
  const g = maxPool2dGeometry(x, options, op);
  const outShape = [g.batch, g.channels, g.outHeight, g.outWidth];
  checkTensor(op, 'dy', dy);
  checkShapeEquals(op, 'dy', dy.shape, outShape, "maxPool2d's output shape");
  checkSameLayout(op, { x, dy });
  checkSameDType(op, { x, dy });
  if (saved !== undefined) {
    if (typeof saved !== 'object' || saved === null || !(saved.argmax instanceof Int32Array)) {
      fail(op, 'saved', 'an object { argmax: Int32Array } from maxPool2dWithSaved', saved);
    }
    const count = g.batch * g.channels * g.outHeight * g.outWidth;
    if (saved.argmax.length !== count) {
      fail(op, 'saved.argmax', `${count} entries (one per element of the output [${outShape.join(', ')}])`, `${saved.argmax.length}`);
    }
    const planeSize = g.inHeight * g.inWidth;
    const argmax = saved.argmax;
    for (let i = 0; i < argmax.length; i++) {
      const index = argmax[i] as number;
      if (index < 0 || index >= planeSize) fail(op, `saved.argmax[${i}]`, `an index h * W + w in [0, ${planeSize - 1}]`, index);
    }
  }
  return g;
}
