import { describe, fail, type Tensor } from '@shuffle/core';
import { checkSameDType, checkSameLayout, checkShapeEquals, checkTensor } from '../common/args.js';

export interface BatchNorm2dOptions {
  /** Training: normalise with the batch's statistics and update the running ones. Default false. */
  training?: boolean;
  /** Default 0.1: running = (1 - momentum) * running + momentum * batch (unbiased variance, as PyTorch). */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
}

/** What the backward needs from the forward: the statistics used to normalise, per channel. */
export interface BatchNorm2dSaved {
  mean: Float64Array;
  /** 1 / sqrt(var + eps) with the variance that was used (batch, biased, in training; running otherwise). */
  invStd: Float64Array;
}

export interface BatchNorm2dOps {
  /**
   * x [N, C, H, W]; gamma, beta, runningMean, runningVar [C]. In training mode runningMean and
   * runningVar are updated in place (they are the layer's buffers).
   */
  batchNorm2d(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor, options?: BatchNorm2dOptions): Tensor;
  batchNorm2dWithSaved(
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    runningMean: Tensor,
    runningVar: Tensor,
    options?: BatchNorm2dOptions,
  ): { y: Tensor; saved: BatchNorm2dSaved };
  /**
   * In training mode the statistics depend on x, so dx has the extra terms of the batch mean and
   * variance; in inference mode they are constants. `saved` comes from batchNorm2dWithSaved with the
   * same x and options (in inference it holds the running statistics the forward used).
   */
  batchNorm2dBackward(
    dy: Tensor,
    x: Tensor,
    gamma: Tensor,
    saved: BatchNorm2dSaved,
    options?: BatchNorm2dOptions,
  ): { dx: Tensor; dgamma: Tensor; dbeta: Tensor };
}

/** PyTorch's defaults for nn.BatchNorm2d. */
export const BATCH_NORM2D_DEFAULTS: Required<BatchNorm2dOptions> = { training: false, momentum: 0.1, eps: 1e-5 };

/** One batch-norm call, checked: the sizes and the options with their defaults filled in. */
export interface BatchNorm2dGeometry extends Required<BatchNorm2dOptions> {
  batch: number;
  channels: number;
  height: number;
  width: number;
  /** N * H * W: how many values each channel's statistics are taken over. */
  count: number;
}

/**
 * Checks x [N, C, H, W], gamma, beta, runningMean, runningVar [C] of x's dtype, and the options.
 * In inference the running variance must be >= 0 (it goes under a square root); in training each
 * channel needs at least 2 values, or its unbiased variance (for the running statistics) is 0/0.
 */
export function batchNorm2dGeometry(
  op: string,
  x: unknown,
  gamma: unknown,
  beta: unknown,
  runningMean: unknown,
  runningVar: unknown,
  options?: unknown,
): BatchNorm2dGeometry {
  const geometry = checkXAndOptions(op, x, options);
  const perChannel = { gamma, beta, runningMean, runningVar };
  for (const [name, t] of Object.entries(perChannel)) checkPerChannel(op, name, t, geometry.channels);
  checkSameDType(op, { x: x as Tensor, ...(perChannel as Record<string, Tensor>) });
  if (!geometry.training) {
    const variance = (runningVar as Tensor).data;
    for (let c = 0; c < geometry.channels; c++) {
      if (!((variance[c] as number) >= 0)) fail(op, `runningVar[${c}]`, 'a variance >= 0', variance[c]);
    }
  }
  return geometry;
}

/**
 * The backward's checks. batchNormRelu2dBackward shares them: it passes its own `op` name and its `beta`
 * (checked like gamma), which batch norm's own backward does not take.
 */
export function checkBatchNorm2dBackward(
  dy: unknown,
  x: unknown,
  gamma: unknown,
  saved: unknown,
  options?: unknown,
  op = 'batchNorm2dBackward',
  beta?: unknown,
  forward = 'batchNorm2d',
): BatchNorm2dGeometry {
  const geometry = checkXAndOptions(op, x, options);
  checkPerChannel(op, 'gamma', gamma, geometry.channels);
  if (beta !== undefined) checkPerChannel(op, 'beta', beta, geometry.channels);
  checkTensor(op, 'dy', dy);
  checkShapeEquals(op, 'dy', dy.shape, (x as Tensor).shape, `${forward}'s output shape`);
  checkSameLayout(op, { x: x as Tensor, dy });
  checkSameDType(op, { x: x as Tensor, gamma: gamma as Tensor, dy, ...(beta === undefined ? {} : { beta: beta as Tensor }) });
  if (saved === null || typeof saved !== 'object') fail(op, 'saved', `the { mean, invStd } returned by ${forward}WithSaved`, saved);
  for (const key of ['mean', 'invStd'] as const) {
    const values = (saved as Partial<BatchNorm2dSaved>)[key];
    if (!(values instanceof Float64Array) || values.length !== geometry.channels) {
      fail(op, `saved.${key}`, `a Float64Array of ${geometry.channels} values (one per channel, from ${forward}WithSaved)`, values);
    }
  }
  return geometry;
}

function checkXAndOptions(op: string, x: unknown, options: unknown = {}): BatchNorm2dGeometry {
  checkTensor(op, 'x', x, 4);
  const [batch, channels, height, width] = x.shape as [number, number, number, number];
  if (options === null || typeof options !== 'object') fail(op, 'options', 'an object like { training, momentum, eps }', options);
  const {
    training = BATCH_NORM2D_DEFAULTS.training,
    momentum = BATCH_NORM2D_DEFAULTS.momentum,
    eps = BATCH_NORM2D_DEFAULTS.eps,
  } = options as BatchNorm2dOptions;
  if (typeof training !== 'boolean') fail(op, 'options.training', 'a boolean', training);
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) fail(op, 'options.momentum', 'a number in [0, 1]', momentum);
  // eps = 0 would divide by zero on any constant channel, so it must be positive.
  if (typeof eps !== 'number' || !(eps > 0 && eps < Number.POSITIVE_INFINITY)) fail(op, 'options.eps', 'a positive finite number', eps);
  const count = batch * height * width;
  if (training && count < 2) {
    fail(op, 'x', `more than 1 value per channel when training (N*H*W = ${count})`, `shape ${describe(x.shape)}`);
  }
  return { batch, channels, height, width, count, training, momentum, eps };
}

function checkPerChannel(op: string, name: string, t: unknown, channels: number): void {
  checkTensor(op, name, t, 1);
  checkShapeEquals(op, name, t.shape, [channels], 'one per channel of x');
}
