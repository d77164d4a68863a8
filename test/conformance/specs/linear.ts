import { type Layout, randomUniform, type Tensor, tensor, zerosLike } from '@shuffle/core';
import type { LinearOptions } from '@shuffle/kernels';
import fc from 'fast-check';
import { defineSpec, type Sample } from '../spec.js';
import { randomInputs } from '../support/arbitraries.js';

interface Options {
  withBias: boolean;
}

const linearOptions = ({ inputs, options }: Sample<Options>): LinearOptions => (options.withBias ? { bias: inputs.bias! } : {});

/**
 * x [N, in] (or [N, in, 1, 1], the output of a global average pool), weight [out, in], and a bias input
 * that the call uses only when `withBias`. Without it the output does not depend on the bias, so its
 * gradient is 0, which the finite differences confirm.
 */
const samples = fc
  .record({
    batch: fc.integer({ min: 1, max: 4 }),
    inFeatures: fc.integer({ min: 1, max: 7 }),
    outFeatures: fc.integer({ min: 1, max: 6 }),
    fourD: fc.boolean(),
    withBias: fc.boolean(),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  })
  .map(({ batch, inFeatures, outFeatures, fourD, withBias, seed }): Sample<Options> => {
    const shapes = { x: fourD ? [batch, inFeatures, 1, 1] : [batch, inFeatures], weight: [outFeatures, inFeatures], bias: [outFeatures] };
    return { inputs: randomInputs(shapes, seed), options: { withBias } };
  });

const errorSample = (shapes: Record<string, number[]>, withBias = false, layout: Layout = 'NCHW'): Sample<Options> => {
  const inputs = randomInputs(shapes, 7);
  if (inputs.x?.rank === 4) inputs.x = inputs.x.toLayout(layout);
  return { inputs, options: { withBias } };
};

