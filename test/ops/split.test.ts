import { assertClose, LAYOUTS, randomUniform } from '@shuffle/core';
import { concat, split, splitBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** A random 4-D tensor with 1..8 channels in either layout, and a random composition of its channels. */
const sample = fc
  .record({
    batch: fc.integer({ min: 1, max: 3 }),
    channels: fc.integer({ min: 1, max: 8 }),
    height: fc.integer({ min: 1, max: 3 }),
    width: fc.integer({ min: 1, max: 3 }),
    layout: fc.constantFrom(...LAYOUTS),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  })
  .chain(({ batch, channels, height, width, layout, seed }) =>
    fc.subarray(Array.from({ length: channels - 1 }, (_, i) => i + 1)).map((cuts) => {
      const bounds = [0, ...cuts, channels];
      return {
        sizes: bounds.slice(1).map((end, i) => end - (bounds[i] as number)),
        x: randomUniform([batch, channels, height, width], { seed, layout, low: -1, high: 1 }),
      };
    }),
  );

describe('split', () => {
  it('split then concat is the identity', () => {
    fc.assert(
      fc.property(sample, ({ x, sizes }) => {
        const pieces = split(x, sizes);
        expect(pieces.map((p) => p.shape[1])).toEqual(sizes);
        expect(pieces.map((p) => p.layout)).toEqual(sizes.map(() => x.layout));
        const back = concat(pieces);
        expect(back.layout).toBe(x.layout);
        assertClose(back, x);
      }),
    );
  });

  it('the backward lays the pieces gradients side by side (a concat)', () => {
    fc.assert(
      fc.property(sample, fc.integer({ min: 0, max: 2 ** 31 - 1 }), ({ x, sizes }, seed) => {
        const dys = split(x, sizes).map((y, i) => randomUniform(y.shape, { seed: seed + i, layout: y.layout, low: -1, high: 1 }));
        const { dx } = splitBackward(dys, x, sizes);
        expect(dx.layout).toBe(x.layout);
        assertClose(dx, concat(dys));
      }),
    );
  });
});
