import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import fc from 'fast-check';
import { defineSpec } from '../spec.js';
import { shape4, withInputs } from '../support/arbitraries.js';

/** The sizes of the pieces between consecutive cut points in (0, total). */
function sizesFromCuts(cuts: readonly number[], total: number): number[] {
  const bounds = [0, ...cuts, total];
  return bounds.slice(1).map((end, i) => end - (bounds[i] as number));
}

export default defineSpec<number[]>({
  op: 'split',
  // Every composition of C (1..7) is reachable: one piece (no cut), all pieces of one channel (every cut),
  // pieces not a multiple of 4; with batch > 1 and 1x1 spatial from shape4.
  samples: shape4({ maxH: 5, maxW: 5 }).chain((shape) => {
    const channels = shape[1] as number;
    const cutPoints = Array.from({ length: channels - 1 }, (_, i) => i + 1);
    return fc.subarray(cutPoints).chain((cuts) => withInputs({ x: shape }, sizesFromCuts(cuts, channels)));
  }),
  forward: (b, { inputs, options }) => b.split(inputs.x!, options),
  backward: (b, dys, { inputs, options }) => ({ x: b.splitBackward(dys as Tensor[], inputs.x!, options).dx }),
  differentiable: ['x'],
  golden: [
    {
      name: 'sizes [1, 2], 1x2 spatial',
      sample: { inputs: { x: tensor([1, 2, 3, 4, 5, 6], [1, 3, 1, 2]) }, options: [1, 2] },
      expected: [tensor([1, 2], [1, 1, 1, 2]), tensor([3, 4, 5, 6], [1, 2, 1, 2])],
    },
    {
      // Image 0 holds channels [1, 2, 3], image 1 [4, 5, 6]; the first piece takes channels 0..1 of each.
      name: 'sizes [2, 1], batch 2 (images do not mix)',
      sample: { inputs: { x: tensor([1, 2, 3, 4, 5, 6], [2, 3, 1, 1]) }, options: [2, 1] },
      expected: [tensor([1, 2, 4, 5], [2, 2, 1, 1]), tensor([3, 6], [2, 1, 1, 1])],
    },
    {
      name: 'a single piece is a copy',
      sample: { inputs: { x: tensor([1, 2, 3, 4], [1, 2, 1, 2]) }, options: [2] },
      expected: [tensor([1, 2, 3, 4], [1, 2, 1, 2])],
    },
  ],
  errors: [
    {
      name: 'sizes not summing to C',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 1 }) }, options: [2, 3] },
      call: (b, { inputs, options }) => b.split(inputs.x!, options),
      message: /^split: sizes expects sizes summing to x's channel count 6, got \[2, 3\] \(sum 5\)$/,
    },
    {
      name: 'a zero size',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 2 }) }, options: [6, 0] },
      call: (b, { inputs, options }) => b.split(inputs.x!, options),
      message: /^split: sizes\[1\] expects a positive integer, got 0$/,
    },
    {
      name: 'a negative size',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 3 }) }, options: [8, -2] },
      call: (b, { inputs, options }) => b.split(inputs.x!, options),
      message: /^split: sizes\[1\] expects a positive integer, got -2$/,
    },
    {
      name: 'a fractional size',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 4 }) }, options: [2.5, 3.5] },
      call: (b, { inputs, options }) => b.split(inputs.x!, options),
      message: /^split: sizes\[0\] expects a positive integer, got 2\.5$/,
    },
    {
      name: 'empty sizes',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 5 }) }, options: [] },
      call: (b, { inputs, options }) => b.split(inputs.x!, options),
      message: /^split: sizes expects a non-empty array of positive integers, got \[\]$/,
    },
    {
      name: 'sizes not an array',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 6 }) }, options: [] },
      call: (b, { inputs }) => b.split(inputs.x!, 3 as never),
      message: /^split: sizes expects a non-empty array of positive integers, got 3$/,
    },
    {
      name: 'x not 4-D',
      sample: { inputs: { x: randomUniform([6, 2, 2], { seed: 7 }) }, options: [3, 3] },
      call: (b, { inputs, options }) => b.split(inputs.x!, options),
      message: /^split: x expects a 4-D \[N, C, H, W\] tensor, got shape \[6, 2, 2\]$/,
    },
    {
      name: 'too few dys',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 8 }), dy0: randomUniform([1, 2, 2, 2], { seed: 9 }) }, options: [2, 4] },
      call: (b, { inputs, options }) => b.splitBackward([inputs.dy0!], inputs.x!, options),
      message: /^splitBackward: dys expects an array of 2 tensors \(one per piece\), got 1$/,
    },
    {
      name: 'a dy of the wrong shape',
      sample: {
        inputs: {
          x: randomUniform([1, 6, 2, 2], { seed: 10 }),
          dy0: randomUniform([1, 2, 2, 2], { seed: 11 }),
          dy1: randomUniform([1, 3, 2, 2], { seed: 12 }),
        },
        options: [2, 4],
      },
      call: (b, { inputs, options }) => b.splitBackward([inputs.dy0!, inputs.dy1!], inputs.x!, options),
      message: /^splitBackward: dys\[1\] expects shape \[1, 4, 2, 2\] \(piece 1 of split's output\), got \[1, 3, 2, 2\]$/,
    },
    {
      name: 'a dy in another layout',
      sample: {
        inputs: {
          x: randomUniform([1, 6, 2, 2], { seed: 13 }),
          dy0: randomUniform([1, 2, 2, 2], { seed: 14 }),
          dy1: randomUniform([1, 4, 2, 2], { seed: 15, layout: 'NHWC' }),
        },
        options: [2, 4],
      },
      call: (b, { inputs, options }) => b.splitBackward([inputs.dy0!, inputs.dy1!], inputs.x!, options),
      message: /^splitBackward: dys\[1\] expects the layout of x \(NCHW\); convert one with toLayout\(\), got NHWC$/,
    },
    {
      name: 'backward sizes not summing to C',
      sample: { inputs: { x: randomUniform([1, 6, 2, 2], { seed: 16 }), dy0: randomUniform([1, 5, 2, 2], { seed: 17 }) }, options: [5] },
      call: (b, { inputs, options }) => b.splitBackward([inputs.dy0!], inputs.x!, options),
      message: /^splitBackward: sizes expects sizes summing to x's channel count 6, got \[5\] \(sum 5\)$/,
    },
  ],
});