export default defineSpec<Options>({
  op: 'linear',
  samples,
  forward: (b, sample) => b.linear(sample.inputs.x!, sample.inputs.weight!, linearOptions(sample)),
  backward: (b, dy, sample) => {
    const { dx, dweight, dbias } = b.linearBackward(dy as Tensor, sample.inputs.x!, sample.inputs.weight!, linearOptions(sample));
    if ((dbias !== undefined) !== sample.options.withBias)
      throw new Error(`linearBackward on ${b.name}: dbias must come exactly when a bias was given`);
    return { x: dx, weight: dweight, bias: dbias ?? zerosLike(sample.inputs.bias!) };
  },
  differentiable: ['x', 'weight', 'bias'],
  golden: [
    {
      // y[0] = [1*1 + 2*0 + 0.5, 1*0 + 2*1 - 1, 1 + 2 + 0] = [1.5, 1, 3]; y[1] = [3.5, 3, 7].
      name: '2-D x with bias',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4], [2, 2]), weight: tensor([1, 0, 0, 1, 1, 1], [3, 2]), bias: tensor([0.5, -1, 0], [3]) },
        options: { withBias: true },
      },
      expected: tensor([1.5, 1, 3, 3.5, 3, 7], [2, 3]),
    },
    {
      // The same numbers as a [2, 2, 1, 1] pooled feature map, also run in NHWC by the suite.
      name: '[N, in, 1, 1] x without bias',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4], [2, 2, 1, 1]), weight: tensor([1, 0, 0, 1, 1, 1], [3, 2]) },
        options: { withBias: false },
      },
      expected: tensor([1, 2, 3, 3, 4, 7], [2, 3]),
    },
    {
      // y = 2 * (-1) + (-3) * 0.5 + 0.25 = -3.25
      name: 'one sample, one output',
      sample: {
        inputs: { x: tensor([-1, 0.5], [1, 2]), weight: tensor([2, -3], [1, 2]), bias: tensor([0.25], [1]) },
        options: { withBias: true },
      },
      expected: tensor([-3.25], [1, 1]),
    },
  ],
  errors: [
    {
      name: 'x of rank 3',
      sample: errorSample({ x: [2, 3, 1], weight: [4, 3] }),
      call: (b, { inputs }) => b.linear(inputs.x!, inputs.weight!),
      message: /^linear: x expects a 2-D or 4-D \[N, C, H, W\] tensor, got shape \[2, 3, 1\]$/,
    },
    {
      name: '4-D x with spatial extent',
      sample: errorSample({ x: [2, 3, 2, 1], weight: [4, 3] }),
      call: (b, { inputs }) => b.linear(inputs.x!, inputs.weight!),
      message: /^linear: x expects \[N, in\] or \[N, in, 1, 1\] \(flatten or pool the spatial axes first\), got shape \[2, 3, 2, 1\]$/,
    },
    {
      name: 'weight of rank 4',
      sample: errorSample({ x: [2, 3], weight: [4, 3, 1, 1] }),
      call: (b, { inputs }) => b.linear(inputs.x!, inputs.weight!),
      message: /^linear: weight expects a 2-D tensor, got shape \[4, 3, 1, 1\]$/,
    },
    {
      name: 'weight in-features unlike x features',
      sample: errorSample({ x: [2, 3], weight: [4, 5] }),
      call: (b, { inputs }) => b.linear(inputs.x!, inputs.weight!),
      message: /^linear: weight expects shape \[4, 3\] \(\[out, in\] with in = x's 3 features\), got \[4, 5\]$/,
    },
    {
      name: 'bias of the wrong length',
      sample: errorSample({ x: [2, 3, 1, 1], weight: [4, 3], bias: [3] }, true, 'NHWC'),
      call: (b, { inputs }) => b.linear(inputs.x!, inputs.weight!, { bias: inputs.bias! }),
      message: /^linear: options\.bias expects shape \[4\] \(one per output feature\), got \[3\]$/,
    },
    {
      name: 'bias of rank 2',
      sample: errorSample({ x: [2, 3], weight: [4, 3], bias: [1, 4] }, true),
      call: (b, { inputs }) => b.linear(inputs.x!, inputs.weight!, { bias: inputs.bias! }),
      message: /^linear: options\.bias expects a 1-D tensor, got shape \[1, 4\]$/,
    },
    {
      name: 'bias not a tensor',
      sample: errorSample({ x: [2, 3], weight: [4, 3] }),
      call: (b, { inputs }) => b.linear(inputs.x!, inputs.weight!, { bias: [0, 0, 0, 0] as never }),
      message: /^linear: options\.bias expects a Tensor, got \[0, 0, 0, 0\]$/,
    },
    {
      name: 'weight of another dtype',
      sample: {
        inputs: { x: randomUniform([2, 3], { seed: 1 }), weight: randomUniform([4, 3], { seed: 2, dtype: 'float64' }) },
        options: { withBias: false },
      },
      call: (b, { inputs }) => b.linear(inputs.x!, inputs.weight!),
      message: /^linear: weight expects the dtype of x \(float32\), got float64$/,
    },
    {
      name: 'dy of another shape',
      sample: errorSample({ x: [2, 3, 1, 1], weight: [4, 3], dy: [2, 4, 1, 1] }, false, 'NHWC'),
      call: (b, { inputs }) => b.linearBackward(inputs.dy!, inputs.x!, inputs.weight!),
      message: /^linearBackward: dy expects shape \[2, 4\] \(linear's output shape \[N, out\]\), got \[2, 4, 1, 1\]$/,
    },
    {
      name: 'dy of another dtype',
      sample: {
        inputs: {
          x: randomUniform([2, 3], { seed: 1 }),
          weight: randomUniform([4, 3], { seed: 2 }),
          dy: randomUniform([2, 4], { seed: 3, dtype: 'float64' }),
        },
        options: { withBias: false },
      },
      call: (b, { inputs }) => b.linearBackward(inputs.dy!, inputs.x!, inputs.weight!),
      message: /^linearBackward: dy expects the dtype of x \(float32\), got float64$/,
    },
  ],
});
