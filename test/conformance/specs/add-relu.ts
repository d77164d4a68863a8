import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import fc from 'fast-check';
import { defineSpec } from '../spec.js';
import { shape4, withInputs } from '../support/arbitraries.js';

export default defineSpec<undefined>({
  op: 'addRelu',
  // Any rank, as add: 4-D in both layouts, and 0- to 3-D.
  samples: fc
    .oneof(shape4(), fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 3 }))
    .chain((shape) => withInputs({ a: shape, b: shape }, undefined)),
  forward: (b, { inputs }) => b.addRelu(inputs.a!, inputs.b!),
  backward: (b, dy, { inputs }) => {
    const { da, db } = b.addReluBackward(dy as Tensor, inputs.a!, inputs.b!);
    return { a: da, b: db };
  },
  differentiable: ['a', 'b'],
  golden: [
    {
      // Sums 3, 0, 0, 0, 4, -2: the zeros (exact cancellations) and the negative become 0.
      name: 'sums of both signs and exactly 0',
      sample: {
        inputs: { a: tensor([1, -2, 0.5, 3, 0, -1], [1, 2, 1, 3]), b: tensor([2, 2, -0.5, -3, 4, -1], [1, 2, 1, 3]) },
        options: undefined,
      },
      expected: tensor([3, 0, 0, 0, 4, 0], [1, 2, 1, 3]),
    },
    {
      name: 'NaN passes, as relu lets it',
      sample: { inputs: { a: tensor([Number.NaN, -1], [2]), b: tensor([1, 0.5], [2]) }, options: undefined },
      expected: tensor([Number.NaN, 0], [2]),
    },
  ],
  errors: [
    {
      name: 'shapes differ',
      sample: { inputs: { a: randomUniform([1, 2, 3, 3], { seed: 2 }), b: randomUniform([1, 2, 3, 2], { seed: 3 }) }, options: undefined },
      call: (b, { inputs }) => b.addRelu(inputs.a!, inputs.b!),
      message: /^addRelu: b expects shape \[1, 2, 3, 3\] \(a's shape; addRelu does not broadcast\), got \[1, 2, 3, 2\]$/,
    },
    {
      name: 'mixed layouts',
      sample: {
        inputs: { a: randomUniform([1, 3, 2, 2], { seed: 6 }), b: randomUniform([1, 3, 2, 2], { seed: 7, layout: 'NHWC' }) },
        options: undefined,
      },
      call: (b, { inputs }) => b.addRelu(inputs.a!, inputs.b!),
      message: /^addRelu: b expects the layout of a \(NCHW\); convert one with toLayout\(\), got NHWC$/,
    },
    {
      name: 'dy of another shape',
      sample: {
        inputs: {
          a: randomUniform([1, 2, 3, 3], { seed: 10 }),
          b: randomUniform([1, 2, 3, 3], { seed: 11 }),
          dy: randomUniform([1, 2, 3, 1], { seed: 12 }),
        },
        options: undefined,
      },
      call: (b, { inputs }) => b.addReluBackward(inputs.dy!, inputs.a!, inputs.b!),
      message: /^addReluBackward: dy expects shape \[1, 2, 3, 3\] \(addRelu's output shape\), got \[1, 2, 3, 1\]$/,
    },
  ],
  // Finite differences across the kink at a + b = 0 are wrong: move a so that every sum is at least 1e-3 from it.
  prepareForGradcheck: ({ inputs, options }) => {
    const a = inputs.a!.clone();
    const b = inputs.b!;
    for (let i = 0; i < a.size; i++) {
      const sum = (a.data[i] as number) + (b.data[i] as number);
      if (Math.abs(sum) < 1e-3) a.data[i] = (a.data[i] as number) + (sum < 0 ? -2e-3 : 2e-3);
    }
    return { inputs: { a, b }, options };
  },
});
