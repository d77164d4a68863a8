import { fail, type Rng, type Tensor, tensor } from '@shuffle/core';
import { type Backend, softmaxCrossEntropy, softmaxCrossEntropyBackward } from '@shuffle/kernels';
import type { ImageDataset } from '../data/dataset.js';
import type { Model } from '../model.js';
import type { LrSchedule } from '../optim/schedules.js';
import type { Sgd } from '../optim/sgd.js';
import { type AugmentOptions, type Batch, batchesPerEpoch, epochBatches } from './batches.js';

/** What training needs of a model. */
export type TrainableModel = Pick<Model, 'forward' | 'backward'>;

/** Where the loss is computed; by default the fastest CPU backend's. */
export type LossBackend = Pick<Backend, 'softmaxCrossEntropy' | 'softmaxCrossEntropyBackward'>;

const defaultLoss: LossBackend = { softmaxCrossEntropy, softmaxCrossEntropyBackward };

export interface StepOptions {
  /** Learning rate of this step (default: the optimizer's). */
  lr?: number;
  labelSmoothing?: number;
  loss?: LossBackend;
}

export interface StepResult {
  /** Mean loss over the batch (with label smoothing, if any). */
  loss: number;
  /** Images whose largest logit is their label. */
  correct: number;
  size: number;
  lr: number;
}

/**
 * One step of gradient descent on one batch: forward in training mode, mean softmax cross-entropy,
 * backward (which overwrites every parameter's grad), optimizer step.
 */
export function trainStep(model: TrainableModel, optimizer: Sgd, batch: Batch, options: StepOptions = {}): StepResult {
  const { lr = optimizer.lr, labelSmoothing = 0, loss = defaultLoss } = options;
  const logits = model.forward(batch.x, { training: true });
  const lossValue = loss.softmaxCrossEntropy(logits, batch.labels, { labelSmoothing });
  const dLoss = tensor([1], [], 'NCHW', logits.dtype);
  const { dlogits } = loss.softmaxCrossEntropyBackward(dLoss, logits, batch.labels, { labelSmoothing });
  model.backward(dlogits);
  const value = lossValue.data[0] as number;
  if (!Number.isFinite(value)) fail('trainStep', 'loss', 'a finite number (lower the learning rate?)', value);
  optimizer.step(lr);
  return { loss: value, correct: countCorrect(logits, batch.labels), size: batch.labels.length, lr };
}

export interface StepProgress extends StepResult {
  /** Global step index (0-based), counting from `firstStep`. */
  step: number;
  /** Batch index within this epoch and batches in the epoch. */
  batch: number;
  batches: number;
  /** Images trained on so far this epoch. */
  seen: number;
}

export interface TrainEpochOptions {
  batchSize: number;
  /** Draws the epoch's order and augmentation; keep one per run so the run repeats exactly. */
  rng: Rng;
  /** Learning rate per global step (default: the optimizer's lr throughout). */
  schedule?: LrSchedule;
  /** Global step of this epoch's first batch (for the schedule). Default 0. */
  firstStep?: number;
  labelSmoothing?: number;
  augment?: AugmentOptions;
  dropLast?: boolean;
  loss?: LossBackend;
  /** Called after every step. */
  onStep?: (progress: StepProgress) => void;
  /** Checked before every step; true ends the epoch early (a time budget, say). */
  shouldStop?: () => boolean;
}

export interface EpochResult {
  steps: number;
  samples: number;
  /** Mean training loss per image and training accuracy, over the images seen (training mode, augmented). */
  loss: number;
  accuracy: number;
  /** Whether `shouldStop` ended the epoch early. */
  stopped: boolean;
}

/** One pass over `data` in shuffled batches. */
export function trainEpoch(model: TrainableModel, optimizer: Sgd, data: ImageDataset, options: TrainEpochOptions): EpochResult {
  const { batchSize, rng, schedule, firstStep = 0, labelSmoothing, augment, dropLast = false, loss, onStep, shouldStop } = options;
  const batches = batchesPerEpoch(data.size, batchSize, dropLast);
  let steps = 0;
  let seen = 0;
  let lossSum = 0;
  let correct = 0;
  let stopped = false;
  for (const batch of epochBatches(data, { batchSize, rng, augment, dropLast })) {
    if (shouldStop?.()) {
      stopped = true;
      break;
    }
    const step = firstStep + steps;
    const result = trainStep(model, optimizer, batch, { lr: schedule ? schedule(step) : optimizer.lr, labelSmoothing, loss });
    steps++;
    seen += result.size;
    lossSum += result.loss * result.size;
    correct += result.correct;
    onStep?.({ ...result, step, batch: steps - 1, batches, seen });
  }
  return { steps, samples: seen, loss: seen ? lossSum / seen : Number.NaN, accuracy: seen ? correct / seen : Number.NaN, stopped };
}

export interface EvaluateResult {
  correct: number;
  total: number;
  accuracy: number;
  /** Mean loss without label smoothing. */
  loss: number;
  /** The predicted class of every image, in dataset order. */
  predictions: Int32Array;
}

/** Accuracy and loss in evaluation mode (batch norm uses its running statistics), in order, no augmentation. */
export function evaluate(
  model: TrainableModel,
  data: ImageDataset,
  { batchSize = 100, loss = defaultLoss }: { batchSize?: number; loss?: LossBackend } = {},
): EvaluateResult {
  const predictions = new Int32Array(data.size);
  let correct = 0;
  let lossSum = 0;
  for (const batch of epochBatches(data, { batchSize, shuffle: false })) {
    const logits = model.forward(batch.x, { training: false });
    lossSum += (loss.softmaxCrossEntropy(logits, batch.labels).data[0] as number) * batch.labels.length;
    const predicted = argmaxRows(logits);
    predicted.forEach((p, i) => {
      predictions[batch.indices[i] as number] = p;
      if (p === batch.labels[i]) correct++;
    });
  }
  return { correct, total: data.size, accuracy: correct / data.size, loss: lossSum / data.size, predictions };
}

/** The index of each row's largest value (the first, on ties) of a [N, K] tensor. */
export function argmaxRows(logits: Tensor): Int32Array {
  if (logits.rank !== 2) fail('argmaxRows', 'logits', 'a 2-D [N, classes] tensor', logits.shape);
  const [rows, classes] = logits.shape as [number, number];
  const out = new Int32Array(rows);
  for (let n = 0; n < rows; n++) {
    let best = 0;
    for (let k = 1; k < classes; k++) {
      if ((logits.data[n * classes + k] as number) > (logits.data[n * classes + best] as number)) best = k;
    }
    out[n] = best;
  }
  return out;
}

function countCorrect(logits: Tensor, labels: Int32Array): number {
  let correct = 0;
  argmaxRows(logits).forEach((p, i) => {
    if (p === labels[i]) correct++;
  });
  return correct;
}
