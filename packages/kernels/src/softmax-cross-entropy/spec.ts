import { describe, fail, type Tensor } from '@shuffle/core';
import { checkSameDType, checkShapeEquals, checkTensor } from '../common/args.js';

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

/** One softmax cross-entropy call, checked. */
export interface SoftmaxCrossEntropyGeometry {
  batch: number;
  classes: number;
  labelSmoothing: number;
}

/**
 * Checks logits [N, classes] (N >= 1: the mean over an empty batch is 0/0), one integer label in
 * [0, classes) per row, and a label smoothing in [0, 1) (at 1 the target would ignore the labels).
 */
export function softmaxCrossEntropyGeometry(
  op: string,
  logits: unknown,
  labels: unknown,
  options: unknown = {},
): SoftmaxCrossEntropyGeometry {
  checkTensor(op, 'logits', logits, 2);
  const [batch, classes] = logits.shape as [number, number];
  if (batch < 1 || classes < 1) fail(op, 'logits', 'at least one row and one class', `shape ${describe(logits.shape)}`);
  if (!(labels instanceof Int32Array || Array.isArray(labels))) fail(op, 'labels', 'an Int32Array or an array of integers', labels);
  if (labels.length !== batch) fail(op, 'labels', `${batch} labels (one per row of logits)`, `${labels.length}`);
  for (let n = 0; n < batch; n++) {
    const label: unknown = labels[n];
    if (typeof label !== 'number' || !Number.isInteger(label) || label < 0 || label >= classes) {
      fail(op, `labels[${n}]`, `an integer class index in [0, ${classes - 1}]`, label);
    }
  }
  if (options === null || typeof options !== 'object') fail(op, 'options', 'an object like { labelSmoothing }', options);
  const { labelSmoothing = 0 } = options as SoftmaxCrossEntropyOptions;
  if (typeof labelSmoothing !== 'number' || !(labelSmoothing >= 0 && labelSmoothing < 1)) {
    fail(op, 'options.labelSmoothing', 'a number in [0, 1)', labelSmoothing);
  }
  return { batch, classes, labelSmoothing };
}

export function checkSoftmaxCrossEntropyBackward(
  dy: unknown,
  logits: unknown,
  labels: unknown,
  options?: unknown,
): SoftmaxCrossEntropyGeometry {
  const op = 'softmaxCrossEntropyBackward';
  const geometry = softmaxCrossEntropyGeometry(op, logits, labels, options);
  checkTensor(op, 'dy', dy);
  checkShapeEquals(op, 'dy', dy.shape, [], 'the loss is a 0-D tensor');
  checkSameDType(op, { logits: logits as Tensor, dy });
  return geometry;
}
