import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import { type Backend, type BatchNorm2dOptions, reference } from '@shuffle/kernels';
import type fc from 'fast-check';
import { defineSpec, type Sample } from '../spec.js';
import batchNorm2dSpec, { errorSample, vector } from './batch-norm2d.js';

/** The forward on copies of the running statistics (training updates them in place), as batch norm's spec does. */
function run(b: Backend, { inputs, options }: Sample<BatchNorm2dOptions>) {
  const { x, gamma, beta, runningMean, runningVar } = inputs;
  return b.batchNormRelu2dWithSaved(x!, gamma!, beta!, runningMean!.clone(), runningVar!.clone(), options);
}

const saved3 = () => ({ mean: new Float64Array(3), invStd: new Float64Array(3) });

/**
 * batch norm's samples (both modes, default and explicit momentum/eps, down to 2 values per channel):
 * the fused op must equal relu(batchNorm2d(x)) on every one of them.
 */
export default defineSpec<BatchNorm2dOptions>({
  op: 'batchNormRelu2d',
  samples: batchNorm2dSpec.samples as fc.Arbitrary<Sample<BatchNorm2dOptions>>,
  forward: (b, sample) => run(b, sample).y,
  backward: (b, dy, sample) => {
    const { saved } = run(b, sample);
    const { inputs, options } = sample;
    const { dx, dgamma, dbeta } = b.batchNormRelu2dBackward(dy as Tensor, inputs.x!, inputs.gamma!, inputs.beta!, saved, options);
    return { x: dx, gamma: dgamma, beta: dbeta };
  },
  differentiable: ['x', 'gamma', 'beta'],
  golden: [
    {
      // Inference as in batch norm's golden case (y = gamma (x - mean) / 2 + beta, gamma (x + 1) / 0.5 + beta,
      // giving 1, 0, -1, 3), then the ReLU: the -1 becomes 0.
      name: 'inference, then the ReLU',
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
      expected: tensor([1, 0, 0, 3], [1, 2, 1, 2]),
    },
    {
      // Training, one channel holding 1, 2, 3, 4: mean 2.5, variance 1.25, gamma 1, beta 0: xhat < 0 for 1 and 2.
      name: 'training normalises with the batch statistics, then the ReLU',
      sample: {
        inputs: {
          x: tensor([1, 2, 3, 4], [1, 1, 2, 2]),
          gamma: vector([1]),
          beta: vector([0]),
          runningMean: vector([0]),
          runningVar: vector([1]),
        },
        options: { training: true },
      },
      expected: (() => {
        const s = 1 / Math.sqrt(1.25 + 1e-5);
        return tensor([0, 0, 0.5 * s, 1.5 * s], [1, 1, 2, 2]);
      })(),
    },
  ],
  errors: [
    {
      name: 'gamma of the wrong length',
      sample: errorSample({ gamma: vector([1, 1]) }),
      call: (b, { inputs, options }) =>
        b.batchNormRelu2d(inputs.x!, inputs.gamma!, inputs.beta!, inputs.runningMean!, inputs.runningVar!, options),
      message: /^batchNormRelu2d: gamma expects shape \[3\] \(one per channel of x\), got \[2\]$/,
    },
    {
      name: 'one value per channel when training',
      sample: errorSample({ x: randomUniform([1, 3, 1, 1], { seed: 1 }) }, { training: true }),
      call: (b, sample) => run(b, sample),
      message:
        /^batchNormRelu2dWithSaved: x expects more than 1 value per channel when training \(N\*H\*W = 1\), got shape \[1, 3, 1, 1\]$/,
    },
    {
      name: 'beta missing in the backward',
      sample: errorSample({ dy: randomUniform([2, 3, 2, 2], { seed: 2 }) }),
      call: (b, { inputs, options }) =>
        b.batchNormRelu2dBackward(inputs.dy!, inputs.x!, inputs.gamma!, undefined as never, saved3(), options),
      message:
        /^batchNormRelu2dBackward: beta expects a 1-D tensor \[C\] \(the forward's beta: the ReLU's mask depends on it\), got undefined$/,
    },
    {
      name: 'beta of the wrong length in the backward',
      sample: errorSample({ dy: randomUniform([2, 3, 2, 2], { seed: 2 }), beta: vector([0, 0]) }),
      call: (b, { inputs, options }) => b.batchNormRelu2dBackward(inputs.dy!, inputs.x!, inputs.gamma!, inputs.beta!, saved3(), options),
      message: /^batchNormRelu2dBackward: beta expects shape \[3\] \(one per channel of x\), got \[2\]$/,
    },
    {
      name: 'dy of another shape',
      sample: errorSample({ dy: randomUniform([2, 3, 2, 1], { seed: 2 }) }),
      call: (b, { inputs, options }) => b.batchNormRelu2dBackward(inputs.dy!, inputs.x!, inputs.gamma!, inputs.beta!, saved3(), options),
      message: /^batchNormRelu2dBackward: dy expects shape \[2, 3, 2, 2\] \(batchNormRelu2d's output shape\), got \[2, 3, 2, 1\]$/,
    },
    {
      name: 'saved missing',
      sample: errorSample({ dy: randomUniform([2, 3, 2, 2], { seed: 2 }) }),
      call: (b, { inputs, options }) =>
        b.batchNormRelu2dBackward(inputs.dy!, inputs.x!, inputs.gamma!, inputs.beta!, undefined as never, options),
      message: /^batchNormRelu2dBackward: saved expects the \{ mean, invStd \} returned by batchNormRelu2dWithSaved, got undefined$/,
    },
  ],
  /*
   * Finite differences across the ReLU's kink are wrong. Every pre-activation of a channel moves with its
   * beta (xhat does not depend on it), so shift beta until all of the channel's pre-activations are at
   * least 0.01 from 0: far beyond what a 1e-6 step of x moves them (at most |gamma| invStd 1e-6 ~ 3e-4).
   */
  prepareForGradcheck: (sample) => {
    const { inputs, options } = sample;
    const z = reference.batchNorm2d(
      inputs.x!,
      inputs.gamma!,
      inputs.beta!,
      inputs.runningMean!.clone(),
      inputs.runningVar!.clone(),
      options,
    );
    const [n, c, h, w] = z.shape as [number, number, number, number];
    const beta = inputs.beta!.clone();
    for (let channel = 0; channel < c; channel++) {
      const values: number[] = [];
      for (let image = 0; image < n; image++)
        for (let i = 0; i < h * w; i++) values.push(z.get([image, channel, Math.floor(i / w), i % w]));
      const clear = (shift: number) => values.every((v) => Math.abs(v + shift) >= 0.01);
      // batch norm's samples have at most 3 x 4 x 4 = 48 values per channel, which exclude 48 gaps of width
      // 0.02: some shift among these 201 (0.015 apart, 3 wide in all) is clear.
      const shifts = Array.from({ length: 201 }, (_, k) => (k % 2 === 0 ? 1 : -1) * Math.ceil(k / 2) * 0.015);
      const shift = shifts.find(clear);
      if (shift === undefined)
        throw new Error(`batchNormRelu2d gradcheck: no beta shift clears channel ${channel}'s ${values.length} values`);
      beta.data[channel] = (beta.data[channel] as number) + shift;
    }
    return { inputs: { ...inputs, beta }, options };
  },
});
