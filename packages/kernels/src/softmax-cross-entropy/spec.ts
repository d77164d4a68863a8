import type { Tensor } from '@shuffle/core';

export interface SoftmaxCrossEntropyOptions {
  /** Mixes the one-hot target with the uniform distribution: target = (1 - s) * onehot + s / classes. Default 0. */
  labelSmoothing?: number;
}

export type Labels = Int32Array | readonly number[];

export interface SoftmaxCrossEntropyOps {
  /** logits [N, classes], integer labels in [0, classes) -> the mean loss over the batch, a 0-D tensor (shape []). */
  softmaxCrossEntropy(logits: Tensor, labels: Labels, options?: SoftmaxCrossEntropyOptions): Tensor;
  /** dy is the 0-D gradient of the loss (1 for a plain loss); returns the gradient w.r.t. the logits. */
  softmaxCrossEntropyBackward(dy: Tensor, logits: Tensor, labels: Labels, options?: SoftmaxCrossEntropyOptions): { dlogits: Tensor };
}
