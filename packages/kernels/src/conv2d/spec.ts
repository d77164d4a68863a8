import { describe, fail, type Tensor } from '@shuffle/core';
import {
  checkOptionKeys,
  checkPositiveInteger,
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

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Padding;
  dilation?: Pair;
  groups?: number;
  /** [Cout]; added to every output pixel of its channel. */
  bias?: Tensor;
}

export interface Conv2dOps {
  /** x [N, Cin, H, W], weight [Cout, Cin/groups, kH, kW] (OIHW) -> [N, Cout, outH, outW] in x's layout. */
  conv2d(x: Tensor, weight: Tensor, options?: Conv2dOptions): Tensor;
  /** dbias only when options.bias was given. */
  conv2dBackward(dy: Tensor, x: Tensor, weight: Tensor, options?: Conv2dOptions): { dx: Tensor; dweight: Tensor; dbias?: Tensor };
}

/**
 * Where a sliding window of taps sits, shared by conv2d and depthwiseConv2d. Output pixel (i, j) reads
 * input row i * strideHeight - pad.top + p * dilationHeight for kernel row p (columns alike); taps that
 * land outside the input read zero.
 */
export interface ConvWindow {
  kernelHeight: number;
  kernelWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  pad: Pad4;
  outHeight: number;
  outWidth: number;
}

/** Every number a conv2d call needs, resolved and checked. */
export interface Conv2dGeometry extends ConvWindow {
  batch: number;
  inChannels: number;
  inHeight: number;
  inWidth: number;
  outChannels: number;
  groups: number;
  /** Cin / groups: the input channels each output channel reads. */
  inChannelsPerGroup: number;
  /** Cout / groups. */
  outChannelsPerGroup: number;
  bias: Tensor | undefined;
}

const CONV2D_KEYS = ['stride', 'padding', 'dilation', 'groups', 'bias'] as const;

/**
 * Resolves stride, dilation and padding (PyTorch's defaults 1, 1, 0) for a kernel sliding over an
 * inHeight x inWidth input, and the output size:
 *   out = floor((in + padBefore + padAfter - span) / stride) + 1,   span = dilation * (k - 1) + 1,
 * which must be at least 1, i.e. the dilated kernel must fit the padded input. 'same' pads so that
 * out = ceil(in / stride) (TensorFlow's rule; PyTorch accepts 'same' only at stride 1, where the two agree).
 * Shapes are non-negative integers by Tensor's construction, so a NaN can only arrive through these options,
 * and the checks below reject it with the rest.
 */
export function convWindow(
  op: string,
  input: { height: number; width: number },
  kernel: { height: number; width: number },
  options: { stride?: unknown; padding?: unknown; dilation?: unknown },
): ConvWindow {
  const [strideHeight, strideWidth] = positivePair(op, 'stride', options.stride ?? 1);
  const [dilationHeight, dilationWidth] = positivePair(op, 'dilation', options.dilation ?? 1);
  const pad = resolvePadding(op, options.padding ?? 0, input, kernel, [strideHeight, strideWidth], [dilationHeight, dilationWidth]);
  const outHeight = windowOutputSize(op, 'height', input.height, pad.top, pad.bottom, kernel.height, strideHeight, dilationHeight);
  const outWidth = windowOutputSize(op, 'width', input.width, pad.left, pad.right, kernel.width, strideWidth, dilationWidth);
  return {
    kernelHeight: kernel.height,
    kernelWidth: kernel.width,
    strideHeight,
    strideWidth,
    dilationHeight,
    dilationWidth,
    pad,
    outHeight,
    outWidth,
  };
}

/** Throws unless x is 4-D with at least one channel, row and column (an empty batch, N = 0, is allowed). */
export function checkConvInput(op: string, x: unknown): asserts x is Tensor {
  checkTensor(op, 'x', x, 4);
  const [, channels, height, width] = x.shape as [number, number, number, number];
  if (channels < 1 || height < 1 || width < 1) {
    fail(op, 'x', 'at least one channel, row and column', `shape ${describe(x.shape)}`);
  }
}

