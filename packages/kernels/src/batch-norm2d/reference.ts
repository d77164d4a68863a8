import type { Tensor } from '@shuffle/core';
import { allocLike, indexer4 } from '../common/indexing.js';
import {
  type BatchNorm2dOps,
  type BatchNorm2dOptions,
  type BatchNorm2dSaved,
  batchNorm2dGeometry,
  checkBatchNorm2dBackward,
} from './spec.js';

/*
 * Per channel c, over its M = N*H*W values:
 *   xhat = (x - mean[c]) * invStd[c],   invStd[c] = 1 / sqrt(var[c] + eps),   y = gamma[c] * xhat + beta[c]
 * Training takes mean and var from the batch (var biased: divided by M, as the normalisation uses it)
 * and moves the running statistics toward them, the variance unbiased (divided by M - 1) because the
 * running value estimates the population's:
 *   running = (1 - momentum) * running + momentum * batch
 * Inference uses the running statistics and leaves them alone.
 */
function forward(
  op: string,
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  options?: BatchNorm2dOptions,
): { y: Tensor; saved: BatchNorm2dSaved } {
  const { batch, channels, height, width, count, training, momentum, eps } = batchNorm2dGeometry(
    op,
    x,
    gamma,
    beta,
    runningMean,
    runningVar,
    options,
  );
  const at = indexer4(x);
  const mean = new Float64Array(channels);
  const invStd = new Float64Array(channels);
  const batchVariance = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    if (training) {
      let sum = 0;
      for (let n = 0; n < batch; n++) {
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) sum += x.data[at(n, c, h, w)] as number;
        }
      }
      mean[c] = sum / count;
      // A second pass over (x - mean)^2 rather than E[x^2] - mean^2, which cancels badly when |mean| >> std.
      let squares = 0;
      for (let n = 0; n < batch; n++) {
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) squares += ((x.data[at(n, c, h, w)] as number) - (mean[c] as number)) ** 2;
        }
      }
      batchVariance[c] = squares / count;
      invStd[c] = 1 / Math.sqrt((batchVariance[c] as number) + eps);
    } else {
      mean[c] = runningMean.data[c] as number;
      invStd[c] = 1 / Math.sqrt((runningVar.data[c] as number) + eps);
    }
  }

  const y = normalise(x, gamma, beta, mean, invStd);
  if (training) {
    for (let c = 0; c < channels; c++) {
      const unbiased = ((batchVariance[c] as number) * count) / (count - 1);
      runningMean.data[c] = (1 - momentum) * (runningMean.data[c] as number) + momentum * (mean[c] as number);
      runningVar.data[c] = (1 - momentum) * (runningVar.data[c] as number) + momentum * unbiased;
    }
  }
  return { y, saved: { mean, invStd } };
}

/** y = (x - mean[c]) * (gamma[c] * invStd[c]) + beta[c], given the statistics (batchNormRelu2d's backward recomputes its forward's values with it). */
export function normalise(x: Tensor, gamma: Tensor, beta: Tensor, mean: Float64Array, invStd: Float64Array): Tensor {
  const [batch, channels, height, width] = x.shape as [number, number, number, number];
  const at = indexer4(x);
  const y = allocLike(x, x.shape);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      const scale = (gamma.data[c] as number) * (invStd[c] as number);
      for (let h = 0; h < height; h++) {
        for (let w = 0; w < width; w++) {
          const i = at(n, c, h, w);
          y.data[i] = ((x.data[i] as number) - (mean[c] as number)) * scale + (beta.data[c] as number);
        }
      }
    }
  }
  return y;
}

export const batchNorm2dReference: BatchNorm2dOps = {
  batchNorm2d(x, gamma, beta, runningMean, runningVar, options) {
    return forward('batchNorm2d', x, gamma, beta, runningMean, runningVar, options).y;
  },

  batchNorm2dWithSaved(x, gamma, beta, runningMean, runningVar, options) {
    return forward('batchNorm2dWithSaved', x, gamma, beta, runningMean, runningVar, options);
  },

  /*
   * y_i = gamma xhat_i + beta, so dgamma = sum_i dy_i xhat_i and dbeta = sum_i dy_i (sums over one
   * channel's M values), and dL/dxhat_i = g_i := gamma dy_i.
   *
   * Inference: mean and s = invStd are constants, xhat_i = (x_i - mean) s, so dx_i = gamma s dy_i.
   *
   * Training: mu = (1/M) sum_j x_j, var = (1/M) sum_j (x_j - mu)^2, s = (var + eps)^(-1/2) all depend
   * on every x_j:
   *   dmu/dx_j = 1/M
   *   dvar/dx_j = (2/M) (x_j - mu) - (2/M) sum_k (x_k - mu) * dmu/dx_j = (2/M) (x_j - mu)   [sum_k (x_k - mu) = 0]
   *   ds/dx_j = -1/2 (var + eps)^(-3/2) dvar/dx_j = -s^3 (x_j - mu) / M = -s^2 xhat_j / M
   *   dxhat_i/dx_j = s (delta_ij - 1/M) + (x_i - mu) ds/dx_j = s (delta_ij - 1/M - xhat_i xhat_j / M)
   * so dx_j = sum_i g_i dxhat_i/dx_j = (gamma s / M) (M dy_j - sum_i dy_i - xhat_j sum_i dy_i xhat_i)
   *         = (gamma s / M) (M dy_j - dbeta - xhat_j dgamma).
   */
  batchNorm2dBackward(dy, x, gamma, saved, options) {
    const { batch, channels, height, width, count, training } = checkBatchNorm2dBackward(dy, x, gamma, saved, options);
    const at = indexer4(x);
    const xhat = (n: number, c: number, h: number, w: number) =>
      ((x.data[at(n, c, h, w)] as number) - (saved.mean[c] as number)) * (saved.invStd[c] as number);

    const dgamma = allocLike(gamma, gamma.shape);
    const dbeta = allocLike(gamma, gamma.shape);
    const dx = allocLike(x, x.shape);
    for (let c = 0; c < channels; c++) {
      let sumDy = 0;
      let sumDyXhat = 0;
      for (let n = 0; n < batch; n++) {
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) {
            const g = dy.data[at(n, c, h, w)] as number;
            sumDy += g;
            sumDyXhat += g * xhat(n, c, h, w);
          }
        }
      }
      dbeta.data[c] = sumDy;
      dgamma.data[c] = sumDyXhat;

      const scale = (gamma.data[c] as number) * (saved.invStd[c] as number);
      for (let n = 0; n < batch; n++) {
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) {
            const i = at(n, c, h, w);
            const g = dy.data[i] as number;
            dx.data[i] = training ? (scale / count) * (count * g - sumDy - xhat(n, c, h, w) * sumDyXhat) : scale * g;
          }
        }
      }
    }
    return { dx, dgamma, dbeta };
  },
};
