import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import fc from 'fast-check';
import { defineSpec } from '../spec.js';
import { shape4, withInputs } from '../support/arbitraries.js';

export default defineSpec<undefined>({
  op: 'add',
  // Any rank: 4-D in both layouts, and 0- (a scalar) to 3-D.
  samples: fc
    .oneof(shape4(), fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 3 }))
    .chain((shape) => withInputs({ a: shape, b: shape }, undefined)),
  forward: (b, { inputs }) => b.add(inputs.a!, inputs.b!),
  backward: (b, dy, { inputs }) => {
    const { da, db } = b.addBackward(dy as Tensor, inputs.a!, inputs.b!);
    return { a: da, b: db };
  },
  differentiable: ['a', 'b'],
  golden: [
    {
      name: '4-D, values of both signs',
      sample: {
        inputs: { a: tensor([1, -2, 0.5, 3, 0, -1], [1, 2, 1, 3]), b: tensor([2, 2, -0.5, -3, 4, -1], [1, 2, 1, 3]) },
        options: undefined,
      },
      expected: tensor([3, 0, 0, 0, 4, -2], [1, 2, 1, 3]),
    },
    {
      name: '2-D',
      sample: { inputs: { a: tensor([1, 2, 3, 4], [2, 2]), b: tensor([10, 20, 30, 40], [2, 2]) }, options: undefined },
      expected: tensor([11, 22, 33, 44], [2, 2]),
    },
    {
      name: 'scalar (0-D)',
      sample: { inputs: { a: tensor([1.25], []), b: tensor([-0.25], []) }, options: undefined },
      expected: tensor([1], []),
    },
  ],
  errors: [
    {
      name: 'a not a tensor',
      sample: { inputs: { b: randomUniform([2, 2], { seed: 1 }) }, options: undefined },
      call: (b, { inputs }) => b.add([1, 2] as never, inputs.b!),
      message: /^add: a expects a Tensor, got \[1, 2\]$/,
    },
    {
      name: 'shapes differ',
      sample: { inputs: { a: randomUniform([1, 2, 3, 3], { seed: 2 }), b: randomUniform([1, 2, 3, 2], { seed: 3 }) }, options: undefined },
      call: (b, { inputs }) => b.add(inputs.a!, inputs.b!),
      message: /^add: b expects shape \[1, 2, 3, 3\] \(a's shape; add does not broadcast\), got \[1, 2, 3, 2\]$/,
    },
    {
      name: 'a broadcastable b (no broadcasting)',
      sample: { inputs: { a: randomUniform([1, 3, 2, 2], { seed: 4 }), b: randomUniform([1, 3, 1, 1], { seed: 5 }) }, options: undefined },
      call: (b, { inputs }) => b.add(inputs.a!, inputs.b!),
      message: /^add: b expects shape \[1, 3, 2, 2\] \(a's shape; add does not broadcast\), got \[1, 3, 1, 1\]$/,
    },
    {
      name: 'mixed layouts',
      sample: {
        inputs: { a: randomUniform([1, 3, 2, 2], { seed: 6 }), b: randomUniform([1, 3, 2, 2], { seed: 7, layout: 'NHWC' }) },
        options: undefined,
      },
      call: (b, { inputs }) => b.add(inputs.a!, inputs.b!),
      message: /^add: b expects the layout of a \(NCHW\); convert one with toLayout\(\), got NHWC$/,
    },
    {
      name: 'mixed dtypes',
      sample: {
        inputs: { a: randomUniform([2, 3], { seed: 8 }), b: randomUniform([2, 3], { seed: 9, dtype: 'float64' }) },
        options: undefined,
      },
      call: (b, { inputs }) => b.add(inputs.a!, inputs.b!),
      message: /^add: b expects the dtype of a \(float32\), got float64$/,
    },
    {
      name: 'dy of another shape',
      sample: {
        inputs: {
          a: randomUniform([1, 2, 3, 3], { seed: 10 }),
          b: randomUniform([1, 2, 3, 3], { seed: 11 }),
          dy: randomUniform([1, 2, 3, 2], { seed: 12 }),
        },
        options: undefined,
      },
      call: (b, { inputs }) => b.addBackward(inputs.dy!, inputs.a!, inputs.b!),
      message: /^addBackward: dy expects shape \[1, 2, 3, 3\] \(add's output shape\), got \[1, 2, 3, 2\]$/,
    },
    {
      name: 'dy in another layout',
      sample: {
        inputs: {
          a: randomUniform([1, 2, 3, 3], { seed: 13, layout: 'NHWC' }),
          b: randomUniform([1, 2, 3, 3], { seed: 14, layout: 'NHWC' }),
          dy: randomUniform([1, 2, 3, 3], { seed: 15 }),
        },
        options: undefined,
      },
      call: (b, { inputs }) => b.addBackward(inputs.dy!, inputs.a!, inputs.b!),
      message: /^addBackward: dy expects the layout of a \(NHWC\); convert one with toLayout\(\), got NCHW$/,
    },
  ],
});
