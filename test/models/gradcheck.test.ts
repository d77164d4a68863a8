/**
 * Gradient check of the WHOLE network: the hand-written backward of ShuffleNet v1 in float64 on the
 * reference backend, against central differences of the mean softmax cross-entropy over a batch,
 *
 *   dL/dθ_i ~ (L(θ + h e_i) - L(θ - h e_i)) / 2h,   h = 1e-6,
 *
 * in training mode (batch-norm statistics from the batch, so their gradients count), on a random
 * subset of parameter elements (at least one from every parameter tensor in the small configs) and
 * of input elements. Each probe costs two forwards, so the networks are tiny.
 */
import { Rng, randomUniform, type Tensor, tensor } from '@shuffle/core';
import { reference } from '@shuffle/kernels';
import { type ShuffleNetV1, type ShuffleNetV1Options, shuffleNetV1 } from '@shuffle/models';
import { describe, expect, it } from 'vitest';
import { centralDifference, expectGradientsClose } from './support.js';

interface Case {
  name: string;
  options: ShuffleNetV1Options;
  input: [number, number, number, number];
  /** How many parameter tensors get a probe (all of them when undefined). */
  parameterProbes?: number;
  inputProbes: number;
  training: boolean;
}

const cases: Case[] = [
  {
    name: 'g3 0.25x, small stem, official shuffle, 16 units (1x3x8x8 images, batch 2)',
    options: { backend: reference, dtype: 'float64', groups: 3, width: 0.25, stem: 'small', shuffle: 'official', numClasses: 4, seed: 11 },
    input: [2, 3, 8, 8],
    parameterProbes: 40,
    inputProbes: 12,
    training: true,
  },
  {
    name: 'g2 custom channels, imagenet stem (max pool), paper shuffle, classifier bias (batch 3, 32x32)',
    options: {
      backend: reference,
      dtype: 'float64',
      groups: 2,
      channels: { conv1: 4, stages: [16, 32, 64] },
      stem: 'imagenet',
      shuffle: 'paper',
      repeats: [2, 2, 1],
      classifierBias: true,
      numClasses: 3,
      seed: 12,
    },
    input: [3, 3, 32, 32],
    inputProbes: 24,
    training: true,
  },
  {
    name: 'g4 custom channels, eval mode, 2 input channels (batch 2, 12x10)',
    options: {
      backend: reference,
      dtype: 'float64',
      groups: 4,
      channels: { conv1: 8, stages: [32, 64, 128] },
      repeats: [2, 2, 2],
      inChannels: 2,
      stem: 'small',
      numClasses: 3,
      seed: 13,
    },
    input: [2, 2, 12, 10],
    inputProbes: 12,
    training: false,
  },
];

/** Random BN statistics, so that eval mode does not see the identity transform of a fresh model. */
function randomizeRunningStats(model: ShuffleNetV1, rng: Rng): void {
  for (const t of model.buffers()) {
    for (let i = 0; i < t.value.size; i++) t.value.data[i] = t.name.endsWith('var') ? 0.5 + rng.uniform() : 0.2 * (rng.uniform() - 0.5);
  }
}

describe('whole-network gradient check (float64, reference backend, softmax cross-entropy)', () => {
  it.each(cases)('$name', ({ options, input, parameterProbes, inputProbes, training }) => {
    const model = shuffleNetV1(options);
    const rng = new Rng(99);
    if (!training) randomizeRunningStats(model, rng);
    const numClasses = options.numClasses as number;
    const x = randomUniform(input, { seed: 5, low: -1, high: 1, dtype: 'float64' });
    const labels = Array.from({ length: input[0] }, (_, n) => n % numClasses);
    // In training mode every forward also moves the running statistics, which the training-mode
    // output does not read; eval mode reads them, so they are put back after each forward.
    const stats = model.buffers().map((t) => t.value.data.slice());
    const restoreStats = () => {
      model.buffers().forEach((t, i) => {
        t.value.data.set(stats[i] as Float64Array);
      });
    };
    const loss = (): number => {
      const logits = model.forward(x, { training });
      restoreStats();
      return reference.softmaxCrossEntropy(logits, labels).data[0] as number;
    };

    const logits = model.forward(x, { training });
    restoreStats();
    const { dlogits } = reference.softmaxCrossEntropyBackward(tensor([1], [], 'NCHW', 'float64'), logits, labels);
    const dx = model.backward(dlogits);
    const grads = new Map(model.parameters().map((p) => [p.name, p.grad.clone()]));

    const parameters = model.parameters();
    const chosen = parameterProbes === undefined ? parameters : rng.shuffle([...parameters]).slice(0, parameterProbes);
    // The stem and the classifier always: the two ends of the backward walk.
    for (const name of ['first_conv.0.weight', 'classifier.0.weight']) {
      if (!chosen.some((p) => p.name === name)) chosen.push(parameters.find((p) => p.name === name)!);
    }
    const kinds = new Set(chosen.map((p) => p.kind));
    expect([...kinds].sort()).toEqual(
      options.classifierBias ? ['batchnorm', 'bias', 'conv', 'depthwise', 'linear'] : ['batchnorm', 'conv', 'depthwise', 'linear'],
    );

    const checks: { label: string; analytic: number; numeric: number }[] = [];
    for (const p of chosen) {
      const i = rng.int(p.value.size);
      const analytic = (grads.get(p.name) as Tensor).data[i] as number;
      checks.push({ label: `${p.name}[${i}]`, analytic, numeric: centralDifference(loss, p.value, i) });
    }
    for (let k = 0; k < inputProbes; k++) {
      const i = rng.int(x.size);
      checks.push({ label: `x[${i}]`, analytic: dx.data[i] as number, numeric: centralDifference(loss, x, i) });
    }
    // Mostly not ~0 (some are 0 by structure: a BN beta whose shift the next training-mode BN removes,
    // depthwise taps that only ever see padding at 1x1), so the check has something to compare.
    expect(checks.filter((c) => Math.abs(c.numeric) > 1e-6).length).toBeGreaterThan(checks.length / 2);
    expectGradientsClose(checks, { atol: 1e-7, rtol: 1e-5 });
  });
});
