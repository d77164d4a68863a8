import { describe, fail, type Tensor } from '@shuffle/core';
import { checkOptionKeys, checkSameDType, type Padding, type Pair } from '../common/args.js';
import { type ConvWindow, checkConvBias, checkConvGradient, checkConvInput, checkConvWeight, convWindow } from '../conv2d/spec.js';

export interface DepthwiseConv2dOptions {
  stride?: Pair;
  padding?: Padding;
  dilation?: Pair;
  /** [C * multiplier] */
  bias?: Tensor;
}

export interface DepthwiseConv2dOps {
  /** x [N, C, H, W], weight [C*m, 1, kH, kW]; output channel o reads input channel floor(o / m). */
  depthwiseConv2d(x: Tensor, weight: Tensor, options?: DepthwiseConv2dOptions): Tensor;
  depthwiseConv2dBackward(
    dy: Tensor,
    x: Tensor,
    weight: Tensor,
    options?: DepthwiseConv2dOptions,
  ): { dx: Tensor; dweight: Tensor; dbias?: Tensor };
}

/** Every number a depthwiseConv2d call needs, resolved and checked. */
export interface DepthwiseConv2dGeometry extends ConvWindow {
  batch: number;
  /** C, the input channels. */
  channels: number;
  inHeight: number;
  inWidth: number;
  /** m: output channels per input channel. */
  multiplier: number;
  /** C * m. */
  outChannels: number;
  bias: Tensor | undefined;
}

const DEPTHWISE_KEYS = ['stride', 'padding', 'dilation', 'bias'] as const;

/**
 * Validates a depthwiseConv2d call and resolves its options. Each input channel c gets its own m filters,
 * weight rows c*m .. c*m + m - 1, so the weight is [C*m, 1, kH, kW] with m >= 1 (PyTorch's layout for
 * conv2d with groups = C, which this op equals). The window rules are conv2d's.
 */
export function depthwiseConv2dGeometry(op: string, x: unknown, weight: unknown, options?: unknown): DepthwiseConv2dGeometry {
  checkConvInput(op, x);
  checkConvWeight(op, weight, '[C*m, 1, kH, kW]');
  const opts = checkOptionKeys(op, options, DEPTHWISE_KEYS);
  const [batch, channels, inHeight, inWidth] = x.shape as [number, number, number, number];
  const [outChannels, perChannel, kernelHeight, kernelWidth] = weight.shape as [number, number, number, number];
  if (perChannel !== 1) {
    fail(op, 'weight', '1 input channel per filter ([C*m, 1, kH, kW]; conv2d with groups takes more)', perChannel);
  }
  if (outChannels < 1 || outChannels % channels !== 0) {
    fail(
      op,
      'weight',
      `a positive multiple of x's ${channels} channels as its first dimension (C * multiplier)`,
      `${outChannels} (shape ${describe(weight.shape)})`,
    );
  }
  if (kernelHeight < 1 || kernelWidth < 1) fail(op, 'weight', 'a kernel of positive height and width', `shape ${describe(weight.shape)}`);
  const bias = checkConvBias(op, opts.bias, outChannels);
  checkSameDType(op, bias ? { x, weight, bias } : { x, weight });
  const window = convWindow(op, { height: inHeight, width: inWidth }, { height: kernelHeight, width: kernelWidth }, opts);
  return { batch, channels, inHeight, inWidth, multiplier: outChannels / channels, outChannels, bias, ...window };
}

/** Validates a depthwiseConv2dBackward call: the forward's checks, then dy (shape, layout of x, dtype). */
export function checkDepthwiseConv2dBackward(dy: unknown, x: unknown, weight: unknown, options?: unknown): DepthwiseConv2dGeometry {
  const op = 'depthwiseConv2dBackward';
  const g = depthwiseConv2dGeometry(op, x, weight, options);
  checkConvGradient(op, 'depthwiseConv2d', dy, x as Tensor, g);
  return g;
}
