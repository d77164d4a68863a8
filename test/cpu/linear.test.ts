import { assertClose, type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { cpu, type LinearOptions, reference } from '@shuffle/kernels';
import { describe, expect, it } from 'vitest';

/*
 * The fast linear has two regimes: below a batch of 4 it streams W with rows blocked by four (and a
 * remainder row loop), from 4 on it goes to the packed GEMM. The conformance suite's calls have at most
 * 7 features; these reach both regimes at ShuffleNet's 960 -> 1000 and at sizes that leave remainders,
 * against the float64 reference.
 */

const tolerance = { atol: 5e-5, rtol: 2e-4 };
const f64 = (t: Tensor) => t.astype('float64');

interface Case {
  batch: number;
  inFeatures: number;
  outFeatures: number;
  bias: boolean;
  /** x as [N, in, 1, 1] (a global average pool's output) in this layout, else [N, in]. */
  fourD?: Layout;
}

const cases: Case[] = [
  { batch: 1, inFeatures: 960, outFeatures: 1000, bias: true },
  { batch: 2, inFeatures: 33, outFeatures: 7, bias: false, fourD: 'NHWC' },
  { batch: 3, inFeatures: 5, outFeatures: 13, bias: true, fourD: 'NCHW' },
  { batch: 4, inFeatures: 17, outFeatures: 9, bias: true },
  { batch: 8, inFeatures: 960, outFeatures: 1000, bias: true, fourD: 'NHWC' },
  { batch: 13, inFeatures: 300, outFeatures: 70, bias: false, fourD: 'NCHW' },
];

describe('cpu linear in both regimes', () => {
  it.each(cases)('batch $batch, $inFeatures -> $outFeatures, bias $bias, 4-D $fourD', (c) => {
    const seed = c.batch * 7 + c.inFeatures;
    const xShape = c.fourD ? [c.batch, c.inFeatures, 1, 1] : [c.batch, c.inFeatures];
    const x = randomUniform(xShape, { seed, low: -1, high: 1, ...(c.fourD ? { layout: c.fourD } : {}) });
    const weight = randomUniform([c.outFeatures, c.inFeatures], { seed: seed + 1, low: -1, high: 1 });
    const bias = c.bias ? randomUniform([c.outFeatures], { seed: seed + 2, low: -1, high: 1 }) : undefined;
    const options: LinearOptions = bias ? { bias } : {};
    const options64: LinearOptions = bias ? { bias: f64(bias) } : {};

    const y = cpu.linear(x, weight, options);
    expect(y.shape).toEqual([c.batch, c.outFeatures]);
    assertClose(y, reference.linear(f64(x), f64(weight), options64), tolerance, 'y');

    const dy = randomUniform([c.batch, c.outFeatures], { seed: seed + 3, low: -1, high: 1 });
    const grads = cpu.linearBackward(dy, x, weight, options);
    const expected = reference.linearBackward(f64(dy), f64(x), f64(weight), options64);
    expect(grads.dx.shape).toEqual(x.shape);
    expect(grads.dx.layout).toBe(x.layout);
    assertClose(grads.dx, expected.dx, tolerance, 'dx');
    assertClose(grads.dweight, expected.dweight, tolerance, 'dweight');
    if (bias) assertClose(grads.dbias!, expected.dbias!, tolerance, 'dbias');
    else expect(grads.dbias).toBeUndefined();
  });

  it('handles an empty batch', () => {
    const x = randomUniform([0, 6], { seed: 1 });
    const weight = randomUniform([5, 6], { seed: 2 });
    const bias = randomUniform([5], { seed: 3 });
    expect(cpu.linear(x, weight, { bias }).shape).toEqual([0, 5]);
    const { dx, dweight, dbias } = cpu.linearBackward(randomUniform([0, 5], { seed: 4 }), x, weight, { bias });
    expect(dx.shape).toEqual([0, 6]);
    expect(Array.from(dweight.data)).toEqual(new Array(30).fill(0));
    expect(Array.from(dbias!.data)).toEqual([0, 0, 0, 0, 0]);
  });
});
