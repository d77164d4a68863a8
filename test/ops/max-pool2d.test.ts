import { type Layout, Rng, randomUniform, type Tensor, tensor } from '@shuffle/core';
import { type MaxPool2dOptions, maxPool2d, maxPool2dBackward, maxPool2dWithSaved, reference } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type PoolAxis, type PoolCase, poolCase, pooledLength } from '../conformance/specs/max-pool2d.js';

const layouts = fc.constantFrom<Layout>('NCHW', 'NHWC');

/** A float64 input for a pooling case, with elements from `draw`, stored in `layout`. */
function input(c: PoolCase, layout: Layout, draw: () => number): Tensor {
  const shape = [c.batch, c.channels, c.height.size, c.width.size];
  const size = shape.reduce((a, b) => a * b, 1);
  return tensor(Float64Array.from({ length: size }, draw), shape).toLayout(layout);
}

/** The input rows (or columns) window `o` reads along one axis, in order, padding left out. */
function taps(a: PoolAxis, o: number): number[] {
  const start = o * a.stride - a.padBefore;
  return Array.from({ length: a.kernel }, (_, k) => start + k * a.dilation).filter((i) => i >= 0 && i < a.size);
}

/**
 * The oracle, written as a list search instead of a running maximum: each window's real elements in
 * row-major order; the first NaN if there is one, else the first element equal to the window's maximum.
 */
function oracle(x: Tensor, c: PoolCase): { y: number[]; argmax: number[] } {
  const ceil = c.options.ceilMode ?? false;
  const outHeight = pooledLength(c.height, ceil);
  const outWidth = pooledLength(c.width, ceil);
  const y: number[] = [];
  const argmax: number[] = [];
  for (let n = 0; n < c.batch; n++) {
    for (let ch = 0; ch < c.channels; ch++) {
      for (let oh = 0; oh < outHeight; oh++) {
        for (let ow = 0; ow < outWidth; ow++) {
          const window = taps(c.height, oh).flatMap((h) =>
            taps(c.width, ow).map((w) => ({ index: h * c.width.size + w, value: x.get([n, ch, h, w]) })),
          );
          const firstNaN = window.find((e) => Number.isNaN(e.value));
          const max = Math.max(...window.map((e) => e.value));
          const winner = firstNaN ?? window.find((e) => e.value === max);
          if (!winner) throw new Error('a window without input elements');
          y.push(winner.value);
          argmax.push(winner.index);
        }
      }
    }
  }
  return { y, argmax };
}

describe('maxPool2d', () => {
  it('takes the first maximum (or the first NaN) of each window, on inputs full of ties and NaNs', () => {
    fc.assert(
      fc.property(poolCase({ maxDilation: 3 }), layouts, fc.integer(), (c, layout, seed) => {
        const rng = new Rng(seed);
        // Three values and a NaN now and then: most windows hold ties.
        const x = input(c, layout, () => (rng.int(16) === 0 ? Number.NaN : rng.int(3)));
        const { y, saved } = maxPool2dWithSaved(x, c.options);
        const expected = oracle(x, c);
        expect(y.layout).toBe(layout);
        expect(y.toArray()).toEqual(expected.y);
        expect(Array.from(saved.argmax)).toEqual(expected.argmax);
        expect(maxPool2d(x, c.options).toArray()).toEqual(expected.y);
      }),
      { numRuns: 200 },
    );
  });

  it('never lets padding win: all-negative inputs pool to negative outputs', () => {
    fc.assert(
      fc.property(poolCase({ maxDilation: 3 }), layouts, fc.integer(), (c, layout, seed) => {
        const rng = new Rng(seed);
        // Elements in (-2, -1]; a padding that took part as a 0 would win with 0.
        const y = maxPool2d(
          input(c, layout, () => -1 - rng.uniform()),
          c.options,
        );
        for (const v of y.data) expect(v).toBeLessThanOrEqual(-1);
      }),
    );
  });

  it('keeps argmax in logical order, so a forward in one layout serves a backward in the other', () => {
    fc.assert(
      fc.property(poolCase({ maxDilation: 3 }), fc.integer(), (c, seed) => {
        const rng = new Rng(seed);
        const x = input(c, 'NCHW', () => rng.uniform());
        const { y, saved } = maxPool2dWithSaved(x, c.options);
        const nhwc = maxPool2dWithSaved(x.toLayout('NHWC'), c.options);
        expect(Array.from(nhwc.saved.argmax)).toEqual(Array.from(saved.argmax));
        const dy = randomUniform(y.shape, { seed, dtype: 'float64', layout: 'NHWC' });
        const dx = maxPool2dBackward(dy, x.toLayout('NHWC'), c.options, saved).dx;
        expect(dx.toArray()).toEqual(maxPool2dBackward(dy.toLayout('NCHW'), x, c.options).dx.toArray());
      }),
    );
  });
});

