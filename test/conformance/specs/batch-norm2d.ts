import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import type { Backend, BatchNorm2dOptions } from '@shuffle/kernels';
import fc from 'fast-check';
import { defineSpec, type Sample } from '../spec.js';
import { randomInputs, shape4 } from '../support/arbitraries.js';

/**
 * The forward on copies of the running statistics: training mode updates them in place, and the suite
 * calls the forward many times on one sample (the update itself is tested in test/ops/batch-norm2d).
 */
function run(b: Backend, { inputs, options }: Sample<BatchNorm2dOptions>) {
  const { x, gamma, beta, runningMean, runningVar } = inputs;
  return b.batchNorm2dWithSaved(x!, gamma!, beta!, runningMean!.clone(), runningVar!.clone(), options);
}

/**
 * Both modes, with default and explicit momentum / eps. Training needs N*H*W >= 2 per channel; it
 * reaches exactly 2 (where every xhat is about +-1), 1x1 spatial with N > 1, and N = 1 with H*W > 1.
 * Running variances are positive (0.1 to 2); gamma may be negative or near 0. Finite differences need
 * no nudging, even on a near-constant channel: eps keeps invStd <= 1/sqrt(1e-5) ~ 316.
 */
const samples = fc
  .record({
    shape: shape4({ maxN: 3, maxC: 5, maxH: 4, maxW: 4 }),
    training: fc.boolean(),
    explicit: fc.option(fc.record({ momentum: fc.double({ min: 0, max: 1, noNaN: true }), eps: fc.constantFrom(1e-5, 1e-3, 0.1) }), {
      nil: undefined,
    }),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  })
  .map(({ shape, training, explicit, seed }): Sample<BatchNorm2dOptions> => {
    const [n, c, h, w] = shape as [number, number, number, number];
    const x = training && n * h * w < 2 ? [n, c, h, 2] : [n, c, h, w];
    const inputs = randomInputs({ x, gamma: [c], beta: [c], runningMean: [c], runningVar: [c] }, seed);
    const variance = inputs.runningVar!;
    for (let i = 0; i < c; i++) variance.data[i] = 0.1 + 0.95 * ((variance.data[i] as number) + 1);
    return { inputs, options: explicit ? { training, ...explicit } : { training } };
  });

export const vector = (values: number[]) => tensor(values, [values.length]);

/** A valid call with one input replaced, for the error cases (batchNormRelu2d's spec uses it too). */
export function errorSample(replace: Record<string, Tensor> = {}, options: BatchNorm2dOptions = {}): Sample<BatchNorm2dOptions> {
  const inputs = randomInputs({ x: [2, 3, 2, 2], gamma: [3], beta: [3], runningMean: [3], runningVar: [3] }, 5);
  inputs.runningVar = vector([1, 0.5, 2]);
  return { inputs: { ...inputs, ...replace }, options };
}

const callForward = (b: Backend, { inputs, options }: Sample<BatchNorm2dOptions>) =>
  b.batchNorm2d(inputs.x!, inputs.gamma!, inputs.beta!, inputs.runningMean!, inputs.runningVar!, options);

