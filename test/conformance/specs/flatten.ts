import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import fc from 'fast-check';
import { defineSpec } from '../spec.js';
import { shape4, withInputs } from '../support/arbitraries.js';

export default defineSpec<undefined>({
  op: 'flatten',
  // 4-D in both layouts (1x1 spatial, odd sizes, C not a multiple of 4 come from shape4), and ranks 2 and 3,
  // which are row-major already.
  samples: fc
    .oneof(shape4({ maxH: 5, maxW: 5 }), fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 2, maxLength: 3 }))
    .chain((shape) => withInputs({ x: shape }, undefined)),
  forward: (b, { inputs }) => b.flatten(inputs.x!),
  backward: (b, dy, { inputs }) => ({ x: b.flattenBackward(dy as Tensor, inputs.x!).dx }),
  differentiable: ['x'],
  golden: [
    {
      // Logical (c, h, w) order: the NHWC run must give the same row, not the memory order (h, w, c).
      name: '[2, 2, 1, 2] becomes [2, 4] in (c, h, w) order',
      sample: { inputs: { x: tensor([0, 1, 2, 3, 4, 5, 6, 7], [2, 2, 1, 2]) }, options: undefined },
      expected: tensor([0, 1, 2, 3, 4, 5, 6, 7], [2, 4]),
    },
    {
      name: '3-D [2, 2, 3] becomes [2, 6]',
      sample: { inputs: { x: tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 2, 3]) }, options: undefined },
      expected: tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 6]),
    },
    {
      name: '2-D stays as it is',
      sample: { inputs: { x: tensor([1, -2, 3], [3, 1]) }, options: undefined },
      expected: tensor([1, -2, 3], [3, 1]),
    },
  ],
  errors: [
    {
      name: 'x not a tensor',
      sample: { inputs: {}, options: undefined },
      call: (b) => b.flatten([1, 2] as never),
      message: /^flatten: x expects a Tensor, got \[1, 2\]$/,
    },
    {
      name: 'a 1-D x (no batch axis to keep)',
      sample: { inputs: { x: randomUniform([6], { seed: 1 }) }, options: undefined },
      call: (b, { inputs }) => b.flatten(inputs.x!),
      message: /^flatten: x expects a tensor of rank >= 2 \(\[N, \.\.\.features\]\), got shape \[6\]$/,
    },
    {
      name: 'dy of another shape',
      sample: { inputs: { x: randomUniform([2, 3, 2, 2], { seed: 1 }), dy: randomUniform([2, 11], { seed: 2 }) }, options: undefined },
      call: (b, { inputs }) => b.flattenBackward(inputs.dy!, inputs.x!),
      message: /^flattenBackward: dy expects shape \[2, 12\] \(flatten's output shape\), got \[2, 11\]$/,
    },
    {
      name: 'dy of another dtype',
      sample: {
        inputs: { x: randomUniform([2, 3, 2, 2], { seed: 1 }), dy: randomUniform([2, 12], { seed: 2, dtype: 'float64' }) },
        options: undefined,
      },
      call: (b, { inputs }) => b.flattenBackward(inputs.dy!, inputs.x!),
      message: /^flattenBackward: dy expects the dtype of x \(float32\), got float64$/,
    },
  ],
});
