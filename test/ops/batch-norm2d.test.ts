import { LAYOUTS, type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { batchNorm2d, batchNorm2dBackward, batchNorm2dWithSaved } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** A float64 call: x [N, C, H, W] with N*H*W >= 2 (so training is allowed), per-channel parameters, running variances > 0. */
const calls = (layout: Layout) =>
  fc
    .record({
      n: fc.integer({ min: 1, max: 3 }),
      c: fc.integer({ min: 1, max: 4 }),
      h: fc.integer({ min: 1, max: 3 }),
      w: fc.integer({ min: 2, max: 3 }),
      momentum: fc.double({ min: 0, max: 1, noNaN: true }),
      eps: fc.constantFrom(1e-5, 1e-3, 0.5),
      seed: fc.integer(),
    })
    .map(({ n, c, h, w, momentum, eps, seed }) => {
      const opts = { low: -2, high: 2, dtype: 'float64' } as const;
      return {
        x: randomUniform([n, c, h, w], { ...opts, seed, layout, low: -3, high: 5 }),
        gamma: randomUniform([c], { ...opts, seed: seed + 1 }),
        beta: randomUniform([c], { ...opts, seed: seed + 2 }),
        runningMean: randomUniform([c], { ...opts, seed: seed + 3 }),
        runningVar: randomUniform([c], { ...opts, seed: seed + 4, low: 0.1, high: 3 }),
        momentum,
        eps,
      };
    });

/** The values of channel c of x, whatever its layout. */
function channel(x: Tensor, c: number): number[] {
  const [n, , h, w] = x.shape as [number, number, number, number];
  const values: number[] = [];
  for (let b = 0; b < n; b++) for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) values.push(x.get([b, c, i, j]));
  return values;
}

const mean = (v: number[]) => v.reduce((s, a) => s + a, 0) / v.length;
const sumSquares = (v: number[]) => {
  const m = mean(v);
  return v.reduce((s, a) => s + (a - m) ** 2, 0);
};

