/** randomUniform, randomNormal, heNormal: shapes, layouts, dtypes, ranges, logical draw order, statistics. */
import { type DType, heNormal, Rng, randomNormal, randomUniform, shapeSize, type Tensor } from '@shuffle/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { anyShape, dtypes, indices, layouts, sameElements, shape4 } from './support.js';

const round = (dtype: DType, v: number) => (dtype === 'float32' ? Math.fround(v) : v);
const seedArb = fc.integer({ min: -(2 ** 40), max: 2 ** 40 });
const request = fc.record({ shape: shape4, layout: layouts, dtype: dtypes, seed: seedArb });

type Maker = (shape: number[], options: { seed: number | Rng; layout?: 'NCHW' | 'NHWC'; dtype?: DType }) => Tensor;
/** Each maker, and the element it should store for the next draw of a generator. */
const makers: [string, Maker, (rng: Rng, dtype: DType) => number][] = [
  [
    'randomUniform',
    (s, o) => randomUniform(s, { ...o, low: -2, high: 3 }),
    // Rounding may not reach 3: the largest float32 below 3 is 3 - 2^-22, the largest float64 3 - 2^-51.
    (rng, dtype) => Math.min(round(dtype, -2 + 5 * rng.uniform()), dtype === 'float32' ? 3 - 2 ** -22 : 3 - 2 ** -51),
  ],
  ['randomNormal', (s, o) => randomNormal(s, { ...o, mean: 1, std: 0.5 }), (rng, dtype) => round(dtype, 1 + 0.5 * rng.normal())],
  ['heNormal', (s, o) => heNormal(s, { ...o, fanIn: 8 }), (rng, dtype) => round(dtype, 0.5 * rng.normal())],
];

describe.each(makers)('%s', (_name, make, draw) => {
  it('makes the shape, layout and dtype asked for (NCHW float32 by default)', () => {
    fc.assert(
      fc.property(request, ({ shape, layout, dtype, seed }) => {
        const t = make([...shape], { seed, layout, dtype });
        expect([[...t.shape], t.layout, t.dtype]).toEqual([shape, layout, dtype]);
        expect(t.data).toBeInstanceOf(dtype === 'float64' ? Float64Array : Float32Array);
        const d = make([...shape], { seed });
        expect([d.layout, d.dtype]).toEqual(['NCHW', 'float32']);
      }),
    );
  });

  it('draws in logical order from the seed, so the layout does not change the value at an index', () => {
    fc.assert(
      fc.property(request, ({ shape, dtype, seed }) => {
        const nchw = make([...shape], { seed, dtype, layout: 'NCHW' });
        const nhwc = make([...shape], { seed, dtype, layout: 'NHWC' });
        const rng = new Rng(seed);
        const expected = Array.from({ length: shapeSize(shape) }, () => draw(rng, dtype));
        expect(sameElements(nchw.data, expected)).toBe(true);
        for (const [index] of indices(shape)) expect(Object.is(nhwc.get(index), nchw.get(index))).toBe(true);
      }),
    );
  });

  it('the same seed gives the same tensor; a generator passed as the seed keeps drawing', () => {
    fc.assert(
      fc.property(shape4, seedArb, (shape, seed) => {
        expect(sameElements(make([...shape], { seed }).data, make([...shape], { seed }).data)).toBe(true);
        const rng = new Rng(seed);
        const first = make([...shape], { seed: rng });
        const second = make([...shape], { seed: rng });
        const whole = make([2, ...shape], { seed });
        expect(sameElements([...first.data, ...second.data], whole.data)).toBe(true);
      }),
    );
  });

  it('works for any rank, a scalar shape and empty shapes included', () => {
    fc.assert(
      fc.property(anyShape, seedArb, (shape, seed) => {
        const t = make(shape, { seed });
        expect([...t.shape]).toEqual(shape);
        expect(t.size).toBe(shapeSize(shape));
      }),
    );
  });
});

/** A generator whose uniform() always returns `u`, to reach the ends of randomUniform's range. */
class Constant extends Rng {
  constructor(private readonly u: number) {
    super(0);
  }
  override uniform(): number {
    return this.u;
  }
}

