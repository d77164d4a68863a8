import { Tensor } from '@shuffle/core';
import { resultF32 } from '../common/arena.js';
import { softmaxCrossEntropyReference } from './reference.js';
import {
  checkSoftmaxCrossEntropyBackward,
  type Labels,
  type SoftmaxCrossEntropyOps,
  type SoftmaxCrossEntropyOptions,
  softmaxCrossEntropyGeometry,
} from './spec.js';

/*
 * The reference's math (see reference.ts) row by row over the contiguous [N, classes] logits, with every
 * sum in float64: lse = max + log sum exp(z - max) (two passes over the row, max then exp-sum), and the
 * backward's dy * (p - t) / N. The label-smoothing part of the loss,
 * sum_k (s / K) (lse - z_k) = s lse - (s / K) sum_k z_k, needs only the row sum.
 * float64 (gradient checks only) goes to the reference.
 */

function rowLogSumExp(z: Float32Array, start: number, classes: number): number {
  const end = start + classes;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = start; i < end; i++) {
    const v = z[i] as number;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = start; i < end; i++) sum += Math.exp((z[i] as number) - max);
  return max + Math.log(sum);
}

function meanLoss(z: Float32Array, labels: Labels, batch: number, classes: number, smoothing: number): number {
  let total = 0;
  for (let n = 0; n < batch; n++) {
    const start = n * classes;
    const lse = rowLogSumExp(z, start, classes);
    total += (1 - smoothing) * (lse - (z[start + (labels[n] as number)] as number));
    // Skipped when s = 0, so a -Infinity logit does not turn 0 * Infinity into NaN (as the reference).
    if (smoothing > 0) {
      let rowSum = 0;
      for (let i = start; i < start + classes; i++) rowSum += z[i] as number;
      total += smoothing * lse - (smoothing / classes) * rowSum;
    }
  }
  return total / batch;
}

/** One row's exponentials in float64, reused between calls (grown to the largest class count seen). */
let exps = new Float64Array(0);

/**
 * dz = scale * (p - t) per row, with p_k = e_k / sum_j e_j and e_k = exp(z_k - max): the exponentials are
 * kept (in float64) on the way to their sum, so each logit costs one exp rather than the reference's two.
 */
function lossGrad(
  z: Float32Array,
  dz: Float32Array,
  labels: Labels,
  batch: number,
  classes: number,
  smoothing: number,
  scale: number,
): void {
  if (exps.length < classes) exps = new Float64Array(classes);
  const e = exps;
  const uniform = scale * (smoothing / classes);
  for (let n = 0; n < batch; n++) {
    const start = n * classes;
    let max = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < classes; k++) {
      const v = z[start + k] as number;
      if (v > max) max = v;
    }
    let sum = 0;
    for (let k = 0; k < classes; k++) {
      const v = Math.exp((z[start + k] as number) - max);
      e[k] = v;
      sum += v;
    }
    const perSum = scale / sum;
    const label = labels[n] as number;
    for (let k = 0; k < classes; k++) dz[start + k] = (e[k] as number) * perSum - uniform;
    dz[start + label] = (e[label] as number) * perSum - uniform - scale * (1 - smoothing);
  }
}

export const softmaxCrossEntropyCpu: SoftmaxCrossEntropyOps = {
  softmaxCrossEntropy(logits, labels: Labels, options?: SoftmaxCrossEntropyOptions) {
    const { batch, classes, labelSmoothing } = softmaxCrossEntropyGeometry('softmaxCrossEntropy', logits, labels, options);
    if (logits.dtype === 'float64') return softmaxCrossEntropyReference.softmaxCrossEntropy(logits, labels, options);
    const loss = resultF32(1);
    loss[0] = meanLoss(logits.data as Float32Array, labels, batch, classes, labelSmoothing);
    return new Tensor(loss, []);
  },

  softmaxCrossEntropyBackward(dy, logits, labels: Labels, options?: SoftmaxCrossEntropyOptions) {
    const { batch, classes, labelSmoothing } = checkSoftmaxCrossEntropyBackward(dy, logits, labels, options);
    if (logits.dtype === 'float64') return softmaxCrossEntropyReference.softmaxCrossEntropyBackward(dy, logits, labels, options);
    const dlogits = resultF32(logits.size);
    lossGrad(logits.data as Float32Array, dlogits, labels, batch, classes, labelSmoothing, (dy.data[0] as number) / batch);
    return { dlogits: new Tensor(dlogits, logits.shape) };
  },
};