describe.each(LAYOUTS)('batchNorm2d in %s', (layout) => {
  it('training moves the running statistics by momentum toward the batch mean and UNBIASED variance', () => {
    fc.assert(
      fc.property(calls(layout), ({ x, gamma, beta, runningMean, runningVar, momentum, eps }) => {
        const oldMean = Array.from(runningMean.data);
        const oldVar = Array.from(runningVar.data);
        batchNorm2d(x, gamma, beta, runningMean, runningVar, { training: true, momentum, eps });
        for (let c = 0; c < gamma.size; c++) {
          const values = channel(x, c);
          const unbiased = sumSquares(values) / (values.length - 1);
          expect(runningMean.data[c]).toBeCloseTo((1 - momentum) * (oldMean[c] as number) + momentum * mean(values), 12);
          expect(runningVar.data[c]).toBeCloseTo((1 - momentum) * (oldVar[c] as number) + momentum * unbiased, 12);
        }
      }),
    );
  });

  it('training normalises with the batch mean and BIASED variance: each channel of y has mean beta and std |gamma| sqrt(var / (var + eps))', () => {
    fc.assert(
      fc.property(calls(layout), ({ x, gamma, beta, runningMean, runningVar, eps }) => {
        const { y, saved } = batchNorm2dWithSaved(x, gamma, beta, runningMean, runningVar, { training: true, eps });
        expect(y.layout).toBe(layout);
        for (let c = 0; c < gamma.size; c++) {
          const values = channel(x, c);
          const biased = sumSquares(values) / values.length;
          expect(saved.mean[c]).toBeCloseTo(mean(values), 12);
          expect(saved.invStd[c]).toBeCloseTo(1 / Math.sqrt(biased + eps), 10);
          const out = channel(y, c);
          const g = gamma.data[c] as number;
          expect(mean(out)).toBeCloseTo(beta.data[c] as number, 10);
          expect(sumSquares(out) / out.length).toBeCloseTo((g * g * biased) / (biased + eps), 10);
        }
      }),
    );
  });

  it('inference uses the running statistics and leaves them alone', () => {
    fc.assert(
      fc.property(calls(layout), ({ x, gamma, beta, runningMean, runningVar, momentum, eps }) => {
        const before = [Array.from(runningMean.data), Array.from(runningVar.data)];
        const { y, saved } = batchNorm2dWithSaved(x, gamma, beta, runningMean, runningVar, { training: false, momentum, eps });
        expect([Array.from(runningMean.data), Array.from(runningVar.data)]).toEqual(before);
        expect(Array.from(saved.mean)).toEqual(Array.from(runningMean.data));
        const [n, c, h, w] = x.shape as [number, number, number, number];
        for (let b = 0; b < n; b++)
          for (let ch = 0; ch < c; ch++)
            for (let i = 0; i < h; i++)
              for (let j = 0; j < w; j++) {
                const rm = runningMean.data[ch] as number;
                const rv = runningVar.data[ch] as number;
                const expected =
                  ((gamma.data[ch] as number) * (x.get([b, ch, i, j]) - rm)) / Math.sqrt(rv + eps) + (beta.data[ch] as number);
                expect(y.get([b, ch, i, j])).toBeCloseTo(expected, 12);
              }
      }),
    );
  });

  it('batchNorm2d and batchNorm2dWithSaved give the same output and the same running statistics', () => {
    fc.assert(
      fc.property(calls(layout), fc.boolean(), ({ x, gamma, beta, runningMean, runningVar, momentum, eps }, training) => {
        const [m1, v1, m2, v2] = [runningMean.clone(), runningVar.clone(), runningMean.clone(), runningVar.clone()];
        const y = batchNorm2d(x, gamma, beta, m1, v1, { training, momentum, eps });
        const withSaved = batchNorm2dWithSaved(x, gamma, beta, m2, v2, { training, momentum, eps });
        expect(Array.from(withSaved.y.data)).toEqual(Array.from(y.data));
        expect([Array.from(m2.data), Array.from(v2.data)]).toEqual([Array.from(m1.data), Array.from(v1.data)]);
      }),
    );
  });

  // Adding a constant to a whole channel of x moves the batch mean by the same constant and leaves y
  // unchanged, so in training the gradient along that direction, sum of dx over the channel, is 0.
  // In inference y moves with x, and dx = gamma invStd dy.
  it('training dx sums to zero over each channel; inference dx is gamma * invStd * dy', () => {
    fc.assert(
      fc.property(calls(layout), fc.integer(), ({ x, gamma, beta, runningMean, runningVar, eps }, seed) => {
        const dy = randomUniform(x.shape, { seed, low: -1, high: 1, dtype: 'float64', layout });
        for (const training of [true, false]) {
          const options = { training, eps };
          const { saved } = batchNorm2dWithSaved(x, gamma, beta, runningMean.clone(), runningVar.clone(), options);
          const { dx, dbeta } = batchNorm2dBackward(dy, x, gamma, saved, options);
          expect(dx.layout).toBe(layout);
          for (let c = 0; c < gamma.size; c++) {
            expect(dbeta.data[c]).toBeCloseTo(mean(channel(dy, c)) * channel(dy, c).length, 12);
            if (training) {
              expect(mean(channel(dx, c))).toBeCloseTo(0, 10);
            } else {
              const scale = (gamma.data[c] as number) / Math.sqrt((runningVar.data[c] as number) + eps);
              channel(dx, c).forEach((v, i) => {
                expect(v).toBeCloseTo(scale * (channel(dy, c)[i] as number), 12);
              });
            }
          }
        }
      }),
    );
  });
});

describe('batchNorm2d defaults', () => {
  it('uses momentum 0.1, eps 1e-5 and inference mode', () => {
    const x = randomUniform([2, 1, 1, 2], { seed: 3, dtype: 'float64' });
    const gamma = randomUniform([1], { seed: 4, dtype: 'float64' });
    const beta = randomUniform([1], { seed: 5, dtype: 'float64' });
    const [rm, rv] = [
      randomUniform([1], { seed: 6, dtype: 'float64' }),
      randomUniform([1], { seed: 7, dtype: 'float64', low: 1, high: 2 }),
    ];
    const explicit = batchNorm2d(x, gamma, beta, rm.clone(), rv.clone(), { training: false, momentum: 0.1, eps: 1e-5 });
    expect(Array.from(batchNorm2d(x, gamma, beta, rm.clone(), rv.clone()).data)).toEqual(Array.from(explicit.data));
    const [m1, v1, m2, v2] = [rm.clone(), rv.clone(), rm.clone(), rv.clone()];
    batchNorm2d(x, gamma, beta, m1, v1, { training: true });
    batchNorm2d(x, gamma, beta, m2, v2, { training: true, momentum: 0.1, eps: 1e-5 });
    expect([m1.data[0], v1.data[0]]).toEqual([m2.data[0], v2.data[0]]);
    expect(m1.data[0]).not.toBe(rm.data[0]);
  });
});