/** Throws unless weight is a 4-D tensor; `axes` names its dimensions for the message. */
export function checkConvWeight(op: string, weight: unknown, axes: string): asserts weight is Tensor {
  checkTensor(op, 'weight', weight);
  if (weight.rank !== 4) fail(op, 'weight', `a 4-D ${axes} tensor`, `shape ${describe(weight.shape)}`);
}

/** Throws unless bias is undefined or a 1-D tensor of `outChannels` elements. */
export function checkConvBias(op: string, bias: unknown, outChannels: number): Tensor | undefined {
  if (bias === undefined) return undefined;
  checkTensor(op, 'bias', bias, 1);
  checkShapeEquals(op, 'bias', bias.shape, [outChannels], 'one per output channel');
  return bias;
}

/**
 * Validates a conv2d call and resolves its options. Grouped convolution splits the Cin input channels
 * into `groups` consecutive blocks of Cin/groups and the Cout output channels into `groups` blocks of
 * Cout/groups; output block g reads input block g only, so both counts must divide by groups and the
 * weight holds Cin/groups input channels per output channel. x and weight may be stored in different
 * layouts (only their logical shapes matter); x, weight and bias share one dtype.
 */
export function conv2dGeometry(op: string, x: unknown, weight: unknown, options?: unknown): Conv2dGeometry {
  checkConvInput(op, x);
  checkConvWeight(op, weight, '[Cout, Cin/groups, kH, kW]');
  const opts = checkOptionKeys(op, options, CONV2D_KEYS);
  const groups = checkPositiveInteger(op, 'groups', opts.groups ?? 1);
  const [batch, inChannels, inHeight, inWidth] = x.shape as [number, number, number, number];
  if (inChannels % groups !== 0) fail(op, 'groups', `a divisor of the input channel count (x has ${inChannels} channels)`, groups);
  const [outChannels, weightInChannels, kernelHeight, kernelWidth] = weight.shape as [number, number, number, number];
  if (weight.shape.some((d) => d < 1)) {
    fail(op, 'weight', 'a shape [Cout, Cin/groups, kH, kW] of positive sizes', `shape ${describe(weight.shape)}`);
  }
  if (outChannels % groups !== 0) {
    fail(
      op,
      'weight',
      `a number of output channels (dim 0) divisible by groups=${groups}`,
      `${outChannels} (shape ${describe(weight.shape)})`,
    );
  }
  const inChannelsPerGroup = inChannels / groups;
  if (weightInChannels !== inChannelsPerGroup) {
    fail(op, 'weight', `${inChannelsPerGroup} input channels per group (x has ${inChannels} channels, groups=${groups})`, weightInChannels);
  }
  const bias = checkConvBias(op, opts.bias, outChannels);
  checkSameDType(op, bias ? { x, weight, bias } : { x, weight });
  const window = convWindow(op, { height: inHeight, width: inWidth }, { height: kernelHeight, width: kernelWidth }, opts);
  return {
    batch,
    inChannels,
    inHeight,
    inWidth,
    outChannels,
    groups,
    inChannelsPerGroup,
    outChannelsPerGroup: outChannels / groups,
    bias,
    ...window,
  };
}

/** Checks dy against a conv-like forward's output: its shape, x's layout, x's dtype. */
export function checkConvGradient(
  op: string,
  forward: string,
  dy: unknown,
  x: Tensor,
  g: { batch: number; outChannels: number; outHeight: number; outWidth: number },
): asserts dy is Tensor {
  checkTensor(op, 'dy', dy, 4);
  checkShapeEquals(op, 'dy', dy.shape, [g.batch, g.outChannels, g.outHeight, g.outWidth], `${forward}'s output shape`);
  checkSameLayout(op, { x, dy });
  checkSameDType(op, { x, dy });
}

/** Validates a conv2dBackward call: the forward's checks, then dy (shape, layout of x, dtype). */
export function checkConv2dBackward(dy: unknown, x: unknown, weight: unknown, options?: unknown): Conv2dGeometry {
  const op = 'conv2dBackward';
  const g = conv2dGeometry(op, x, weight, options);
  checkConvGradient(op, 'conv2d', dy, x as Tensor, g);
  return g;
}
