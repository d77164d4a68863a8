import type { Tensor } from '@shuffle/core';

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
   * same options (in inference it may be omitted and is rebuilt from runningMean / runningVar).
   */
  batchNorm2dBackward(
    dy: Tensor,
    x: Tensor,
    gamma: Tensor,
    saved: BatchNorm2dSaved,
    options?: BatchNorm2dOptions,
  ): { dx: Tensor; dgamma: Tensor; dbeta: Tensor };
}
