import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import fc from 'fast-check';
import { defineSpec } from '../spec.js';
import { awayFrom, shape4, withInputs } from '../support/arbitraries.js';

export default defineSpec<undefined>({
  op: 'relu',
  // Any rank: 4-D in both layouts, and 1- to 3-D.
  samples: fc
    .oneof(shape4(), fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }))
    .chain((shape) => withInputs({ x: shape }, undefined)),
  forward: (b, { inputs }) => b.relu(inputs.x!),
  backward: (b, dy, { inputs }) => ({ x: b.reluBackward(dy as Tensor, inputs.x!).dx }),
  differentiable: ['x'],
  golden: [
    {
      name: 'negative, zero and positive values',
      sample: { inputs: { x: tensor([-2, -0.5, 0, 0.5, 3, -1], [1, 2, 1, 3]) }, options: undefined },
      expected: tensor([0, 0, 0, 0.5, 3, 0], [1, 2, 1, 3]),
    },
  ],
  errors: [
    {
      name: 'x not a tensor',
      sample: { inputs: {}, options: undefined },
      call: (b) => b.relu([1, 2] as never),
      message: /^relu: x expects a Tensor, got \[1, 2\]$/,
    },
    {
      name: 'dy of another shape',
      sample: { inputs: { x: randomUniform([1, 2, 3, 3], { seed: 1 }), dy: randomUniform([1, 2, 3, 2], { seed: 2 }) }, options: undefined },
      call: (b, { inputs }) => b.reluBackward(inputs.dy!, inputs.x!),
      message: /^reluBackward: dy expects shape \[1, 2, 3, 3\] \(relu's output shape\), got \[1, 2, 3, 2\]$/,
    },
  ],
  // Finite differences across the kink at 0 are wrong; random inputs sit at least 1e-3 away from it.
  prepareForGradcheck: ({ inputs, options }) => ({ inputs: { x: awayFrom(inputs.x!) }, options }),
});