describe('maxPool2dBackward', () => {
  it('conserves the gradient: every dy lands on exactly one input, so sum(dx) = sum(dy)', () => {
    fc.assert(
      fc.property(poolCase({ maxDilation: 3 }), layouts, fc.integer(), (c, layout, seed) => {
        const rng = new Rng(seed);
        const x = input(c, layout, () => rng.uniform());
        const dy = randomUniform(maxPool2d(x, c.options).shape, { seed: rng, dtype: 'float64', layout });
        const dx = maxPool2dBackward(dy, x, c.options).dx;
        const sum = (t: Tensor) => t.toArray().reduce((a, b) => a + b, 0);
        expect(sum(dx)).toBeCloseTo(sum(dy), 10);
      }),
    );
  });

  it('gives all of a window of equal values to its first element', () => {
    fc.assert(
      fc.property(poolCase({ maxDilation: 3 }), layouts, fc.integer(), (c, layout, seed) => {
        const x = input(c, layout, () => 0.5);
        const dy = randomUniform(maxPool2d(x, c.options).shape, { seed, dtype: 'float64', layout });
        const dx = maxPool2dBackward(dy, x, c.options).dx;
        // Window (oh, ow)'s first element is its first real row and first real column.
        const expected = input(c, 'NCHW', () => 0);
        const ceil = c.options.ceilMode ?? false;
        for (let n = 0; n < c.batch; n++) {
          for (let ch = 0; ch < c.channels; ch++) {
            for (let oh = 0; oh < pooledLength(c.height, ceil); oh++) {
              for (let ow = 0; ow < pooledLength(c.width, ceil); ow++) {
                const at = [n, ch, taps(c.height, oh)[0] as number, taps(c.width, ow)[0] as number];
                expected.set(at, expected.get(at) + dy.get([n, ch, oh, ow]));
              }
            }
          }
        }
        expect(dx.toArray()).toEqual(expected.toArray());
      }),
    );
  });

  it('routes every overlapping window to the one maximum they share (hand-checked)', () => {
    // The four 2x2 windows of a 3x3 input at stride 1 all contain the centre 9, so it collects 1+2+3+4.
    const x = tensor([1, 2, 3, 4, 9, 5, 6, 7, 8], [1, 1, 3, 3]);
    const dy = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
    const options: MaxPool2dOptions = { kernelSize: 2, stride: 1 };
    expect(maxPool2dBackward(dy, x, options).dx.toArray()).toEqual([0, 0, 0, 0, 10, 0, 0, 0, 0]);
    // All equal: each window's first element, (0,0), (0,1), (1,0), (1,1), takes its whole dy.
    const ties = tensor([7, 7, 7, 7, 7, 7, 7, 7, 7], [1, 1, 3, 3]);
    expect(maxPool2dBackward(dy, ties, options).dx.toArray()).toEqual([1, 2, 0, 3, 4, 0, 0, 0, 0]);
  });
});

describe('ceil mode with a window overhanging the padded input (PyTorch accepts it)', () => {
  // H = W = 2, kernel 3, stride 2, no padding: floor mode has no full window, ceil mode has one, which
  // starts inside the input and covers both rows and columns.
  const x = tensor([1, 5, 3, 2], [1, 1, 2, 2]);
  it('max pool takes the max over the part inside the input', () => {
    expect(reference.maxPool2d(x, { kernelSize: 3, stride: 2, ceilMode: true }).toArray()).toEqual([5]);
    expect(() => reference.maxPool2d(x, { kernelSize: 3, stride: 2 })).toThrow(/^maxPool2d: kernel height expects/);
  });
  it('avg pool divides by the window cut at the padded edge (2 x 2 here)', () => {
    expect(reference.avgPool2d(x, { kernelSize: 3, stride: 2, ceilMode: true }).toArray()).toEqual([11 / 4]);
  });
});
