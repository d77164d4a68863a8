import { assertClose, compareTensors, Rng, randomUniform } from '@shuffle/core';
import { reference } from '@shuffle/kernels';
import { foldBatchNorm, type ShuffleNetV1, type ShuffleNetV1Options, shuffleNetV1 } from '@shuffle/models';
import { describe, expect, it } from 'vitest';

const TINY: ShuffleNetV1Options = {
  backend: reference,
  groups: 2,
  channels: { conv1: 4, stages: [16, 32, 64] },
  repeats: [2, 2, 1],
  numClasses: 5,
  classifierBias: true,
};

/** Gives the batch norms learned-looking gamma and beta, then running statistics from a few training batches. */
function trainStatistics(model: ShuffleNetV1, inputShape: number[], seed: number): void {
  const rng = new Rng(seed);
  for (const p of model.parameters()) {
    if (p.kind !== 'batchnorm') continue;
    const isGamma = p.name.endsWith('.weight');
    for (let i = 0; i < p.value.size; i++) p.value.data[i] = isGamma ? 0.5 + rng.uniform() : rng.uniform() - 0.5;
  }
  // Momentum 0.1: a few batches move the statistics well away from (0, 1).
  for (let step = 0; step < 4; step++) {
    model.forward(randomUniform(inputShape, { seed: rng, dtype: model.config.dtype }), { training: true });
  }
}

describe('foldBatchNorm', () => {
  for (const shuffle of ['paper', 'official'] as const) {
    it(`${shuffle} shuffle: the folded model's logits equal the eval-mode logits (float32 tolerance), in both layouts`, () => {
      const model = shuffleNetV1({ ...TINY, shuffle });
      trainStatistics(model, [4, 3, 16, 16], 1);
      const folded = foldBatchNorm(model);
      const x = randomUniform([3, 3, 16, 16], { seed: 2 });
      const expected = model.forward(x);
      assertClose(folded.forward(x), expected, { atol: 1e-4, rtol: 1e-4 }, 'NCHW');
      assertClose(folded.forward(x.toLayout('NHWC')), expected, { atol: 1e-4, rtol: 1e-4 }, 'NHWC');
      // Not the training-mode function, and not a no-op: the statistics matter.
      expect(compareTensors(model.forward(x, { training: true }), expected).maxAbsError).toBeGreaterThan(1e-3);
    });
  }

  it('float64: folding is exact up to rounding (g3 0.25x, imagenet stem, 32x32)', () => {
    const model = shuffleNetV1({ backend: reference, groups: 3, width: 0.25, numClasses: 7, dtype: 'float64', seed: 3 });
    trainStatistics(model, [2, 3, 32, 32], 4);
    const x = randomUniform([2, 3, 32, 32], { seed: 5, dtype: 'float64' });
    assertClose(foldBatchNorm(model).forward(x), model.forward(x), { atol: 1e-11, rtol: 1e-10 });
  });

  it('has convs with bias and no batch norm: every conv key gets a .bias, nothing else changes name', () => {
    const model = shuffleNetV1({ ...TINY, classifierBias: false });
    const folded = foldBatchNorm(model);
    const convKeys = model
      .parameters()
      .filter((p) => p.kind === 'conv' || p.kind === 'depthwise')
      .map((p) => p.name.replace(/\.weight$/, ''));
    expect(folded.parameters().map((p) => p.name)).toEqual([
      ...convKeys.flatMap((k) => [`${k}.weight`, `${k}.bias`]),
      'classifier.0.weight',
    ]);
    expect(folded.parameters().some((p) => p.kind === 'batchnorm')).toBe(false);
    expect(folded.buffers()).toEqual([]);
    const shapes = new Map(model.parameters().map((p) => [p.name, p.value.shape]));
    for (const p of folded.parameters()) if (p.name.endsWith('.weight')) expect(p.value.shape).toEqual(shapes.get(p.name));
  });

  it('is a snapshot: later changes to the source model do not reach it; it refuses training mode', () => {
    const model = shuffleNetV1(TINY);
    trainStatistics(model, [2, 3, 16, 16], 6);
    const folded = foldBatchNorm(model);
    const x = randomUniform([2, 3, 16, 16], { seed: 7 });
    const before = folded.forward(x);
    model.parameters()[0]!.value.data.fill(0);
    model.forward(x, { training: true });
    assertClose(folded.forward(x), before);
    expect(() => folded.forward(x, { training: true })).toThrow(/^FoldedShuffleNetV1\.forward: options\.training expects false/);
    expect(() => foldBatchNorm({} as never)).toThrow(/^foldBatchNorm: model expects a ShuffleNetV1/);
  });
});
