import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import type { Labels } from '@shuffle/kernels';
import fc from 'fast-check';
import { defineSpec, type Sample } from '../spec.js';
import { randomInputs } from '../support/arbitraries.js';

/** The labels are not a tensor input: they ride in the options, and only the logits are differentiable. */
interface Options {
  labels: Labels;
  labelSmoothing?: number;
}

/**
 * logits [N, classes] with N from 1 (a batch of one) and classes from 1 (the loss is 0 whatever the
 * logits), labels as an Int32Array or a plain array, reaching 0 and classes - 1, smoothing 0 (the
 * default, left out) or in [0, 0.9], and logits up to +-40 (exp(40) overflows float32 without the
 * max subtraction).
 */
const samples = fc
  .record({ batch: fc.integer({ min: 1, max: 4 }), classes: fc.integer({ min: 1, max: 7 }) })
  .chain(({ batch, classes }) =>
    fc.record({
      logits: fc
        .tuple(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(1, 40))
        .map(([seed, scale]) => scaled(randomInputs({ logits: [batch, classes] }, seed).logits!, scale)),
      labels: fc.array(fc.integer({ min: 0, max: classes - 1 }), { minLength: batch, maxLength: batch }),
      asInt32: fc.boolean(),
      labelSmoothing: fc.option(fc.double({ min: 0, max: 0.9, noNaN: true }), { nil: undefined }),
    }),
  )
  .map(({ logits, labels, asInt32, labelSmoothing }): Sample<Options> => {
    const options: Options = { labels: asInt32 ? Int32Array.from(labels) : labels };
    if (labelSmoothing !== undefined) options.labelSmoothing = labelSmoothing;
    return { inputs: { logits }, options };
  });

function scaled(t: Tensor, factor: number): Tensor {
  const out = t.clone();
  for (let i = 0; i < out.size; i++) out.data[i] = (out.data[i] as number) * factor;
  return out;
}

const smoothing = ({ labelSmoothing }: Options) => (labelSmoothing === undefined ? undefined : { labelSmoothing });

const errorSample = (shape: number[], labels: Labels, labelSmoothing?: number): Sample<Options> => ({
  inputs: { logits: randomUniform(shape, { seed: 3, low: -1, high: 1 }) },
  options: labelSmoothing === undefined ? { labels } : { labels, labelSmoothing },
});

