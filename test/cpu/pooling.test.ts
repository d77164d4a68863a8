import { type Layout, Rng, randomUniform, ShuffleArgumentError, type Tensor, tensor } from '@shuffle/core';
import { type AvgPool2dOptions, cpu, type MaxPool2dOptions, reference } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/*
 * The fast pooling kernels against the reference, run in float32 on the same input. The conformance
 * suite's inputs are a few pixels wide, so they rarely reach the unrolled 3x3 interiors; these are wider.
 * Both sum (avg) and compare (max) in the reference's order, so the results must be identical, bit for bit
 * (Object.is: +0 and -0 differ, NaN equals NaN), including the argmax and the backward's accumulations.
 */

const layouts: Layout[] = ['NCHW', 'NHWC'];

function expectIdentical(actual: Tensor, expected: Tensor, label: string): void {
  expect(actual.shape, label).toEqual(expected.shape);
  expect(actual.layout, label).toBe(expected.layout);
  expect(actual.dtype, label).toBe(expected.dtype);
  const a = actual.toArray();
  const b = expected.toArray();
  const first = a.findIndex((v, i) => !Object.is(v, b[i]));
  expect(first, `${label}: first difference at ${first}: ${a[first]} vs ${b[first]}`).toBe(-1);
}

/** float32 input of `shape` in `layout`, elements from `draw`. */
function input(shape: number[], layout: Layout, draw: () => number): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: size }, draw), shape).toLayout(layout);
}

/** Draws from few values, so windows hold ties, with NaN, -0 and -Infinity now and then. */
function tieHeavy(rng: Rng): () => number {
  const specials = [Number.NaN, -0, 0, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY];
  return () => (rng.int(10) === 0 ? (specials[rng.int(specials.length)] as number) : rng.int(4) - 2);
}

/**
 * Replaces some elements of a float32 tensor by NaNs of other bit patterns: with the sign bit set (what
 * x86 arithmetic makes, e.g. 0 * Infinity), with payloads, signalling. All compare alike, so only the
 * first in a window may win.
 */
function withOddNaNs(x: Tensor, rng: Rng): Tensor {
  const patterns = [0xffc00000, 0x7fc00123, 0xffc00077, 0x7f800001, 0xff800005];
  const bits = new Int32Array(x.data.buffer, x.data.byteOffset, x.data.length);
  for (let e = 0; e < bits.length; e++) if (rng.int(12) === 0) bits[e] = patterns[rng.int(patterns.length)] as number;
  return x;
}

interface Axis {
  kernel: number;
  stride: number;
  dilation: number;
  padBefore: number;
  padAfter: number;
  size: number;
}

/** One axis of a pooling window, on inputs wide enough (up to 14 past the window) to have an interior. */
const axis = (maxDilation: number): fc.Arbitrary<Axis> =>
  fc
    .record({
      kernel: fc.integer({ min: 1, max: 4 }),
      stride: fc.integer({ min: 1, max: 3 }),
      dilation: fc.integer({ min: 1, max: maxDilation }),
      padBefore: fc.nat(2),
      padAfter: fc.nat(2),
      extra: fc.integer({ min: -3, max: 14 }),
    })
    .map(({ kernel, stride, dilation, padBefore, padAfter, extra }) => {
      padBefore = Math.min(padBefore, Math.floor(kernel / 2));
      padAfter = Math.min(padAfter, Math.floor(kernel / 2));
      const span = dilation * (kernel - 1) + 1;
      return { kernel, stride, dilation, padBefore, padAfter, size: Math.max(1, span - padBefore - padAfter, span + extra) };
    });

const poolCall = (maxDilation: number) =>
  fc.record({
    height: axis(maxDilation),
    width: axis(maxDilation),
    batch: fc.integer({ min: 1, max: 2 }),
    channels: fc.integer({ min: 1, max: 9 }),
    ceilMode: fc.boolean(),
    countIncludePad: fc.boolean(),
    layout: fc.constantFrom<Layout>('NCHW', 'NHWC'),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  });

type Call = ReturnType<typeof poolCall> extends fc.Arbitrary<infer T> ? T : never;

function maxOptions(c: Call): MaxPool2dOptions {
  return {
    kernelSize: [c.height.kernel, c.width.kernel],
    stride: [c.height.stride, c.width.stride],
    dilation: [c.height.dilation, c.width.dilation],
    padding: [c.height.padBefore, c.height.padAfter, c.width.padBefore, c.width.padAfter],
    ceilMode: c.ceilMode,
  };
}

function avgOptions(c: Call): AvgPool2dOptions {
  const { dilation: _, ...options } = maxOptions(c);
  return { ...options, countIncludePad: c.countIncludePad };
}

/** Runs `f`, or skips the case when the geometry is one the op rejects (a dilated window over padding only). */
function valid<T>(f: () => T): T {
  try {
    return f();
  } catch (error) {
    fc.pre(!(error instanceof ShuffleArgumentError));
    throw error;
  }
}

function checkMax(x: Tensor, options: MaxPool2dOptions, seed: number, label: string): void {
  const expected = valid(() => reference.maxPool2dWithSaved(x, options));
  const { y, saved } = cpu.maxPool2dWithSaved(x, options);
  expectIdentical(y, expected.y, `${label} WithSaved y`);
  expect(Array.from(saved.argmax), `${label} argmax`).toEqual(Array.from(expected.saved.argmax));
  expectIdentical(cpu.maxPool2d(x, options), expected.y, `${label} maxPool2d`);
  const dy = randomUniform(y.shape, { seed, low: -1, high: 1, layout: x.layout });
  const dx = reference.maxPool2dBackward(dy, x, options, expected.saved).dx;
  expectIdentical(cpu.maxPool2dBackward(dy, x, options, saved).dx, dx, `${label} backward with saved`);
  expectIdentical(cpu.maxPool2dBackward(dy, x, options).dx, dx, `${label} backward recomputing the argmax`);
}

