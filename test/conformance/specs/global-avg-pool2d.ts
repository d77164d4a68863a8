import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import { defineSpec } from '../spec.js';
import { shape4, withInputs } from '../support/arbitraries.js';

const x = randomUniform([2, 3, 4, 5], { seed: 1 });

export default defineSpec<undefined>({
  op: 'globalAvgPool2d',
  // shape4's defaults reach 1x1 planes, batch > 1, odd sizes and channels not a multiple of 4.
  samples: shape4().chain((shape) => withInputs({ x: shape }, undefined)),
  forward: (b, { inputs }) => b.globalAvgPool2d(inputs.x!),
  backward: (b, dy, { inputs }) => ({ x: b.globalAvgPool2dBackward(dy as Tensor, inputs.x!).dx }),
  differentiable: ['x'],
  golden: [
    {
      // Per (n, c) plane of 2x3: mean(1..6) = 21/6 = 3.5; mean(0, 0, 0, 0, 0, 6) = 1; six -1s -> -1;
      // mean(2, 4, ..., 12) = 42/6 = 7.
      name: 'mean of each plane, batch 2',
      sample: {
        inputs: {
          x: tensor([...[1, 2, 3, 4, 5, 6], ...[0, 0, 0, 0, 0, 6], ...[-1, -1, -1, -1, -1, -1], ...[2, 4, 6, 8, 10, 12]], [2, 2, 2, 3]),
        },
        options: undefined,
      },
      expected: tensor([3.5, 1, -1, 7], [2, 2, 1, 1]),
    },
    {
      // A 1x1 plane is its own mean.
      name: '1x1 planes pass through',
      sample: { inputs: { x: tensor([0.25, -3, 7], [1, 3, 1, 1]) }, options: undefined },
      expected: tensor([0.25, -3, 7], [1, 3, 1, 1]),
    },
  ],
  errors: [
    {
      name: 'x of rank 2',
      sample: { inputs: { x: randomUniform([2, 3], { seed: 2 }) }, options: undefined },
      call: (b, { inputs }) => b.globalAvgPool2d(inputs.x!),
      message: /^globalAvgPool2d: x expects a 4-D \[N, C, H, W\] tensor, got shape \[2, 3\]$/,
    },
    {
      name: 'x not a tensor',
      sample: { inputs: {}, options: undefined },
      call: (b) => b.globalAvgPool2d({ shape: [1, 1, 2, 2] } as never),
      message: /^globalAvgPool2d: x expects a Tensor, got a tensor of shape \[1, 1, 2, 2\]$/,
    },
    {
      name: 'an empty plane (its mean would be 0 / 0)',
      sample: { inputs: { x: tensor([], [1, 2, 0, 3]) }, options: undefined },
      call: (b, { inputs }) => b.globalAvgPool2d(inputs.x!),
      message: /^globalAvgPool2d: x expects a non-empty H x W plane, got shape \[1, 2, 0, 3\]$/,
    },
    {
      name: 'dy of another shape',
      sample: { inputs: { x, dy: randomUniform([2, 3], { seed: 3 }) }, options: undefined },
      call: (b, { inputs }) => b.globalAvgPool2dBackward(inputs.dy!, inputs.x!),
      message: /^globalAvgPool2dBackward: dy expects shape \[2, 3, 1, 1\] \(globalAvgPool2d's output shape\), got \[2, 3\]$/,
    },
    {
      name: 'dy in another layout than x',
      sample: { inputs: { x, dy: randomUniform([2, 3, 1, 1], { seed: 3, layout: 'NHWC' }) }, options: undefined },
      call: (b, { inputs }) => b.globalAvgPool2dBackward(inputs.dy!, inputs.x!),
      message: /^globalAvgPool2dBackward: dy expects the layout of x \(NCHW\); convert one with toLayout\(\), got NHWC$/,
    },
    {
      name: 'dy in another dtype than x',
      sample: { inputs: { x, dy: randomUniform([2, 3, 1, 1], { seed: 3, dtype: 'float64' }) }, options: undefined },
      call: (b, { inputs }) => b.globalAvgPool2dBackward(inputs.dy!, inputs.x!),
      message: /^globalAvgPool2dBackward: dy expects the dtype of x \(float32\), got float64$/,
    },
    {
      name: 'x of rank 3 in the backward',
      sample: { inputs: { x: randomUniform([2, 3, 4], { seed: 4 }), dy: randomUniform([2, 3, 1, 1], { seed: 3 }) }, options: undefined },
      call: (b, { inputs }) => b.globalAvgPool2dBackward(inputs.dy!, inputs.x!),
      message: /^globalAvgPool2dBackward: x expects a 4-D \[N, C, H, W\] tensor, got shape \[2, 3, 4\]$/,
    },
  ],
});
