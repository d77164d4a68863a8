import { type Layout, randomUniform } from '@shuffle/core';
import { cpu, reference } from '@shuffle/kernels';
import { describe, expect, it } from 'vitest';

/*
 * The fast channel shuffle copies whole planes in NCHW (set() for planes of 48 values or more, a loop below)
 * and transposes each pixel's channel row in NHWC. The conformance suite's small random shapes never
 * reach the set() path; these calls cover both NCHW paths, ShuffleNet's channel counts, and groups = 1 and
 * groups = C, in both directions. A shuffle only moves values, so the result must equal the reference's
 * exactly.
 */

const layouts: Layout[] = ['NCHW', 'NHWC'];

const cases: [string, [number, number, number, number], number][] = [
  ['ShuffleNet 60 channels at 7x7 (planes of 49: set path), g=3, batch 2', [2, 60, 7, 7], 3],
  ['ShuffleNet 240 channels at 3x3 (loop path), g=3', [1, 240, 3, 3], 3],
  ['planes of exactly 48 (6x8), g=4', [2, 12, 6, 8], 4],
  ['planes of 47, g=2', [1, 6, 1, 47], 2],
  ['960 channels, g=8, 2x2', [1, 960, 2, 2], 8],
  ['groups = 1 (identity)', [2, 5, 7, 8], 1],
  ['groups = channels (identity)', [2, 6, 3, 3], 6],
  ['1x1 spatial, batch 3', [3, 18, 1, 1], 3],
];

describe.each(layouts)('cpu channelShuffle in %s', (layout) => {
  for (const [name, shape, groups] of cases) {
    for (const inverse of [false, true]) {
      it(`${name}${inverse ? ', inverse' : ''}`, () => {
        const x = randomUniform(shape, { seed: shape[1] + groups, low: -1, high: 1, layout });
        const y = cpu.channelShuffle(x, groups, { inverse });
        expect(y.layout).toBe(layout);
        expect(y.shape).toEqual(shape);
        expect(Array.from(y.data)).toEqual(Array.from(reference.channelShuffle(x, groups, { inverse }).data));

        const dy = randomUniform(shape, { seed: 7, low: -1, high: 1, layout });
        const { dx } = cpu.channelShuffleBackward(dy, groups, { inverse });
        expect(dx.layout).toBe(layout);
        expect(Array.from(dx.data)).toEqual(Array.from(reference.channelShuffleBackward(dy, groups, { inverse }).dx.data));
        // The backward undoes the forward.
        expect(Array.from(cpu.channelShuffleBackward(y, groups, { inverse }).dx.data)).toEqual(Array.from(x.data));
      });
    }
  }
});