function checkAvg(x: Tensor, options: AvgPool2dOptions, seed: number, label: string): void {
  const expected = valid(() => reference.avgPool2d(x, options));
  expectIdentical(cpu.avgPool2d(x, options), expected, `${label} forward`);
  const dy = randomUniform(expected.shape, { seed, low: -1, high: 1, layout: x.layout });
  expectIdentical(cpu.avgPool2dBackward(dy, x, options).dx, reference.avgPool2dBackward(dy, x, options).dx, `${label} backward`);
}

describe('cpu maxPool2d', () => {
  it('matches the reference bit for bit (first maximum, NaN, -0, argmax) on wide random windows', () => {
    fc.assert(
      fc.property(poolCall(2), (c) => {
        const rng = new Rng(c.seed);
        const x = withOddNaNs(input([c.batch, c.channels, c.height.size, c.width.size], c.layout, tieHeavy(rng)), rng);
        checkMax(x, maxOptions(c), c.seed, c.layout);
      }),
      { numRuns: 250, seed: 1 },
    );
  });

  for (const layout of layouts) {
    it(`ShuffleNet's stem pool (3x3 s2 p1, 24 channels), ${layout}`, () => {
      const rng = new Rng(3);
      const x = withOddNaNs(input([2, 24, 17, 20], layout, tieHeavy(rng)), rng);
      checkMax(x, { kernelSize: 3, stride: 2, padding: 1 }, 4, layout);
      checkMax(x, { kernelSize: 3, stride: 1, padding: 1 }, 4, layout);
      checkMax(randomUniform([1, 24, 22, 22], { seed: 5, layout }), { kernelSize: 3, stride: 2, padding: 1 }, 6, layout);
    });

    it(`never lets the padding win, even over -Infinity, ${layout}`, () => {
      const x = input([1, 3, 9, 8], layout, () => Number.NEGATIVE_INFINITY);
      checkMax(x, { kernelSize: 3, stride: 1, padding: 1 }, 7, layout);
      checkMax(x, { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }, 8, layout);
    });
  }
});

describe('cpu avgPool2d', () => {
  it("matches the reference bit for bit (PyTorch's divisors, ceil mode, countIncludePad) on wide random windows", () => {
    fc.assert(
      fc.property(poolCall(1), (c) => {
        const x = input([c.batch, c.channels, c.height.size, c.width.size], c.layout, tieHeavy(new Rng(c.seed)));
        checkAvg(x, avgOptions(c), c.seed, c.layout);
      }),
      { numRuns: 250, seed: 2 },
    );
  });

  for (const layout of layouts) {
    it(`ShuffleNet's shortcut pools (3x3 s2 p1), ${layout}`, () => {
      checkAvg(randomUniform([2, 480, 14, 14], { seed: 9, layout }), { kernelSize: 3, stride: 2, padding: 1 }, 10, layout);
      checkAvg(randomUniform([1, 24, 15, 16], { seed: 11, layout }), { kernelSize: 3, stride: 2, padding: 1 }, 12, layout);
      checkAvg(
        randomUniform([1, 7, 15, 16], { seed: 13, layout }),
        { kernelSize: 3, stride: 2, padding: 1, countIncludePad: false },
        14,
        layout,
      );
    });

    it(`averages an all -0 window to +0, as the reference's sum starts at 0, ${layout}`, () => {
      checkAvg(
        input([1, 4, 7, 7], layout, () => -0),
        { kernelSize: 3, stride: 1, padding: 1 },
        21,
        layout,
      );
    });
  }
});

describe('cpu globalAvgPool2d', () => {
  for (const layout of layouts) {
    it(`matches the reference bit for bit, ${layout}`, () => {
      for (const shape of [
        [2, 960, 7, 7],
        [3, 5, 1, 1],
        [1, 7, 3, 11],
      ]) {
        const x = randomUniform(shape, { seed: 15, low: -1, high: 1, layout });
        const y = cpu.globalAvgPool2d(x);
        expectIdentical(y, reference.globalAvgPool2d(x), `${shape} forward`);
        const dy = randomUniform(y.shape, { seed: 16, low: -1, high: 1, layout });
        expectIdentical(cpu.globalAvgPool2dBackward(dy, x).dx, reference.globalAvgPool2dBackward(dy, x).dx, `${shape} backward`);
      }
    });
  }
});

describe('cpu pooling scratch', () => {
  it('gives the same results when calls of different sizes alternate', () => {
    const big = randomUniform([1, 40, 12, 12], { seed: 17, layout: 'NHWC' });
    const small = randomUniform([2, 3, 5, 7], { seed: 18, layout: 'NHWC' });
    for (const x of [big, small, big, small]) {
      checkMax(x, { kernelSize: 3, stride: 2, padding: 1 }, 19, 'alternating');
      checkAvg(x, { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }, 20, 'alternating');
      expectIdentical(cpu.globalAvgPool2d(x), reference.globalAvgPool2d(x), 'alternating global');
    }
  });
});
