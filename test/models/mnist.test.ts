import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { classCounts, type ImageDataset, imageToText, loadMnistDigits, mnistFromDigitFiles, stratifiedSplit } from '@shuffle/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The `mnist` package's digit files (a root devDependency, pinned at 1.1.0). */
const digitsDir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
/** Images per digit in the package, counted from its files (10,000 in all). */
const COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];

describe('MNIST digits from the mnist package', () => {
  let data: ImageDataset;
  beforeAll(async () => {
    data = await loadMnistDigits(digitsDir);
  });

  it('holds 10,000 labelled 28x28 grey images in file order', () => {
    expect(data.size).toBe(10000);
    expect([data.channels, data.height, data.width, data.classes]).toEqual([1, 28, 28, 10]);
    expect(data.images.length).toBe(10000 * 784);
    expect(classCounts(data)).toEqual(COUNTS);
    // Labels run 0...0 1...1 ..., and image 1001 is the first of 1.json.
    expect(data.labels[1000]).toBe(0);
    expect(data.labels[1001]).toBe(1);
    const ones = JSON.parse(readFileSync(join(digitsDir, '1.json'), 'utf8')).data as number[];
    expect(Array.from(data.images.subarray(1001 * 784, 1002 * 784))).toEqual(ones.slice(0, 784).map(Math.fround));
    let min = 1;
    let max = 0;
    for (const v of data.images) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    expect([min, max]).toEqual([0, 1]);
  });

  it('splits 8000 / 2000 keeping every class share, the same way for the same seed', () => {
    const split = stratifiedSplit(data, { testSize: 2000, seed: 7 });
    expect([split.train.size, split.test.size]).toEqual([8000, 2000]);
    // 20% of each class, largest remainders rounded up: 200.2 225.4 198.2 206.4 196 172.6 202.8 214 188.8 195.6.
    expect(classCounts(split.test)).toEqual([200, 225, 198, 206, 196, 173, 203, 214, 189, 196]);
    expect(classCounts(split.train)).toEqual(COUNTS.map((n, c) => n - (classCounts(split.test)[c] as number)));
    const all = [...split.trainIndices, ...split.testIndices].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 10000 }, (_, i) => i));
    const i = split.testIndices[5] as number;
    expect(Array.from(split.test.images.subarray(5 * 784, 6 * 784))).toEqual(Array.from(data.images.subarray(i * 784, (i + 1) * 784)));
    expect(split.test.labels[5]).toBe(data.labels[i]);

    const again = stratifiedSplit(data, { testSize: 2000, seed: 7 });
    expect(again.testIndices).toEqual(split.testIndices);
    const other = stratifiedSplit(data, { testSize: 2000, seed: 8 });
    expect(other.testIndices).not.toEqual(split.testIndices);
    expect(() => stratifiedSplit(data, { testSize: 10000, seed: 1 })).toThrow(
      /stratifiedSplit: testSize expects an integer in \[1, 9999\]/,
    );
  });
});

describe('MNIST loading errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shuffle-mnist-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const image = (value: number) => Array.from({ length: 784 }, () => value);

  /** A folder with ten files, `broken` replacing some of them (null: no file). */
  function folder(name: string, broken: Record<number, string | null> = {}): string {
    const path = join(dir, name);
    mkdirSync(path);
    for (let d = 0; d < 10; d++) {
      const text = d in broken ? broken[d] : JSON.stringify({ data: image(d / 10) });
      if (text !== null && text !== undefined) writeFileSync(join(path, `${d}.json`), text);
    }
    return path;
  }

  it('a well-formed folder loads', async () => {
    const data = await loadMnistDigits(folder('good'));
    expect(data.size).toBe(10);
    expect(Array.from(data.labels)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(data.images[3 * 784]).toBe(Math.fround(0.3));
  });

  it('names the missing folder or file', async () => {
    await expect(loadMnistDigits(join(dir, 'nowhere'))).rejects.toThrow(
      /loadMnistDigits: path expects a readable file, got .*nowhere\/0.json \(ENOENT\)/,
    );
    await expect(loadMnistDigits(folder('missing', { 4: null }))).rejects.toThrow(/got .*missing\/4.json \(ENOENT\)/);
    await expect(loadMnistDigits('')).rejects.toThrow(/loadMnistDigits: directory expects a folder path/);
  });

  it('names the malformed file and what is wrong with it', async () => {
    await expect(loadMnistDigits(folder('json', { 2: '{"data": [0, 1' }))).rejects.toThrow(
      /loadMnistDigits: .*json\/2.json expects valid JSON/,
    );
    await expect(loadMnistDigits(folder('shape', { 3: '{"pixels": []}' }))).rejects.toThrow(
      /mnistFromDigitFiles: 3.json expects an object \{ data: number\[\] \}, got object/,
    );
    await expect(loadMnistDigits(folder('length', { 5: JSON.stringify({ data: image(0).slice(1) }) }))).rejects.toThrow(
      /5.json data expects a non-zero multiple of 784 values \(28x28 per image\), got 783 values/,
    );
    const bad = image(0);
    bad[17] = 255;
    await expect(loadMnistDigits(folder('range', { 9: JSON.stringify({ data: bad }) }))).rejects.toThrow(
      /9.json data\[17\] expects a grey value in \[0, 1\], got 255/,
    );
    expect(() => mnistFromDigitFiles([])).toThrow(/files expects ten parsed files, 0.json to 9.json/);
    expect(() => mnistFromDigitFiles([...Array(9).fill({ data: image(0) }), { data: ['x', ...image(0).slice(1)] }])).toThrow(
      /9.json data\[0\] expects a grey value in \[0, 1\], got x/,
    );
  });
});

describe('imageToText', () => {
  it('shades each block by its mean', () => {
    // 4x4: top-left block all ink (@), top-right half ink (0.5 * 9 = 4.5 rounds to shade 5, +), bottom-left empty, bottom-right a quarter (2.25: shade 2, :).
    const pixels = [1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    expect(imageToText(pixels, 4, 4, 2)).toEqual(['@+', ' :']);
    expect(imageToText(pixels, 4, 4, 1)).toEqual(['@@@ ', '@@@ ', '    ', '   @']);
    expect(() => imageToText(pixels, 5, 4)).toThrow(/imageToText: pixels expects 20 values \(5x4\), got 16/);
  });
});
