import { fail, Rng } from '@shuffle/core';

/** Labelled images, all of one size, stored together: image i is `images` [i*C*H*W, (i+1)*C*H*W) in CHW order. */
export interface ImageDataset {
  readonly images: Float32Array;
  readonly labels: Int32Array;
  readonly size: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly classes: number;
}

/** The images at `indices`, in that order (a copy). */
export function subset(data: ImageDataset, indices: readonly number[]): ImageDataset {
  const pixels = data.channels * data.height * data.width;
  const images = new Float32Array(indices.length * pixels);
  const labels = new Int32Array(indices.length);
  indices.forEach((index, i) => {
    if (!Number.isInteger(index) || index < 0 || index >= data.size)
      fail('subset', `indices[${i}]`, `an integer in [0, ${data.size - 1}]`, index);
    images.set(data.images.subarray(index * pixels, (index + 1) * pixels), i * pixels);
    labels[i] = data.labels[index] as number;
  });
  return { ...data, images, labels, size: indices.length };
}

export interface SplitOptions {
  /** How many images go to the test part. */
  testSize: number;
  seed: number;
}

export interface DatasetSplit {
  train: ImageDataset;
  test: ImageDataset;
  /** Where each image of `train` and `test` sits in the whole dataset. */
  trainIndices: number[];
  testIndices: number[];
}

/**
 * A stratified random split: every class gives the test part its share of `testSize` (largest-remainder
 * rounding, ties to the lower class), drawn by a seeded shuffle of that class's images, so both parts
 * keep the class balance of the whole and the same seed gives the same split. Each part keeps the
 * original order of its images.
 */
export function stratifiedSplit(data: ImageDataset, { testSize, seed }: SplitOptions): DatasetSplit {
  const op = 'stratifiedSplit';
  if (!Number.isInteger(testSize) || testSize < 1 || testSize >= data.size) {
    fail(op, 'testSize', `an integer in [1, ${data.size - 1}] (the dataset has ${data.size} images)`, testSize);
  }
  const rng = new Rng(seed);
  const byClass: number[][] = Array.from({ length: data.classes }, () => []);
  for (let i = 0; i < data.size; i++) byClass[data.labels[i] as number]?.push(i);
  const quotas = byClass.map((members) => (testSize * members.length) / data.size);
  const counts = quotas.map(Math.floor);
  let left = testSize - counts.reduce((a, b) => a + b, 0);
  const byRemainder = quotas.map((q, c) => ({ c, r: q - Math.floor(q) })).sort((a, b) => b.r - a.r || a.c - b.c);
  for (const { c } of byRemainder) {
    if (left === 0) break;
    counts[c] = (counts[c] as number) + 1;
    left--;
  }
  const isTest = new Uint8Array(data.size);
  byClass.forEach((members, c) => {
    for (const i of rng.shuffle([...members]).slice(0, counts[c])) isTest[i] = 1;
  });
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < data.size; i++) (isTest[i] ? test : train).push(i);
  return { train: subset(data, train), test: subset(data, test), trainIndices: train, testIndices: test };
}

/** How many images of each class. */
export function classCounts(data: ImageDataset): number[] {
  const counts = new Array<number>(data.classes).fill(0);
  for (const label of data.labels) counts[label] = (counts[label] as number) + 1;
  return counts;
}
