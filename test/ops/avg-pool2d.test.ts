import { type Layout, Rng, randomUniform, type Tensor, tensor } from '@shuffle/core';
import { type AvgPool2dOptions, avgPool2d, avgPool2dBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type PoolAxis, type PoolCase, poolCase } from '../conformance/specs/max-pool2d.js';

const layouts = fc.constantFrom<Layout>('NCHW', 'NHWC');

/** The pooling cases without dilation, as average-pooling options. */
const avgCase = poolCase({ maxDilation: 1 }).map((c) => {
  const { dilation: _, ...options } = c.options;
  return { ...c, options: options as AvgPool2dOptions };
});
const hasPadding = (c: PoolCase) => c.height.padBefore + c.height.padAfter + c.width.padBefore + c.width.padAfter > 0;

function input(c: PoolCase, layout: Layout, draw: () => number): Tensor {
  const shape = [c.batch, c.channels, c.height.size, c.width.size];
  const size = shape.reduce((a, b) => a * b, 1);
  return tensor(Float64Array.from({ length: size }, draw), shape).toLayout(layout);
}

const dot = (a: Tensor, b: Tensor) => {
  const u = a.toArray();
  const v = b.toArray();
  return u.reduce((sum, ui, i) => sum + ui * (v[i] as number), 0);
};

function expectClose(actual: number[], expected: number[]) {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((v, i) => {
    expect(v).toBeCloseTo(expected[i] as number, 6);
  });
}

describe('avgPool2d', () => {
  it('keeps a constant without padding, in floor and ceil mode (partial windows divide by their real size)', () => {
    fc.assert(
      fc.property(
        avgCase.filter((c) => !hasPadding(c)),
        layouts,
        fc.double({ min: -10, max: 10, noNaN: true }),
        fc.boolean(),
        (c, layout, value, countIncludePad) => {
          const y = avgPool2d(
            input(c, layout, () => value),
            { ...c.options, countIncludePad },
          );
          for (const v of y.data) expect(v).toBeCloseTo(value, 12);
        },
      ),
    );
  });

  it('keeps a constant with any padding when countIncludePad is false', () => {
    fc.assert(
      fc.property(avgCase, layouts, fc.double({ min: -10, max: 10, noNaN: true }), (c, layout, value) => {
        const y = avgPool2d(
          input(c, layout, () => value),
          { ...c.options, countIncludePad: false },
        );
        for (const v of y.data) expect(v).toBeCloseTo(value, 12);
      }),
    );
  });

  it('with countIncludePad divides by the window cut at the padded edge: a constant c pools to c * real / cut', () => {
    fc.assert(
      fc.property(avgCase, layouts, fc.double({ min: -10, max: 10, noNaN: true }), (c, layout, value) => {
        const y = avgPool2d(
          input(c, layout, () => value),
          { ...c.options, countIncludePad: true },
        );
        // PyTorch's rule, per axis: the window [start, start + k) cut at size + padAfter gives the divisor's
        // factor; cut to [0, size) it gives the number of real elements summed.
        const counts = (a: PoolAxis, o: number) => {
          const start = o * a.stride - a.padBefore;
          const cut = Math.min(start + a.kernel, a.size + a.padAfter) - start;
          const real = Math.min(start + a.kernel, a.size) - Math.max(start, 0);
          return { cut, real };
        };
        const [n, ch, outHeight, outWidth] = y.shape as [number, number, number, number];
        for (let b = 0; b < n; b++) {
          for (let k = 0; k < ch; k++) {
            for (let oh = 0; oh < outHeight; oh++) {
              for (let ow = 0; ow < outWidth; ow++) {
                const rows = counts(c.height, oh);
                const cols = counts(c.width, ow);
                expect(y.get([b, k, oh, ow])).toBeCloseTo((value * rows.real * cols.real) / (rows.cut * cols.cut), 12);
              }
            }
          }
        }
      }),
    );
  });

  it('is the identity with a 1x1 kernel at stride 1', () => {
    fc.assert(
      fc.property(avgCase, layouts, fc.integer(), (c, layout, seed) => {
        const rng = new Rng(seed);
        const x = input(c, layout, () => rng.uniform());
        expect(avgPool2d(x, { kernelSize: 1, stride: 1 }).toArray()).toEqual(x.toArray());
      }),
      { numRuns: 20 },
    );
  });
});

describe('avgPool2dBackward', () => {
  it('is the transpose of the forward: <avgPool(x), dy> = <x, avgPoolBackward(dy)>', () => {
    fc.assert(
      fc.property(avgCase, layouts, fc.integer(), (c, layout, seed) => {
        const rng = new Rng(seed);
        const x = input(c, layout, () => rng.uniform() - 0.5);
        const y = avgPool2d(x, c.options);
        const dy = randomUniform(y.shape, { seed: rng, dtype: 'float64', layout, low: -1, high: 1 });
        const dx = avgPool2dBackward(dy, x, c.options).dx;
        expect(dx.layout).toBe(layout);
        expect(dot(dx, x)).toBeCloseTo(dot(dy, y), 10);
      }),
    );
  });

  it('spreads each dy over the input its window read (hand-checked divisors)', () => {
    // Width 4, kernel 3, stride 2, padding 1, ceil mode: windows [-1, 2), [1, 4), [3, 6).
    const x = tensor([1, 2, 3, 4], [1, 1, 1, 4]);
    const dy = tensor([1, 1, 1], [1, 1, 1, 3]);
    const options: AvgPool2dOptions = { kernelSize: [1, 3], stride: [1, 2], padding: [0, 1], ceilMode: true };
    // countIncludePad: divisors 3, 3 and 2 (the last window cut at the padded edge 5). x0 is in window 0
    // (1/3); x1 in 0 and 1 (2/3); x2 in 1 (1/3); x3 in 1 and 2 (1/3 + 1/2 = 5/6).
    expectClose(avgPool2dBackward(dy, x, options).dx.toArray(), [1 / 3, 2 / 3, 1 / 3, 5 / 6]);
    // Without it: divisors 2, 3 and 1 (the real elements): x0 1/2, x1 1/2 + 1/3, x2 1/3, x3 1/3 + 1.
    expectClose(avgPool2dBackward(dy, x, { ...options, countIncludePad: false }).dx.toArray(), [1 / 2, 5 / 6, 1 / 3, 4 / 3]);
  });
});
