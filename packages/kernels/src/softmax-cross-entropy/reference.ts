import type { Tensor } from '@shuffle/core';
import { allocLike } from '../common/indexing.js';
import {
  checkSoftmaxCrossEntropyBackward,
  type Labels,
  type SoftmaxCrossEntropyOps,
  type SoftmaxCrossEntropyOptions,
  softmaxCrossEntropyGeometry,
} from './spec.js';

/*
 * For one row z of K logits with label y and smoothing s, the target distribution is
 * t_k = (1 - s) [k = y] + s / K (it sums to 1), p = softmax(z), p_k = exp(z_k) / sum_j exp(z_j), and
 *   loss = -sum_k t_k log p_k = sum_k t_k (lse - z_k) = lse - sum_k t_k z_k,   lse = log sum_j exp(z_j).
 * exp overflows for logits near 89 (float32) or 710 (float64), and the max m of the row can be pulled
 * out exactly: lse = m + log sum_j exp(z_j - m), where every exponent is <= 0 and one of them is 0,
 * so the sum lies in [1, K] and neither overflows nor underflows to log(0).
 * The op returns the mean of the rows' losses.
 */
function logSumExp(logits: Tensor, n: number, classes: number): number {
  const row = n * classes;
  let max = Number.NEGATIVE_INFINITY;
  for (let k = 0; k < classes; k++) max = Math.max(max, logits.data[row + k] as number);
  let sum = 0;
  for (let k = 0; k < classes; k++) sum += Math.exp((logits.data[row + k] as number) - max);
  return max + Math.log(sum);
}

/** t_k for the row whose label is `label`. */
function target(k: number, label: number, classes: number, smoothing: number): number {
  return (k === label ? 1 - smoothing : 0) + smoothing / classes;
}

export const softmaxCrossEntropyReference: SoftmaxCrossEntropyOps = {
  softmaxCrossEntropy(logits, labels: Labels, options?: SoftmaxCrossEntropyOptions) {
    const { batch, classes, labelSmoothing } = softmaxCrossEntropyGeometry('softmaxCrossEntropy', logits, labels, options);
    let total = 0;
    for (let n = 0; n < batch; n++) {
      const lse = logSumExp(logits, n, classes);
      const label = labels[n] as number;
      // sum_k t_k (lse - z_k), split into its one-hot and uniform parts; skipping the uniform part when
      // s = 0 keeps a -Infinity logit (probability 0) from turning 0 * Infinity into NaN, as in PyTorch.
      total += (1 - labelSmoothing) * (lse - (logits.data[n * classes + label] as number));
      if (labelSmoothing > 0) {
        for (let k = 0; k < classes; k++) total += (labelSmoothing / classes) * (lse - (logits.data[n * classes + k] as number));
      }
    }
    const loss = allocLike(logits, []);
    loss.data[0] = total / batch;
    return loss;
  },

  /*
   * Per row, loss = lse - sum_k t_k z_k with d lse / d z_k = exp(z_k) / sum_j exp(z_j) = p_k, so
   *   d loss / d z_k = p_k - t_k.
   * The op averages N rows and the caller scales by dy, so dlogits[n, k] = dy * (p_k - t_k) / N.
   * Both p and t sum to 1 over k, so each row of dlogits sums to 0: adding a constant to a row's
   * logits does not change the softmax.
   */
  softmaxCrossEntropyBackward(dy, logits, labels: Labels, options?: SoftmaxCrossEntropyOptions) {
    const { batch, classes, labelSmoothing } = checkSoftmaxCrossEntropyBackward(dy, logits, labels, options);
    const scale = (dy.data[0] as number) / batch;
    const dlogits = allocLike(logits, logits.shape);
    for (let n = 0; n < batch; n++) {
      const lse = logSumExp(logits, n, classes);
      const label = labels[n] as number;
      for (let k = 0; k < classes; k++) {
        const p = Math.exp((logits.data[n * classes + k] as number) - lse);
        dlogits.data[n * classes + k] = scale * (p - target(k, label, classes, labelSmoothing));
      }
    }
    return { dlogits };
  },
};
