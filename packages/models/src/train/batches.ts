import { type DType, fail, type Rng, Tensor } from '@shuffle/core';
import type { ImageDataset } from '../data/dataset.js';

/** A batch ready for a model: x [B, C, H, W] (NCHW) and one label per image. */
export interface Batch {
  readonly x: Tensor;
  readonly labels: Int32Array;
  /** Positions of the images in the dataset. */
  readonly indices: readonly number[];
}

export interface AugmentOptions {
  /**
   * Moves each training image by a random whole number of pixels in [-maxShift, maxShift] along each
   * axis, filling with 0 (the background). A digit moved by a pixel or two is still the same digit, so
   * the model sees more variety than the 8,000 images hold.
   */
  maxShift: number;
}

export interface BatchOptions {
  dtype?: DType;
  /** Augmentation, drawn from `rng` (required with it). */
  augment?: AugmentOptions;
  rng?: Rng;
}

/** The images at `indices` as one batch tensor, augmented when asked. */
export function makeBatch(data: ImageDataset, indices: readonly number[], options: BatchOptions = {}): Batch {
  const op = 'makeBatch';
  const { dtype = 'float32', augment, rng } = options;
  if (indices.length === 0) fail(op, 'indices', 'at least one index', 'none');
  const { channels, height, width } = data;
  const pixels = channels * height * width;
  const out = dtype === 'float64' ? new Float64Array(indices.length * pixels) : new Float32Array(indices.length * pixels);
  const labels = new Int32Array(indices.length);
  const maxShift = augment ? checkShift(op, augment.maxShift, height, width) : 0;
  if (maxShift > 0 && !rng) fail(op, 'options.rng', 'an Rng to draw the augmentation from', rng);
  indices.forEach((index, b) => {
    if (!Number.isInteger(index) || index < 0 || index >= data.size)
      fail(op, `indices[${b}]`, `an integer in [0, ${data.size - 1}]`, index);
    labels[b] = data.labels[index] as number;
    const source = data.images.subarray(index * pixels, (index + 1) * pixels);
    const target = out.subarray(b * pixels, (b + 1) * pixels);
    if (maxShift === 0 || !rng) {
      target.set(source);
      return;
    }
    const dy = rng.int(2 * maxShift + 1) - maxShift;
    const dx = rng.int(2 * maxShift + 1) - maxShift;
    // target[y][x] = source[y - dy][x - dx] where that lies inside the image, else 0 (already).
    for (let c = 0; c < channels; c++) {
      for (let y = Math.max(0, dy); y < Math.min(height, height + dy); y++) {
        for (let x = Math.max(0, dx); x < Math.min(width, width + dx); x++) {
          target[(c * height + y) * width + x] = source[(c * height + y - dy) * width + x - dx] as number;
        }
      }
    }
  });
  return { x: new Tensor(out, [indices.length, channels, height, width]), labels, indices: [...indices] };
}

export interface EpochBatchOptions extends BatchOptions {
  batchSize: number;
  /** Shuffle the order with `rng` (default true when an rng is given). */
  shuffle?: boolean;
  /** Leave out the last batch when it is smaller than batchSize (batch-norm statistics of a handful of images are noisy). Default false. */
  dropLast?: boolean;
}

/**
 * The batches of one pass over `data`: a seeded shuffle of the order (one draw of `rng` per epoch, so
 * consecutive epochs differ and the same seed repeats the whole run), cut into batches of `batchSize`.
 */
export function* epochBatches(data: ImageDataset, options: EpochBatchOptions): Generator<Batch> {
  const op = 'epochBatches';
  const { batchSize, rng, shuffle = rng !== undefined, dropLast = false } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) fail(op, 'options.batchSize', 'a positive integer', batchSize);
  if (shuffle && !rng) fail(op, 'options.rng', 'an Rng to shuffle with', rng);
  const order = Array.from({ length: data.size }, (_, i) => i);
  if (shuffle && rng) rng.shuffle(order);
  const end = dropLast ? data.size - (data.size % batchSize) : data.size;
  for (let start = 0; start < end; start += batchSize) {
    yield makeBatch(data, order.slice(start, Math.min(start + batchSize, end)), options);
  }
}

/** How many batches `epochBatches` yields. */
export function batchesPerEpoch(size: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(size / batchSize) : Math.ceil(size / batchSize);
}

function checkShift(op: string, maxShift: unknown, height: number, width: number): number {
  if (typeof maxShift !== 'number' || !Number.isInteger(maxShift) || maxShift < 0 || maxShift >= Math.min(height, width)) {
    fail(op, 'options.augment.maxShift', `an integer in [0, ${Math.min(height, width) - 1}]`, maxShift);
  }
  return maxShift;
}
