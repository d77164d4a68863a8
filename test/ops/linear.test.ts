import { type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { linear, linearBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const sizes = fc.record({
  batch: fc.integer({ min: 1, max: 4 }),
  inFeatures: fc.integer({ min: 1, max: 6 }),
  outFeatures: fc.integer({ min: 1, max: 5 }),
  seed: fc.integer(),
});

const dot = (a: Tensor, b: Tensor) => a.toArray().reduce((sum, v, i) => sum + v * (b.toArray()[i] as number), 0);

describe('linear', () => {
  it.each(['NCHW', 'NHWC'] as Layout[])(
    'takes a pooled [N, in, 1, 1] map in %s like the [N, in] matrix, and returns dx in its shape and layout',
    (layout) => {
      fc.assert(
        fc.property(sizes, ({ batch, inFeatures, outFeatures, seed }) => {
          const x2 = randomUniform([batch, inFeatures], { seed, low: -1, high: 1 });
          const x4 = randomUniform([batch, inFeatures, 1, 1], { seed, low: -1, high: 1, layout });
          const weight = randomUniform([outFeatures, inFeatures], { seed: seed + 1, low: -1, high: 1 });
          const bias = randomUniform([outFeatures], { seed: seed + 2, low: -1, high: 1 });
          const y = linear(x4, weight, { bias });
          expect(y.shape).toEqual([batch, outFeatures]);
          expect(Array.from(y.data)).toEqual(Array.from(linear(x2, weight, { bias }).data));

          const dy = randomUniform([batch, outFeatures], { seed: seed + 3, low: -1, high: 1 });
          const { dx } = linearBackward(dy, x4, weight, { bias });
          expect(dx.shape).toEqual([batch, inFeatures, 1, 1]);
          expect(dx.layout).toBe(layout);
          expect(dx.toArray()).toEqual(Array.from(linearBackward(dy, x2, weight, { bias }).dx.data));
        }),
      );
    },
  );

  // L = sum(dy * (x W^T)) is linear in x and in W separately, so by Euler's theorem for homogeneous
  // functions L = <dL/dx, x> = <dL/dW, W>; and the bias part sum(dy * b) = <dL/db, b>.
  it('gradients satisfy the bilinear identities <dy, xW^T> = <dx, x> = <dW, W> and <dy, b> = <db, b>', () => {
    fc.assert(
      fc.property(sizes, ({ batch, inFeatures, outFeatures, seed }) => {
        const opts = { seed, low: -1, high: 1, dtype: 'float64' } as const;
        const x = randomUniform([batch, inFeatures], opts);
        const weight = randomUniform([outFeatures, inFeatures], { ...opts, seed: seed + 1 });
        const bias = randomUniform([outFeatures], { ...opts, seed: seed + 2 });
        const dy = randomUniform([batch, outFeatures], { ...opts, seed: seed + 3 });
        const product = dot(dy, linear(x, weight));
        const { dx, dweight, dbias } = linearBackward(dy, x, weight, { bias });
        expect(dot(dx, x)).toBeCloseTo(product, 10);
        expect(dot(dweight, weight)).toBeCloseTo(product, 10);
        expect(dot(dbias as Tensor, bias)).toBeCloseTo(dot(dy, linear(x, weight, { bias })) - product, 10);
      }),
    );
  });

  it('returns dbias only when a bias was given', () => {
    const x = randomUniform([2, 3], { seed: 1 });
    const weight = randomUniform([4, 3], { seed: 2 });
    const dy = randomUniform([2, 4], { seed: 3 });
    expect(linearBackward(dy, x, weight).dbias).toBeUndefined();
    expect(linearBackward(dy, x, weight, {}).dbias).toBeUndefined();
    expect(linearBackward(dy, x, weight, { bias: randomUniform([4], { seed: 4 }) }).dbias?.shape).toEqual([4]);
  });
});
