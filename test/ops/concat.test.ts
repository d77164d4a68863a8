import { assertClose, LAYOUTS, randomUniform } from '@shuffle/core';
import { concat, concatBackward, split } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** 1..4 random 4-D tensors sharing N, H, W and a layout, with 1..5 channels each. */
const inputs = fc
  .record({
    batch: fc.integer({ min: 1, max: 3 }),
    height: fc.integer({ min: 1, max: 3 }),
    width: fc.integer({ min: 1, max: 3 }),
    channels: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }),
    layout: fc.constantFrom(...LAYOUTS),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  })
  .map(({ batch, height, width, channels, layout, seed }) => ({
    channels,
    xs: channels.map((c, i) => randomUniform([batch, c, height, width], { seed: seed + i, layout, low: -1, high: 1 })),
  }));

describe('concat', () => {
  it('concat then split by the same sizes gives back the inputs', () => {
    fc.assert(
      fc.property(inputs, ({ xs, channels }) => {
        const y = concat(xs);
        expect(y.layout).toBe(xs[0]?.layout);
        const pieces = split(y, channels);
        expect(pieces).toHaveLength(xs.length);
        pieces.forEach((piece, i) => {
          expect(piece.layout).toBe(y.layout);
          assertClose(piece, xs[i]!, {}, `piece ${i}`);
        });
      }),
    );
  });

  it('the backward splits dy along the inputs channels', () => {
    fc.assert(
      fc.property(inputs, fc.integer({ min: 0, max: 2 ** 31 - 1 }), ({ xs, channels }, seed) => {
        const y = concat(xs);
        const dy = randomUniform(y.shape, { seed, layout: y.layout, low: -1, high: 1 });
        const { dxs } = concatBackward(dy, xs);
        const expected = split(dy, channels);
        expect(dxs).toHaveLength(xs.length);
        dxs.forEach((dx, i) => {
          expect(dx.layout).toBe(dy.layout);
          assertClose(dx, expected[i]!, {}, `dxs[${i}]`);
        });
      }),
    );
  });
});
