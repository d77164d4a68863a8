import { randomUniform, type Tensor, tensor, zerosLike } from '@shuffle/core';
import fc from 'fast-check';
import { defineSpec, type Sample } from '../spec.js';
import { withInputs } from '../support/arbitraries.js';

/** The most inputs a sample concatenates. */
const MAX_INPUTS = 4;

interface Options {
  /** How many of x0, x1, ... the call concatenates. */
  count: number;
}

const names = (count: number) => Array.from({ length: count }, (_, i) => `x${i}`);
const inputList = ({ inputs, options }: Sample<Options>) => names(options.count).map((name) => inputs[name] as Tensor);

export default defineSpec<Options>({
  op: 'concat',
  // 1 to 4 inputs of 1..4 channels each (a single input, C not a multiple of 4), sharing N (batch > 1),
  // H and W (1x1 spatial). `differentiable` is fixed while the input count varies, so a sample always
  // carries x0..x3 and concatenates the first `count`; the unused ones are 1x1x1x1 and get the true
  // gradient of a loss that does not depend on them: zero.
  samples: fc
    .record({
      batch: fc.integer({ min: 1, max: 3 }),
      height: fc.integer({ min: 1, max: 4 }),
      width: fc.integer({ min: 1, max: 5 }),
      channels: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: MAX_INPUTS }),
    })
    .chain(({ batch, height, width, channels }) => {
      const shapes: Record<string, number[]> = {};
      names(MAX_INPUTS).forEach((name, i) => {
        const c = channels[i];
        shapes[name] = c === undefined ? [1, 1, 1, 1] : [batch, c, height, width];
      });
      return withInputs(shapes, { count: channels.length });
    }),
  forward: (b, sample) => b.concat(inputList(sample)),
  backward: (b, dy, sample) => {
    const { dxs } = b.concatBackward(dy as Tensor, inputList(sample));
    const grads: Record<string, Tensor> = {};
    names(MAX_INPUTS).forEach((name, i) => {
      const input = sample.inputs[name];
      const dx = dxs[i] ?? (input && zerosLike(input));
      if (dx) grads[name] = dx;
    });
    return grads;
  },
  differentiable: names(MAX_INPUTS),
  golden: [
    {
      name: 'two inputs, 1x2 spatial',
      sample: { inputs: { x0: tensor([1, 2], [1, 1, 1, 2]), x1: tensor([3, 4, 5, 6], [1, 2, 1, 2]) }, options: { count: 2 } },
      expected: tensor([1, 2, 3, 4, 5, 6], [1, 3, 1, 2]),
    },
    {
      // Image 0 of the output is [x0 image 0, x1 image 0], then image 1 likewise: [1, 3, 4] then [2, 5, 6].
      name: 'batch 2 (images do not mix)',
      sample: { inputs: { x0: tensor([1, 2], [2, 1, 1, 1]), x1: tensor([3, 4, 5, 6], [2, 2, 1, 1]) }, options: { count: 2 } },
      expected: tensor([1, 3, 4, 2, 5, 6], [2, 3, 1, 1]),
    },
    {
      name: 'three inputs',
      sample: {
        inputs: { x0: tensor([1], [1, 1, 1, 1]), x1: tensor([2, 3], [1, 2, 1, 1]), x2: tensor([4], [1, 1, 1, 1]) },
        options: { count: 3 },
      },
      expected: tensor([1, 2, 3, 4], [1, 4, 1, 1]),
    },
    {
      name: 'a single input is copied',
      sample: { inputs: { x0: tensor([1, 2, 3, 4], [1, 2, 2, 1]) }, options: { count: 1 } },
      expected: tensor([1, 2, 3, 4], [1, 2, 2, 1]),
    },
  ],
  errors: [
    {
      name: 'no inputs',
      sample: { inputs: {}, options: { count: 0 } },
      call: (b) => b.concat([]),
      message: /^concat: xs expects a non-empty array of tensors, got \[\]$/,
    },
    {
      name: 'xs not an array',
      sample: { inputs: { x0: randomUniform([1, 2, 2, 2], { seed: 1 }) }, options: { count: 1 } },
      call: (b, { inputs }) => b.concat(inputs.x0! as never),
      message: /^concat: xs expects a non-empty array of tensors, got a tensor of shape \[1, 2, 2, 2\]$/,
    },
    {
      name: 'an input not a tensor',
      sample: { inputs: { x0: randomUniform([1, 2, 2, 2], { seed: 2 }) }, options: { count: 1 } },
      call: (b, { inputs }) => b.concat([inputs.x0!, [1, 2] as never]),
      message: /^concat: xs\[1\] expects a Tensor, got \[1, 2\]$/,
    },
    {
      name: 'an input not 4-D',
      sample: {
        inputs: { x0: randomUniform([1, 2, 2, 2], { seed: 3 }), x1: randomUniform([2, 2, 2], { seed: 4 }) },
        options: { count: 2 },
      },
      call: (b, { inputs }) => b.concat([inputs.x0!, inputs.x1!]),
      message: /^concat: xs\[1\] expects a 4-D \[N, C, H, W\] tensor, got shape \[2, 2, 2\]$/,
    },
    {
      name: 'heights differ',
      sample: {
        inputs: { x0: randomUniform([1, 2, 3, 3], { seed: 5 }), x1: randomUniform([1, 4, 2, 3], { seed: 6 }) },
        options: { count: 2 },
      },
      call: (b, { inputs }) => b.concat([inputs.x0!, inputs.x1!]),
      message: /^concat: xs\[1\] expects shape \[1, 4, 3, 3\] \(N, H and W of xs\[0\]; only channels may differ\), got \[1, 4, 2, 3\]$/,
    },
    {
      name: 'batch sizes differ',
      sample: {
        inputs: { x0: randomUniform([2, 2, 3, 3], { seed: 7 }), x1: randomUniform([1, 2, 3, 3], { seed: 8 }) },
        options: { count: 2 },
      },
      call: (b, { inputs }) => b.concat([inputs.x0!, inputs.x1!]),
      message: /^concat: xs\[1\] expects shape \[2, 2, 3, 3\] \(N, H and W of xs\[0\]; only channels may differ\), got \[1, 2, 3, 3\]$/,
    },
    {
      name: 'mixed layouts',
      sample: {
        inputs: { x0: randomUniform([1, 2, 3, 3], { seed: 9 }), x1: randomUniform([1, 1, 3, 3], { seed: 10, layout: 'NHWC' }) },
        options: { count: 2 },
      },
      call: (b, { inputs }) => b.concat([inputs.x0!, inputs.x1!]),
      message: /^concat: xs\[1\] expects the layout of xs\[0\] \(NCHW\); convert one with toLayout\(\), got NHWC$/,
    },
    {
      name: 'mixed dtypes',
      sample: {
        inputs: { x0: randomUniform([1, 2, 3, 3], { seed: 11 }), x1: randomUniform([1, 1, 3, 3], { seed: 12, dtype: 'float64' }) },
        options: { count: 2 },
      },
      call: (b, { inputs }) => b.concat([inputs.x0!, inputs.x1!]),
      message: /^concat: xs\[1\] expects the dtype of xs\[0\] \(float32\), got float64$/,
    },
    {
      name: 'dy of another shape',
      sample: {
        inputs: {
          x0: randomUniform([1, 2, 3, 3], { seed: 13 }),
          x1: randomUniform([1, 1, 3, 3], { seed: 14 }),
          dy: randomUniform([1, 2, 3, 3], { seed: 15 }),
        },
        options: { count: 2 },
      },
      call: (b, { inputs }) => b.concatBackward(inputs.dy!, [inputs.x0!, inputs.x1!]),
      message: /^concatBackward: dy expects shape \[1, 3, 3, 3\] \(concat's output shape\), got \[1, 2, 3, 3\]$/,
    },
    {
      name: 'dy in another layout',
      sample: {
        inputs: { x0: randomUniform([1, 2, 3, 3], { seed: 16 }), dy: randomUniform([1, 2, 3, 3], { seed: 17, layout: 'NHWC' }) },
        options: { count: 1 },
      },
      call: (b, { inputs }) => b.concatBackward(inputs.dy!, [inputs.x0!]),
      message: /^concatBackward: dy expects the layout of xs\[0\] \(NCHW\); convert one with toLayout\(\), got NHWC$/,
    },
    {
      name: 'backward inputs of differing heights',
      sample: {
        inputs: {
          x0: randomUniform([1, 2, 3, 3], { seed: 18 }),
          x1: randomUniform([1, 1, 2, 3], { seed: 19 }),
          dy: randomUniform([1, 3, 3, 3], { seed: 20 }),
        },
        options: { count: 2 },
      },
      call: (b, { inputs }) => b.concatBackward(inputs.dy!, [inputs.x0!, inputs.x1!]),
      message:
        /^concatBackward: xs\[1\] expects shape \[1, 1, 3, 3\] \(N, H and W of xs\[0\]; only channels may differ\), got \[1, 1, 2, 3\]$/,
    },
  ],
});
