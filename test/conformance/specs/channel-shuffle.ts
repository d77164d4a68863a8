import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import fc from 'fast-check';
import { defineSpec } from '../spec.js';
import { withInputs } from '../support/arbitraries.js';

interface Options {
  groups: number;
  inverse: boolean;
}

/** [1, C, 1, W] with channel c holding 10c, 10c + 1, ..., so a permutation shows in the tens digits. */
function channelRamp(channels: number, width: number): Tensor {
  const data: number[] = [];
  for (let c = 0; c < channels; c++) for (let w = 0; w < width; w++) data.push(10 * c + w);
  return tensor(data, [1, channels, 1, width]);
}

export default defineSpec<Options>({
  op: 'channelShuffle',
  // C = groups * channelsPerGroup, both 1..4: reaches groups = 1, groups = C (one channel per group),
  // C not a multiple of 4 (3, 6, 9), 1x1 spatial and batch > 1, in both orders.
  samples: fc
    .record({
      groups: fc.integer({ min: 1, max: 4 }),
      channelsPerGroup: fc.integer({ min: 1, max: 4 }),
      batch: fc.integer({ min: 1, max: 3 }),
      height: fc.integer({ min: 1, max: 4 }),
      width: fc.integer({ min: 1, max: 5 }),
      inverse: fc.boolean(),
    })
    .chain(({ groups, channelsPerGroup, batch, height, width, inverse }) =>
      withInputs({ x: [batch, groups * channelsPerGroup, height, width] }, { groups, inverse }),
    ),
  forward: (b, { inputs, options }) => b.channelShuffle(inputs.x!, options.groups, { inverse: options.inverse }),
  backward: (b, dy, { options }) => ({ x: b.channelShuffleBackward(dy as Tensor, options.groups, { inverse: options.inverse }).dx }),
  differentiable: ['x'],
  golden: [
    {
      // C = 4, groups 2: groups {0, 1} and {2, 3}; output k*2 + g reads input g*2 + k, so [0, 2, 1, 3] per image.
      name: 'groups 2 of 4 channels, batch 2 (images do not mix)',
      sample: { inputs: { x: tensor([0, 1, 2, 3, 4, 5, 6, 7], [2, 4, 1, 1]) }, options: { groups: 2, inverse: false } },
      expected: tensor([0, 2, 1, 3, 4, 6, 5, 7], [2, 4, 1, 1]),
    },
    {
      // C = 6, groups 3 of 2: output k*3 + g reads input g*2 + k, so the channel order is [0, 2, 4, 1, 3, 5].
      name: 'paper order, groups 3 of 6 channels, 1x2 spatial',
      sample: { inputs: { x: channelRamp(6, 2) }, options: { groups: 3, inverse: false } },
      expected: tensor([0, 1, 20, 21, 40, 41, 10, 11, 30, 31, 50, 51], [1, 6, 1, 2]),
    },
    {
      // Inverse: output g*2 + k reads input k*3 + g, so the channel order is [0, 3, 1, 4, 2, 5].
      name: 'inverse (official) order, groups 3 of 6 channels',
      sample: { inputs: { x: channelRamp(6, 2) }, options: { groups: 3, inverse: true } },
      expected: tensor([0, 1, 30, 31, 10, 11, 40, 41, 20, 21, 50, 51], [1, 6, 1, 2]),
    },
    {
      name: 'groups = C leaves the channels in place',
      sample: { inputs: { x: channelRamp(3, 1) }, options: { groups: 3, inverse: false } },
      expected: tensor([0, 10, 20], [1, 3, 1, 1]),
    },
  ],
  errors: [
    {
      name: 'x not 4-D',
      sample: { inputs: { x: randomUniform([2, 6, 3], { seed: 1 }) }, options: { groups: 2, inverse: false } },
      call: (b, { inputs }) => b.channelShuffle(inputs.x!, 2),
      message: /^channelShuffle: x expects a 4-D \[N, C, H, W\] tensor, got shape \[2, 6, 3\]$/,
    },
    {
      name: 'x not a tensor',
      sample: { inputs: {}, options: { groups: 2, inverse: false } },
      call: (b) => b.channelShuffle([1, 2] as never, 2),
      message: /^channelShuffle: x expects a Tensor, got \[1, 2\]$/,
    },
    {
      name: 'C not divisible by groups',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 2 }) }, options: { groups: 4, inverse: false } },
      call: (b, { inputs }) => b.channelShuffle(inputs.x!, 4),
      message: /^channelShuffle: groups expects a divisor of the channel count \(x has 6 channels\), got 4$/,
    },
    {
      name: 'groups not an integer',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 3 }) }, options: { groups: 1.5, inverse: false } },
      call: (b, { inputs }) => b.channelShuffle(inputs.x!, 1.5),
      message: /^channelShuffle: groups expects a positive integer, got 1\.5$/,
    },
    {
      name: 'groups zero',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 4 }) }, options: { groups: 0, inverse: false } },
      call: (b, { inputs }) => b.channelShuffle(inputs.x!, 0),
      message: /^channelShuffle: groups expects a positive integer, got 0$/,
    },
    {
      name: 'groups negative',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 5 }) }, options: { groups: -2, inverse: false } },
      call: (b, { inputs }) => b.channelShuffle(inputs.x!, -2),
      message: /^channelShuffle: groups expects a positive integer, got -2$/,
    },
    {
      name: 'inverse not a boolean',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 6 }) }, options: { groups: 2, inverse: false } },
      call: (b, { inputs }) => b.channelShuffle(inputs.x!, 2, { inverse: 'yes' as never }),
      message: /^channelShuffle: options\.inverse expects a boolean, got yes$/,
    },
    {
      name: 'dy whose channels groups does not divide',
      sample: { inputs: { dy: randomUniform([1, 6, 2, 2], { seed: 7 }) }, options: { groups: 4, inverse: false } },
      call: (b, { inputs }) => b.channelShuffleBackward(inputs.dy!, 4),
      message: /^channelShuffleBackward: groups expects a divisor of the channel count \(dy has 6 channels\), got 4$/,
    },
    {
      name: 'dy not 4-D',
      sample: { inputs: { dy: randomUniform([6, 4], { seed: 8 }) }, options: { groups: 2, inverse: false } },
      call: (b, { inputs }) => b.channelShuffleBackward(inputs.dy!, 2),
      message: /^channelShuffleBackward: dy expects a 4-D \[N, C, H, W\] tensor, got shape \[6, 4\]$/,
    },
    {
      name: 'backward groups not a positive integer',
      sample: { inputs: { dy: randomUniform([1, 6, 2, 2], { seed: 9 }) }, options: { groups: 0, inverse: false } },
      call: (b, { inputs }) => b.channelShuffleBackward(inputs.dy!, 0),
      message: /^channelShuffleBackward: groups expects a positive integer, got 0$/,
    },
  ],
});