export default defineSpec<Options>({
  op: 'softmaxCrossEntropy',
  samples,
  forward: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels, smoothing(options)),
  backward: (b, dy, { inputs, options }) => ({
    logits: b.softmaxCrossEntropyBackward(dy as Tensor, inputs.logits!, options.labels, smoothing(options)).dlogits,
  }),
  differentiable: ['logits'],
  golden: [
    {
      // Equal logits: p = 1/4 for every class, so each row loses -log(1/4) = log 4.
      name: 'uniform logits give log(classes)',
      sample: { inputs: { logits: tensor([0, 0, 0, 0, 0, 0, 0, 0], [2, 4]) }, options: { labels: [0, 3] } },
      expected: tensor([Math.log(4)], []),
    },
    {
      // Smoothing mixes in the uniform target, which against uniform p also loses log K: still log 5.
      name: 'uniform logits give log(classes) with smoothing too',
      sample: { inputs: { logits: tensor([2, 2, 2, 2, 2], [1, 5]) }, options: { labels: [4], labelSmoothing: 0.3 } },
      expected: tensor([Math.log(5)], []),
    },
    {
      // Row 0: log 2. Row 1: lse = 1000 + log(1 + e^-1000) = 1000 (to double precision), loss = 1000 - 0.
      // exp(1000) overflows even float64, so this needs the max subtracted.
      name: 'huge logits stay finite',
      sample: { inputs: { logits: tensor([0, 0, 1000, 0], [2, 2]) }, options: { labels: Int32Array.from([0, 1]) } },
      expected: tensor([(Math.log(2) + 1000) / 2], []),
    },
    {
      // t = [1 - 0.5 + 0.25, 0.25] = [0.75, 0.25], lse = log(3 + 1) = log 4, loss = log 4 - 0.75 log 3 - 0.25 * 0.
      name: 'label smoothing 0.5 on two classes',
      sample: { inputs: { logits: tensor([Math.log(3), 0], [1, 2]) }, options: { labels: [0], labelSmoothing: 0.5 } },
      expected: tensor([Math.log(4) - 0.75 * Math.log(3)], []),
    },
  ],
  errors: [
    {
      name: 'logits of rank 4',
      sample: errorSample([2, 3, 1, 1], [0, 1]),
      call: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels),
      message: /^softmaxCrossEntropy: logits expects a 2-D tensor, got shape \[2, 3, 1, 1\]$/,
    },
    {
      name: 'an empty batch',
      sample: errorSample([0, 3], []),
      call: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels),
      message: /^softmaxCrossEntropy: logits expects at least one row and one class, got shape \[0, 3\]$/,
    },
    {
      name: 'labels in a Float32Array',
      sample: errorSample([2, 3], [0, 1]),
      call: (b, { inputs }) => b.softmaxCrossEntropy(inputs.logits!, new Float32Array([0, 1]) as never),
      message: /^softmaxCrossEntropy: labels expects an Int32Array or an array of integers, got Float32Array\(2\)$/,
    },
    {
      name: 'one label too few',
      sample: errorSample([3, 4], [0, 1]),
      call: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels),
      message: /^softmaxCrossEntropy: labels expects 3 labels \(one per row of logits\), got 2$/,
    },
    {
      name: 'a label equal to the class count',
      sample: errorSample([2, 4], [0, 4]),
      call: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels),
      message: /^softmaxCrossEntropy: labels\[1\] expects an integer class index in \[0, 3\], got 4$/,
    },
    {
      name: 'a negative label',
      sample: errorSample([2, 4], Int32Array.from([-1, 0])),
      call: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels),
      message: /^softmaxCrossEntropy: labels\[0\] expects an integer class index in \[0, 3\], got -1$/,
    },
    {
      name: 'a fractional label',
      sample: errorSample([2, 4], [1.5, 0]),
      call: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels),
      message: /^softmaxCrossEntropy: labels\[0\] expects an integer class index in \[0, 3\], got 1\.5$/,
    },
    {
      name: 'a NaN label',
      sample: errorSample([2, 4], [0, Number.NaN]),
      call: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels),
      message: /^softmaxCrossEntropy: labels\[1\] expects an integer class index in \[0, 3\], got NaN$/,
    },
    {
      name: 'label smoothing 1',
      sample: errorSample([2, 4], [0, 1], 1),
      call: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels, { labelSmoothing: options.labelSmoothing }),
      message: /^softmaxCrossEntropy: options\.labelSmoothing expects a number in \[0, 1\), got 1$/,
    },
    {
      name: 'negative label smoothing',
      sample: errorSample([2, 4], [0, 1], -0.1),
      call: (b, { inputs, options }) => b.softmaxCrossEntropy(inputs.logits!, options.labels, { labelSmoothing: options.labelSmoothing }),
      message: /^softmaxCrossEntropy: options\.labelSmoothing expects a number in \[0, 1\), got -0\.1$/,
    },
    {
      name: 'dy that is not 0-D',
      sample: { inputs: { logits: randomUniform([2, 3], { seed: 1 }), dy: tensor([1], [1]) }, options: { labels: [0, 2] } },
      call: (b, { inputs, options }) => b.softmaxCrossEntropyBackward(inputs.dy!, inputs.logits!, options.labels),
      message: /^softmaxCrossEntropyBackward: dy expects shape \[\] \(the loss is a 0-D tensor\), got \[1\]$/,
    },
    {
      name: 'dy of another dtype',
      sample: {
        inputs: { logits: randomUniform([2, 3], { seed: 1 }), dy: tensor([1], [], 'NCHW', 'float64') },
        options: { labels: [0, 2] },
      },
      call: (b, { inputs, options }) => b.softmaxCrossEntropyBackward(inputs.dy!, inputs.logits!, options.labels),
      message: /^softmaxCrossEntropyBackward: dy expects the dtype of logits \(float32\), got float64$/,
    },
    {
      name: 'backward with a label out of range',
      sample: { inputs: { logits: randomUniform([2, 3], { seed: 1 }), dy: tensor([1], []) }, options: { labels: [3, 0] } },
      call: (b, { inputs, options }) => b.softmaxCrossEntropyBackward(inputs.dy!, inputs.logits!, options.labels),
      message: /^softmaxCrossEntropyBackward: labels\[0\] expects an integer class index in \[0, 2\], got 3$/,
    },
  ],
});
