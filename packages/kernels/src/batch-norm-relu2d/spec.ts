import { fail, type Tensor } from '@shuffle/core';
import {
  type BatchNorm2dGeometry,
  type BatchNorm2dOptions,
  type BatchNorm2dSaved,
  batchNorm2dGeometry,
  checkBatchNorm2dBackward,
} from '../batch-norm2d/spec.js';

/**
 * relu(batchNorm2d(x)) as one op: the pair that follows most convolutions in ShuffleNet, in one pass over
 * memory instead of two and without the normalised tensor as an intermediate. Same arguments, options,
 * saved state and checks as batchNorm2d; the backward also takes beta, because the ReLU's mask depends
 * on the pre-activation gamma * xhat + beta, which it recomputes from x and the saved statistics.
 */
export interface BatchNormRelu2dOps {
  batchNormRelu2d(x: Tensor, gamma: Tensor, beta: Tensor, runningMean: Tensor, runningVar: Tensor, options?: BatchNorm2dOptions): Tensor;
  batchNormRelu2dWithSaved(
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    runningMean: Tensor,
    runningVar: Tensor,
    options?: BatchNorm2dOptions,
  ): { y: Tensor; saved: BatchNorm2dSaved };
  batchNormRelu2dBackward(
    dy: Tensor,
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    saved: BatchNorm2dSaved,
    options?: BatchNorm2dOptions,
  ): { dx: Tensor; dgamma: Tensor; dbeta: Tensor };
}

export function batchNormRelu2dGeometry(
  op: 'batchNormRelu2d' | 'batchNormRelu2dWithSaved',
  x: unknown,
  gamma: unknown,
  beta: unknown,
  runningMean: unknown,
  runningVar: unknown,
  options?: unknown,
): BatchNorm2dGeometry {
  return batchNorm2dGeometry(op, x, gamma, beta, runningMean, runningVar, options);
}

export function checkBatchNormRelu2dBackward(
  dy: unknown,
  x: unknown,
  gamma: unknown,
  beta: unknown,
  saved: unknown,
  options?: unknown,
): BatchNorm2dGeometry {
  const op = 'batchNormRelu2dBackward';
  if (beta === undefined) fail(op, 'beta', "a 1-D tensor [C] (the forward's beta: the ReLU's mask depends on it)", beta);
  return checkBatchNorm2dBackward(dy, x, gamma, saved, options, op, beta, 'batchNormRelu2d');
}
