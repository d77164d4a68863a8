import { assertClose, type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { type BatchNorm2dOptions, cpu, reference } from '@shuffle/kernels';
import { describe, expect, it } from 'vitest';

/*
 * The conformance suite's random calls have at most 5 channels and a few pixels, so they never reach what
 * the fast batch norm does differently: NHWC pixel tiles (one tile holds 8 to 128 pixels depending on C, so
 * several tiles and a partial last one need more pixels or channels), the two-way unrolled NCHW sums with
 * an odd remainder, ShuffleNet's channel counts, the one-pass variance on data whose mean dwarfs its
 * spread, and the per-channel rows reused between calls of different sizes. Each call here is checked
 * against the float64 reference fed the same float32 values.
 */

const tolerance = { atol: 5e-5, rtol: 2e-4 };
const layouts: Layout[] = ['NCHW', 'NHWC'];
const f64 = (t: Tensor) => t.astype('float64');

interface Params {
  x: Tensor;
  gamma: Tensor;
  beta: Tensor;
  runningMean: Tensor;
  runningVar: Tensor;
  dy: Tensor;
}

function params(shape: [number, number, number, number], layout: Layout, seed: number, low = -2, high = 3): Params {
  const c = shape[1];
  return {
    x: randomUniform(shape, { seed, low, high, layout }),
    gamma: randomUniform([c], { seed: seed + 1, low: -2, high: 2 }),
    beta: randomUniform([c], { seed: seed + 2, low: -1, high: 1 }),
    runningMean: randomUniform([c], { seed: seed + 3, low: -1, high: 1 }),
    runningVar: randomUniform([c], { seed: seed + 4, low: 0.2, high: 3 }),
    dy: randomUniform(shape, { seed: seed + 5, low: -1, high: 1, layout }),
  };
}

/** Forward (with running-statistics update) and backward on cpu and on the float64 reference, compared. */
function checkAgainstReference(p: Params, options: BatchNorm2dOptions, label: string): void {
  const mean32 = p.runningMean.clone();
  const var32 = p.runningVar.clone();
  const mean64 = f64(p.runningMean);
  const var64 = f64(p.runningVar);
  const got = cpu.batchNorm2dWithSaved(p.x, p.gamma, p.beta, mean32, var32, options);
  const want = reference.batchNorm2dWithSaved(f64(p.x), f64(p.gamma), f64(p.beta), mean64, var64, options);
  expect(got.y.layout).toBe(p.x.layout);
  expect(got.y.dtype).toBe('float32');
  assertClose(got.y, want.y, tolerance, `${label} y`);
  assertClose(mean32, mean64, tolerance, `${label} runningMean`);
  assertClose(var32, var64, tolerance, `${label} runningVar`);
  for (let c = 0; c < p.gamma.size; c++) {
    expect(got.saved.mean[c]).toBeCloseTo(want.saved.mean[c] as number, 9);
    expect(Math.abs((got.saved.invStd[c] as number) / (want.saved.invStd[c] as number) - 1)).toBeLessThan(1e-9);
  }

  const grads = cpu.batchNorm2dBackward(p.dy, p.x, p.gamma, got.saved, options);
  const wantGrads = reference.batchNorm2dBackward(f64(p.dy), f64(p.x), f64(p.gamma), want.saved, options);
  expect(grads.dx.layout).toBe(p.x.layout);
  assertClose(grads.dx, wantGrads.dx, tolerance, `${label} dx`);
  assertClose(grads.dgamma, wantGrads.dgamma, tolerance, `${label} dgamma`);
  assertClose(grads.dbeta, wantGrads.dbeta, tolerance, `${label} dbeta`);
}

const shapes: [string, [number, number, number, number]][] = [
  ['ShuffleNet 240 channels at 5x5, batch 2', [2, 240, 5, 5]],
  ['ShuffleNet 960 channels at 3x3 (8-pixel NHWC tiles, partial last tile)', [1, 960, 3, 3]],
  ['2000 channels (tile floor: 8 pixels of 2000)', [1, 2000, 3, 4]],
  ['24 channels at 13x13 (128-pixel NHWC tiles, partial last tile)', [1, 24, 13, 13]],
  ['odd planes (3x5: unrolled NCHW sums with a remainder), batch 3', [3, 7, 3, 5]],
  ['one channel over a long batch', [9, 1, 4, 3]],
  ['1x1 spatial, batch 5', [5, 6, 1, 1]],
];

describe.each(layouts)('cpu batchNorm2d in %s', (layout) => {
  for (const [name, shape] of shapes) {
    it(`training: ${name}`, () => checkAgainstReference(params(shape, layout, 11), { training: true, momentum: 0.3 }, name));
    it(`inference: ${name}`, () => checkAgainstReference(params(shape, layout, 23), { eps: 1e-3 }, name));
  }

  it('training on channels whose mean dwarfs their spread (1e6 +- 0.25) keeps the variance accurate', () => {
    // sum x^2 / M - mean^2 would lose about 1% of the variance here even in float64.
    const p = params([2, 5, 6, 7], layout, 31, 1e6 - 0.25, 1e6 + 0.25);
    // An outlier at the very first value of channel 0 (the one-pass variance's pivot).
    p.x.set([0, 0, 0, 0], 1e6 + 2);
    checkAgainstReference(p, { training: true }, 'large mean');
  });

  it('a constant channel normalises to beta (variance 0, never negative)', () => {
    const p = params([2, 3, 4, 5], layout, 41);
    for (let n = 0; n < 2; n++) for (let h = 0; h < 4; h++) for (let w = 0; w < 5; w++) p.x.set([n, 1, h, w], 0.7);
    checkAgainstReference(p, { training: true }, 'constant channel');
    const y = cpu.batchNorm2d(p.x, p.gamma, p.beta, p.runningMean.clone(), p.runningVar.clone(), { training: true });
    for (let h = 0; h < 4; h++) expect(y.get([1, 1, h, 2])).toBeCloseTo(p.beta.get([1]), 6);
  });

  it('per-channel buffers reused across calls of different sizes give correct results', () => {
    const sequence: [number, number, number, number][] = [
      [1, 960, 2, 2],
      [2, 3, 4, 4],
      [1, 480, 3, 3],
      [2, 3, 4, 4],
      [1, 960, 2, 2],
    ];
    sequence.forEach((shape, i) => {
      checkAgainstReference(params(shape, layout, 50 + i), { training: i % 2 === 0 }, `call ${i}`);
    });
  });

  it('saved statistics are fresh arrays, untouched by later calls', () => {
    const p = params([2, 4, 3, 3], layout, 61);
    const { saved } = cpu.batchNorm2dWithSaved(p.x, p.gamma, p.beta, p.runningMean.clone(), p.runningVar.clone(), { training: true });
    const before = { mean: Array.from(saved.mean), invStd: Array.from(saved.invStd) };
    const q = params([2, 4, 3, 3], layout, 62);
    cpu.batchNorm2dWithSaved(q.x, q.gamma, q.beta, q.runningMean.clone(), q.runningVar.clone(), { training: true });
    cpu.batchNorm2dBackward(q.dy, q.x, q.gamma, saved, { training: true });
    expect(Array.from(saved.mean)).toEqual(before.mean);
    expect(Array.from(saved.invStd)).toEqual(before.invStd);
  });

  it('inference leaves the running statistics alone; float64 inputs match the reference exactly', () => {
    const p = params([2, 3, 2, 2], layout, 71);
    const mean = p.runningMean.clone();
    const variance = p.runningVar.clone();
    cpu.batchNorm2d(p.x, p.gamma, p.beta, mean, variance);
    expect(Array.from(mean.data)).toEqual(Array.from(p.runningMean.data));
    expect(Array.from(variance.data)).toEqual(Array.from(p.runningVar.data));
    const args = [f64(p.x), f64(p.gamma), f64(p.beta), f64(p.runningMean), f64(p.runningVar)] as const;
    expect(Array.from(cpu.batchNorm2d(...args).data)).toEqual(Array.from(reference.batchNorm2d(...args).data));
  });
});

it('cpu batchNorm2d: NCHW and NHWC give the same numbers', () => {
  const p = params([2, 50, 6, 5], 'NCHW', 81);
  const y = cpu.batchNorm2d(p.x, p.gamma, p.beta, p.runningMean.clone(), p.runningVar.clone(), { training: true });
  const yNhwc = cpu.batchNorm2d(p.x.toLayout('NHWC'), p.gamma, p.beta, p.runningMean.clone(), p.runningVar.clone(), { training: true });
  assertClose(yNhwc, y, { atol: 1e-6, rtol: 1e-6 });
});
