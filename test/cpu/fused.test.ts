/**
 * The fused ops on the fast cpu backend are their compositions to the bit: relu(batchNorm2d) and
 * relu(add), forward and backward, both layouts, both batch-norm modes. (The conformance suite holds
 * them to the reference within tolerance; this says the fusion itself changes no value, so a model may
 * switch between fused and unfused without a trace.)
 */
import { LAYOUTS, randomUniform, type Tensor, tensor } from '@shuffle/core';
import { cpu } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const same = (a: Tensor, b: Tensor) => expect(Array.from(a.data)).toEqual(Array.from(b.data));

describe.each(LAYOUTS)('in %s', (layout) => {
  it('batchNormRelu2d is relu(batchNorm2d) exactly, forward and backward, training and inference', () => {
    fc.assert(
      fc.property(
        fc.record({ n: fc.integer({ min: 1, max: 3 }), c: fc.integer({ min: 1, max: 9 }), hw: fc.integer({ min: 2, max: 7 }) }),
        fc.boolean(),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        ({ n, c, hw }, training, seed) => {
          const x = randomUniform([n, c, hw, hw], { seed, layout, low: -2, high: 3 });
          const gamma = randomUniform([c], { seed: seed + 1, low: -2, high: 2 });
          const beta = randomUniform([c], { seed: seed + 2, low: -1, high: 1 });
          const mean = randomUniform([c], { seed: seed + 3 });
          const variance = randomUniform([c], { seed: seed + 4, low: 0.1, high: 2 });
          const dy = randomUniform(x.shape, { seed: seed + 5, layout });
          const options = { training };

          const plain = cpu.batchNorm2dWithSaved(x, gamma, beta, mean.clone(), variance.clone(), options);
          const activated = cpu.relu(plain.y);
          const fused = cpu.batchNormRelu2dWithSaved(x, gamma, beta, mean.clone(), variance.clone(), options);
          same(fused.y, activated);
          same(cpu.batchNormRelu2d(x, gamma, beta, mean.clone(), variance.clone(), options), activated);

          const dz = cpu.reluBackward(dy, plain.y).dx;
          const want = cpu.batchNorm2dBackward(dz, x, gamma, plain.saved, options);
          const got = cpu.batchNormRelu2dBackward(dy, x, gamma, beta, fused.saved, options);
          same(got.dx, want.dx);
          same(got.dgamma, want.dgamma);
          same(got.dbeta, want.dbeta);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('addRelu is relu(add) exactly, forward and backward', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (c, hw, seed) => {
          const a = randomUniform([2, c, hw, hw], { seed, layout });
          const b = randomUniform([2, c, hw, hw], { seed: seed + 1, layout });
          const dy = randomUniform([2, c, hw, hw], { seed: seed + 2, layout });
          const sum = cpu.add(a, b);
          same(cpu.addRelu(a, b), cpu.relu(sum));
          const dz = cpu.reluBackward(dy, sum).dx;
          const { da, db } = cpu.addReluBackward(dy, a, b);
          same(da, dz);
          same(db, dz);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('special values follow relu: -Infinity and -0 become +0, NaN and +Infinity pass, in both fused ops', () => {
    const special = [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, Number.NaN, -0, 0, -1e-40, 1e-40, -3, 3];
    const a = tensor(special, [1, special.length, 1, 1]).toLayout(layout);
    const zeros = tensor(new Array(special.length).fill(0), [1, special.length, 1, 1]).toLayout(layout);
    same(cpu.addRelu(a, zeros), cpu.relu(a));
    expect(Object.is(cpu.addRelu(a, zeros).get([0, 3, 0, 0]), 0)).toBe(true);
    // Batch norm in inference with mean 0, variance 1 - eps, gamma 1, beta 0 is the identity.
    const c = special.length;
    const one = tensor(new Array(c).fill(1), [c]);
    const zero = tensor(new Array(c).fill(0), [c]);
    const variance = tensor(new Array(c).fill(1 - 1e-5), [c]);
    same(cpu.batchNormRelu2d(a, one, zero, zero, variance), cpu.relu(cpu.batchNorm2d(a, one, zero, zero, variance)));
  });
});