describe('randomUniform ranges', () => {
  const bounds = fc
    .tuple(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.double({ min: -1e6, max: 1e6, noNaN: true }))
    .map(([a, b]): [number, number] => (a < b ? [a, b] : [b, a]))
    .filter(([a, b]) => b - a > 0.125); // float32 values are at most 0.0625 apart below 1e6

  it('every element lies in [low, high), in float32 and float64', () => {
    fc.assert(
      fc.property(bounds, dtypes, seedArb, ([low, high], dtype, seed) => {
        const t = randomUniform([50], { seed, low, high, dtype });
        return t.data.every((x) => x >= low && x < high);
      }),
    );
  });

  it('defaults to [0, 1)', () => {
    const t = randomUniform([1000], { seed: 1 });
    expect(t.data.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(Math.min(...t.data)).toBeLessThan(0.01);
    expect(Math.max(...t.data)).toBeGreaterThan(0.99);
  });

  it('never reaches high, even when the draw rounds up to it', () => {
    const top = 1 - 2 ** -53; // the largest uniform() can give
    expect(randomUniform([1], { seed: new Constant(top) }).data[0]).toBeLessThan(1);
    expect(randomUniform([1], { seed: new Constant(1 - 2 ** -26) }).data[0]).toBeLessThan(1);
    expect(randomUniform([1], { seed: new Constant(top), low: 1, high: 2, dtype: 'float64' }).data[0]).toBeLessThan(2);
    expect(randomUniform([1], { seed: new Constant(top), low: -1, high: 0 }).data[0]).toBeLessThan(0);
    // The largest float32 below 1, and the largest float64 below 2.
    expect(randomUniform([1], { seed: new Constant(top) }).data[0]).toBe(1 - 2 ** -24);
    expect(randomUniform([1], { seed: new Constant(top), low: 1, high: 2, dtype: 'float64' }).data[0]).toBe(2 - 2 ** -52);
  });

  it('stays in range when the bounds are not float32 values', () => {
    for (const [low, high] of [
      [0.7, 0.9], // Math.fround(0.7) < 0.7
      [0.1, 0.3], // Math.fround(0.3) > 0.3
      [-1e39, 1e39], // beyond the float32 range
    ] as const) {
      for (const u of [0, 1e-12, 0.5, 1 - 2 ** -53]) {
        const x = randomUniform([1], { seed: new Constant(u), low, high }).data[0] as number;
        expect(x >= low && x < high, `${x} for u=${u} in [${low}, ${high})`).toBe(true);
      }
    }
  });

  it('a range too narrow for float32 is fine in float64', () => {
    const t = randomUniform([20], { seed: 2, low: 0.5000000001, high: 0.5000000002, dtype: 'float64' });
    expect(t.data.every((x) => x >= 0.5000000001 && x < 0.5000000002)).toBe(true);
  });

  it('low == high gives that value everywhere', () => {
    expect(Array.from(randomUniform([3], { seed: 1, low: 2.5, high: 2.5 }).data)).toEqual([2.5, 2.5, 2.5]);
  });

  it('is about uniform: mean and variance over a large sample (fixed seed)', () => {
    const t = randomUniform([100_000], { seed: 12, low: -3, high: 1 });
    const x = Array.from(t.data);
    const mean = x.reduce((a, b) => a + b, 0) / x.length;
    const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
    // Expected mean -1, variance 16/12; standard errors 0.004 and 0.0012.
    expect(Math.abs(mean + 1)).toBeLessThan(0.02);
    expect(Math.abs(variance - 16 / 12)).toBeLessThan(0.01);
  });
});

function moments(t: Tensor): { mean: number; std: number } {
  const x = Array.from(t.data);
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  return { mean, std: Math.sqrt(x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length) };
}

describe('randomNormal and heNormal statistics (fixed seeds, loose bounds)', () => {
  it('randomNormal has the mean and std asked for', () => {
    const { mean, std } = moments(randomNormal([200, 100], { seed: 21, mean: 3, std: 2 }));
    // Standard errors over 20000 samples: 0.014 for the mean, 0.01 for the std.
    expect(Math.abs(mean - 3)).toBeLessThan(0.07);
    expect(Math.abs(std - 2)).toBeLessThan(0.05);
  });

  it('std 0 gives the mean everywhere', () => {
    expect(Array.from(randomNormal([4], { seed: 1, mean: -1.5, std: 0 }).data)).toEqual([-1.5, -1.5, -1.5, -1.5]);
  });

  it('heNormal has std sqrt(2 / fanIn), fanIn = Cin * kH * kW for a conv weight', () => {
    const w = heNormal([64, 32, 3, 3], { seed: 5 }); // fanIn 288, 18432 samples
    const { mean, std } = moments(w);
    const want = Math.sqrt(2 / 288);
    // Relative standard error of the std: 1 / sqrt(2 * 18432) = 0.5%.
    expect(Math.abs(std / want - 1)).toBeLessThan(0.03);
    expect(Math.abs(mean)).toBeLessThan((5 * want) / Math.sqrt(18432));
  });

  it('heNormal takes fanIn = in for a [out, in] linear weight, and an explicit fanIn wins', () => {
    expect(Math.abs(moments(heNormal([100, 200], { seed: 8 })).std / Math.sqrt(2 / 200) - 1)).toBeLessThan(0.03);
    expect(Math.abs(moments(heNormal([100, 200], { seed: 8, fanIn: 2 })).std - 1)).toBeLessThan(0.03);
  });

  it('heNormal in any layout is randomNormal with std sqrt(2 / fanIn), element for element', () => {
    fc.assert(
      fc.property(shape4, layouts, dtypes, seedArb, fc.integer({ min: 1, max: 1000 }), (shape, layout, dtype, seed, fanIn) => {
        const he = heNormal([...shape], { seed, layout, dtype, fanIn });
        const normal = randomNormal([...shape], { seed, layout, dtype, std: Math.sqrt(2 / fanIn) });
        // Compared with ===, so that 0 + (-0) in randomNormal's mean + std * z does not matter.
        expect(Array.from(he.data).every((x, i) => x === normal.data[i])).toBe(true);
      }),
    );
  });
});
