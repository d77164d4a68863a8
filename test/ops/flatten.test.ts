import { LAYOUTS, randomUniform } from '@shuffle/core';
import { flatten, flattenBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const shape4 = fc.tuple(
  fc.integer({ min: 1, max: 3 }),
  fc.integer({ min: 1, max: 5 }),
  fc.integer({ min: 1, max: 4 }),
  fc.integer({ min: 1, max: 4 }),
);

describe('flatten', () => {
  it.each(LAYOUTS)("is PyTorch's flatten(1): the logical NCHW order, for x in %s", (layout) => {
    fc.assert(
      fc.property(shape4, fc.integer(), ([n, c, h, w], seed) => {
        const x = randomUniform([n, c, h, w], { seed, layout });
        const y = flatten(x);
        expect(y.shape).toEqual([n, c * h * w]);
        expect(y.layout).toBe('NCHW');
        expect(Array.from(y.data)).toEqual(Array.from(x.toLayout('NCHW').data));
      }),
    );
  });

  it.each(LAYOUTS)('backward of the flattened x gives back x, in its %s layout', (layout) => {
    fc.assert(
      fc.property(shape4, fc.integer(), (shape, seed) => {
        const x = randomUniform(shape, { seed, layout });
        const { dx } = flattenBackward(flatten(x), x);
        expect(dx.shape).toEqual(x.shape);
        expect(dx.layout).toBe(layout);
        expect(Array.from(dx.data)).toEqual(Array.from(x.data));
      }),
    );
  });

  it('keeps every rank >= 2 row-major: [N, a, b] -> [N, a*b]', () => {
    const x = randomUniform([2, 3, 5], { seed: 4 });
    const y = flatten(x);
    expect(y.shape).toEqual([2, 15]);
    expect(Array.from(y.data)).toEqual(Array.from(x.data));
    expect(flattenBackward(y, x).dx.shape).toEqual([2, 3, 5]);
  });
});