export default defineSpec<BatchNorm2dOptions>({
  op: 'batchNorm2d',
  samples,
  forward: (b, sample) => run(b, sample).y,
  backward: (b, dy, sample) => {
    const { saved } = run(b, sample);
    const { dx, dgamma, dbeta } = b.batchNorm2dBackward(dy as Tensor, sample.inputs.x!, sample.inputs.gamma!, saved, sample.options);
    return { x: dx, gamma: dgamma, beta: dbeta };
  },
  differentiable: ['x', 'gamma', 'beta'],
  golden: [
    {
      // Channel 0 holds 1, 2, 3, 4 over (N, W): mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
      // Channel 1 holds 0, 0, 2, 2: mean 1, variance 1. Then y = gamma (x - mean) / sqrt(var + eps) + beta.
      name: 'training normalises with the batch statistics',
      sample: {
        inputs: {
          x: tensor([1, 2, 0, 0, 3, 4, 2, 2], [2, 2, 1, 2]),
          gamma: vector([2, -1]),
          beta: vector([1, 0.5]),
          runningMean: vector([100, 100]),
          runningVar: vector([100, 100]),
        },
        options: { training: true },
      },
      expected: (() => {
        const s0 = 2 / Math.sqrt(1.25 + 1e-5);
        const s1 = -1 / Math.sqrt(1 + 1e-5);
        return tensor([-1.5 * s0 + 1, -0.5 * s0 + 1, -s1 + 0.5, -s1 + 0.5, 0.5 * s0 + 1, 1.5 * s0 + 1, s1 + 0.5, s1 + 0.5], [2, 2, 1, 2]);
      })(),
    },
    {
      // Inference: channel 0 uses mean 1, var 4 - eps (so sqrt(var + eps) = 2); channel 1 mean -1, var 0.25 - eps.
      // y = gamma (x - mean) / 2 + beta, and gamma (x + 1) / 0.5 + beta.
      name: 'inference normalises with the running statistics',
      sample: {
        inputs: {
          x: tensor([3, 1, -1, 0], [1, 2, 1, 2]),
          gamma: vector([1, 2]),
          beta: vector([0, -1]),
          runningMean: vector([1, -1]),
          runningVar: vector([4 - 1e-5, 0.25 - 1e-5]),
        },
        options: {},
      },
      expected: tensor([1, 0, -1, 3], [1, 2, 1, 2]),
    },
    {
      // eps = 1 - 0.25 puts sqrt(0.25 + eps) at 1, so y = x - 0.5 + 3 in the one channel.
      name: 'inference with explicit eps',
      sample: {
        inputs: {
          x: tensor([0.5, 1.5, -2], [3, 1, 1, 1]),
          gamma: vector([1]),
          beta: vector([3]),
          runningMean: vector([0.5]),
          runningVar: vector([0.25]),
        },
        options: { eps: 0.75, momentum: 0.5 },
      },
      expected: tensor([3, 4, 0.5], [3, 1, 1, 1]),
    },
  ],
  errors: [
    {
      name: 'x of rank 2',
      sample: errorSample({ x: randomUniform([2, 3], { seed: 1 }) }),
      call: callForward,
      message: /^batchNorm2d: x expects a 4-D \[N, C, H, W\] tensor, got shape \[2, 3\]$/,
    },
    {
      name: 'gamma of the wrong length',
      sample: errorSample({ gamma: vector([1, 1]) }),
      call: callForward,
      message: /^batchNorm2d: gamma expects shape \[3\] \(one per channel of x\), got \[2\]$/,
    },
    {
      name: 'beta of rank 2',
      sample: errorSample({ beta: tensor([0, 0, 0], [1, 3]) }),
      call: callForward,
      message: /^batchNorm2d: beta expects a 1-D tensor, got shape \[1, 3\]$/,
    },
    {
      name: 'runningMean of the wrong length',
      sample: errorSample({ runningMean: vector([0, 0, 0, 0]) }, { training: true }),
      call: callForward,
      message: /^batchNorm2d: runningMean expects shape \[3\] \(one per channel of x\), got \[4\]$/,
    },
    {
      name: 'runningVar of the wrong length',
      sample: errorSample({ runningVar: vector([1]) }),
      call: callForward,
      message: /^batchNorm2d: runningVar expects shape \[3\] \(one per channel of x\), got \[1\]$/,
    },
    {
      name: 'a negative running variance in inference',
      sample: errorSample({ runningVar: vector([1, -0.5, 1]) }),
      call: callForward,
      message: /^batchNorm2d: runningVar\[1\] expects a variance >= 0, got -0\.5$/,
    },
    {
      name: 'gamma of another dtype',
      sample: errorSample({ gamma: tensor([1, 1, 1], [3], 'NCHW', 'float64') }),
      call: callForward,
      message: /^batchNorm2d: gamma expects the dtype of x \(float32\), got float64$/,
    },
    {
      name: 'one value per channel when training',
      sample: errorSample({ x: randomUniform([1, 3, 1, 1], { seed: 1 }) }, { training: true }),
      call: callForward,
      message: /^batchNorm2d: x expects more than 1 value per channel when training \(N\*H\*W = 1\), got shape \[1, 3, 1, 1\]$/,
    },
    {
      name: 'momentum above 1 (running statistics untouched)',
      sample: errorSample({}, { training: true, momentum: 1.5 }),
      call: callForward,
      message: /^batchNorm2d: options\.momentum expects a number in \[0, 1\], got 1\.5$/,
    },
    {
      name: 'NaN momentum',
      sample: errorSample({}, { training: true, momentum: Number.NaN }),
      call: callForward,
      message: /^batchNorm2d: options\.momentum expects a number in \[0, 1\], got NaN$/,
    },
    {
      name: 'negative eps',
      sample: errorSample({}, { eps: -1e-5 }),
      call: callForward,
      message: /^batchNorm2d: options\.eps expects a positive finite number, got -0\.00001$/,
    },
    {
      name: 'infinite eps',
      sample: errorSample({}, { eps: Number.POSITIVE_INFINITY }),
      call: (b, sample) => run(b, sample),
      message: /^batchNorm2dWithSaved: options\.eps expects a positive finite number, got Infinity$/,
    },
    {
      name: 'training not a boolean',
      sample: errorSample({}, { training: 'yes' as never }),
      call: callForward,
      message: /^batchNorm2d: options\.training expects a boolean, got yes$/,
    },
    {
      name: 'dy of another shape',
      sample: errorSample({ dy: randomUniform([2, 3, 2, 1], { seed: 2 }) }),
      call: (b, { inputs, options }) =>
        b.batchNorm2dBackward(inputs.dy!, inputs.x!, inputs.gamma!, { mean: new Float64Array(3), invStd: new Float64Array(3) }, options),
      message: /^batchNorm2dBackward: dy expects shape \[2, 3, 2, 2\] \(batchNorm2d's output shape\), got \[2, 3, 2, 1\]$/,
    },
    {
      name: 'dy in another layout',
      sample: errorSample({ dy: randomUniform([2, 3, 2, 2], { seed: 2, layout: 'NHWC' }) }),
      call: (b, { inputs, options }) =>
        b.batchNorm2dBackward(inputs.dy!, inputs.x!, inputs.gamma!, { mean: new Float64Array(3), invStd: new Float64Array(3) }, options),
      message: /^batchNorm2dBackward: dy expects the layout of x \(NCHW\); convert one with toLayout\(\), got NHWC$/,
    },
    {
      name: 'dy of another dtype',
      sample: errorSample({ dy: randomUniform([2, 3, 2, 2], { seed: 2, dtype: 'float64' }) }),
      call: (b, { inputs, options }) =>
        b.batchNorm2dBackward(inputs.dy!, inputs.x!, inputs.gamma!, { mean: new Float64Array(3), invStd: new Float64Array(3) }, options),
      message: /^batchNorm2dBackward: dy expects the dtype of x \(float32\), got float64$/,
    },
    {
      name: 'saved statistics of the wrong length',
      sample: errorSample({ dy: randomUniform([2, 3, 2, 2], { seed: 2 }) }),
      call: (b, { inputs, options }) =>
        b.batchNorm2dBackward(inputs.dy!, inputs.x!, inputs.gamma!, { mean: new Float64Array(3), invStd: new Float64Array(2) }, options),
      message:
        /^batchNorm2dBackward: saved\.invStd expects a Float64Array of 3 values \(one per channel, from batchNorm2dWithSaved\), got Float64Array\(2\)$/,
    },
    {
      name: 'saved missing',
      sample: errorSample({ dy: randomUniform([2, 3, 2, 2], { seed: 2 }) }),
      call: (b, { inputs, options }) => b.batchNorm2dBackward(inputs.dy!, inputs.x!, inputs.gamma!, undefined as never, options),
      message: /^batchNorm2dBackward: saved expects the \{ mean, invStd \} returned by batchNorm2dWithSaved, got undefined$/,
    },
  ],
});
