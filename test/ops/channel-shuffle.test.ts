import { readFileSync } from 'node:fs';
import { assertClose, LAYOUTS, type Layout, randomUniform, type Tensor, tensor } from '@shuffle/core';
import { channelShuffle, channelShuffleBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

interface ShuffleVectors {
  note: string;
  [name: string]: string | number[];
}

const reference = JSON.parse(readFileSync(new URL('../../../shared/reference/shufflenet-configs.json', import.meta.url), 'utf8')) as {
  shuffle_test_vectors: ShuffleVectors;
};
const vectors = reference.shuffle_test_vectors;
const cases = Object.entries(vectors).flatMap(([name, perm]) => {
  const match = /^c(\d+)_g(\d+)_(paper|megvii)$/.exec(name);
  return match && Array.isArray(perm) ? [{ name, channels: Number(match[1]), groups: Number(match[2]), order: match[3], perm }] : [];
});

/** [batch, C, height, width] with every element of channel c equal to c, in `layout`. */
function channelIds(batch: number, channels: number, height: number, width: number, layout: Layout): Tensor {
  const data: number[] = [];
  for (let n = 0; n < batch; n++) for (let c = 0; c < channels; c++) for (let i = 0; i < height * width; i++) data.push(c);
  return tensor(data, [batch, channels, height, width]).toLayout(layout);
}

/** For each output channel, the one input channel all its elements came from (throws if a channel mixes). */
function sourceChannels(y: Tensor): number[] {
  const [batch, channels, height, width] = y.shape as [number, number, number, number];
  return Array.from({ length: channels }, (_, c) => {
    const first = y.get([0, c, 0, 0]);
    for (let n = 0; n < batch; n++)
      for (let h = 0; h < height; h++) for (let w = 0; w < width; w++) expect(y.get([n, c, h, w])).toBe(first);
    return first;
  });
}

const sample = fc
  .record({
    groups: fc.integer({ min: 1, max: 5 }),
    channelsPerGroup: fc.integer({ min: 1, max: 5 }),
    batch: fc.integer({ min: 1, max: 2 }),
    height: fc.integer({ min: 1, max: 3 }),
    width: fc.integer({ min: 1, max: 3 }),
    inverse: fc.boolean(),
    layout: fc.constantFrom(...LAYOUTS),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  })
  .map(({ groups, channelsPerGroup, batch, height, width, inverse, layout, seed }) => ({
    groups,
    inverse,
    x: randomUniform([batch, groups * channelsPerGroup, height, width], { seed, layout, low: -1, high: 1 }),
  }));

describe('channelShuffle', () => {
  it('reads the reference sheet: four vectors, each meaning "output channel k takes input channel perm[k]"', () => {
    expect(vectors.note).toBe('output channel k takes input channel perm[k]');
    expect(cases.map((c) => c.name).sort()).toEqual(['c12_g3_megvii', 'c12_g3_paper', 'c6_g2_megvii', 'c6_g2_paper']);
  });

  describe.each(LAYOUTS)('in %s', (layout) => {
    it.each(cases.map((c) => [c.name, c] as const))('matches %s', (_name, { channels, groups, order, perm }) => {
      expect(perm).toHaveLength(channels);
      const x = channelIds(2, channels, 2, 3, layout);
      const y = channelShuffle(x, groups, { inverse: order === 'megvii' });
      expect(y.layout).toBe(layout);
      expect(sourceChannels(y)).toEqual(perm);
    });
  });

  it('paper order is output k*groups + g <- input g*(C/groups) + k', () => {
    const y = channelShuffle(channelIds(1, 12, 1, 1, 'NCHW'), 3);
    for (let g = 0; g < 3; g++) for (let k = 0; k < 4; k++) expect(y.get([0, k * 3 + g, 0, 0])).toBe(g * 4 + k);
  });

  it('moves every input channel to exactly one output channel, whole', () => {
    fc.assert(
      fc.property(sample, ({ x, groups, inverse }) => {
        const [batch, channels, height, width] = x.shape as [number, number, number, number];
        const sources = sourceChannels(channelShuffle(channelIds(batch, channels, height, width, x.layout), groups, { inverse }));
        expect([...sources].sort((a, b) => a - b)).toEqual([...Array(channels).keys()]);
      }),
    );
  });

  it('the inverse shuffle undoes the shuffle, in either order', () => {
    fc.assert(
      fc.property(sample, ({ x, groups, inverse }) => {
        const there = channelShuffle(x, groups, { inverse });
        const back = channelShuffle(there, groups, { inverse: !inverse });
        expect(back.layout).toBe(x.layout);
        assertClose(back, x);
      }),
    );
  });

  it('groups = 1 and groups = C leave x unchanged', () => {
    fc.assert(
      fc.property(sample, ({ x, inverse }) => {
        const channels = x.shape[1] as number;
        assertClose(channelShuffle(x, 1, { inverse }), x, {}, 'groups 1');
        assertClose(channelShuffle(x, channels, { inverse }), x, {}, 'groups C');
      }),
    );
  });

  it('the inverse order with g groups is the paper order with C/g groups (a transpose of C/g x g)', () => {
    fc.assert(
      fc.property(sample, ({ x, groups }) => {
        const channels = x.shape[1] as number;
        assertClose(channelShuffle(x, groups, { inverse: true }), channelShuffle(x, channels / groups));
      }),
    );
  });

  it('the backward is the inverse permutation', () => {
    fc.assert(
      fc.property(sample, ({ x: dy, groups, inverse }) => {
        const { dx } = channelShuffleBackward(dy, groups, { inverse });
        expect(dx.layout).toBe(dy.layout);
        assertClose(dx, channelShuffle(dy, groups, { inverse: !inverse }));
      }),
    );
  });
});
