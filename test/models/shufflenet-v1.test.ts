import { assertClose, compareTensors, randomUniform, ShuffleArgumentError, type Tensor, tensor } from '@shuffle/core';
import { reference } from '@shuffle/kernels';
import {
  countMacs,
  countParameters,
  type LayerInfo,
  SHUFFLENET_V1_GROUPS,
  type ShuffleNetV1Options,
  type ShuffleNetV1Width,
  shuffleNetV1,
  shuffleNetV1Channels,
} from '@shuffle/models';
import { describe, expect, it } from 'vitest';
import { backends } from '../conformance/backends.js';
import { type ReferenceLayer, referenceSheet } from './support.js';

const WIDTHS: ShuffleNetV1Width[] = [0.5, 1, 1.5, 2];
const CONFIGS = SHUFFLENET_V1_GROUPS.flatMap((groups) =>
  WIDTHS.map((width) => ({ groups, width, key: `g${groups}_${width.toFixed(1)}x` })),
);

/** A small network that runs fast on the reference backend. */
const TINY: ShuffleNetV1Options = {
  backend: reference,
  groups: 2,
  channels: { conv1: 4, stages: [16, 32, 64] },
  repeats: [2, 2, 1],
  numClasses: 5,
};

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return compareTensors(a, b).maxAbsError;
}

describe('ShuffleNet v1 configurations against the reference sheet', () => {
  it('covers the 20 v1 configs of the sheet', () => {
    expect(CONFIGS.map((c) => c.key).sort()).toEqual(Object.keys(referenceSheet.v1).sort());
  });

  // 'zeros' init builds the same tensors without drawing 60M random numbers; one config below uses He init.
  it.each(CONFIGS)('$key: channels, trainable parameters, BN layers, buffers and multiply-adds', ({ groups, width, key }) => {
    const expected = referenceSheet.v1[key]!;
    expect(shuffleNetV1Channels(groups, width)).toEqual({ conv1: expected.conv1, stages: expected.stage_channels });
    const model = shuffleNetV1({ groups, width, backend: reference, init: 'zeros' });
    expect(countParameters(model)).toBe(expected.params.trainable_no_fc_bias);
    const withBias = shuffleNetV1({ groups, width, backend: reference, init: 'zeros', classifierBias: true });
    expect(countParameters(withBias)).toBe(expected.params.trainable_with_fc_bias);
    expect(withBias.parameters().at(-1)?.name).toBe('classifier.0.bias');

    const bnGammas = model.parameters().filter((p) => p.kind === 'batchnorm' && p.name.endsWith('.weight'));
    expect(bnGammas.length).toBe(expected.params.bn_layers);
    expect(
      model
        .parameters()
        .filter((p) => p.kind === 'batchnorm')
        .reduce((s, p) => s + p.value.size, 0),
    ).toBe(expected.params.bn_affine_gamma_beta);
    expect(model.buffers().length).toBe(2 * expected.params.bn_layers);
    expect(model.buffers().reduce((s, t) => s + t.value.size, 0)).toBe(expected.params.bn_running_mean_var);
    const convWeights = model.parameters().filter((p) => p.kind === 'conv' || p.kind === 'depthwise');
    expect(convWeights.reduce((s, p) => s + p.value.size, 0)).toBe(expected.params.conv_weights);

    const macs = countMacs(model.describe([1, 3, 224, 224]));
    expect(macs.total).toBe(expected.macs.total);
    expect(macs.conv).toBe(expected.macs.conv);
    expect(macs.fc).toBe(expected.macs.fc);
    expect(macs.perStage).toEqual(expected.macs.per_stage);
    expect(model.describe().filter((l) => l.op === 'bn').length).toBe(49);
  });

  it('g3 1.0x (the official model) with He init: 1,864,728 parameters, 137,460,672 multiply-adds', () => {
    const model = shuffleNetV1({ groups: 3, width: 1, backend: reference });
    expect(countParameters(model)).toBe(1_864_728);
    expect(countMacs(model.describe()).total).toBe(137_460_672);
    expect(countParameters(shuffleNetV1({ groups: 8, width: 1, backend: reference, init: 'zeros' }))).toBe(2_433_768);
    // The multiply-adds scale with the batch.
    expect(countMacs(model.describe([2, 3, 224, 224])).total).toBe(2 * 137_460_672);
  });

  /** Our entry in the sheet's form: the classifier input [N, C] as in the sheet, the global pool as an avgpool. */
  function asSheetLayer(info: LayerInfo): Record<string, unknown> {
    const out: Record<string, unknown> = {
      name: info.name,
      op: info.op === 'global_avgpool' ? 'avgpool' : info.op,
      in_shape: info.inShape,
      out_shape: info.outShape,
      params: info.op === 'bn' ? 0 : info.params,
      bn_affine: info.op === 'bn' ? info.params : 0,
      macs: info.macs,
    };
    for (const [ours, theirs] of [
      ['kernel', 'kernel'],
      ['stride', 'stride'],
      ['pad', 'pad'],
      ['groups', 'groups'],
      ['weightShape', 'weight_shape'],
      ['megviiKey', 'megvii_key'],
    ] as const) {
      if (info[ours] !== undefined) out[theirs] = info[ours];
    }
    if (info.op === 'global_avgpool') Object.assign(out, { kernel: info.inShape[2], stride: 1, pad: 0 });
    if (info.op === 'concat') out.order = 'shortcut_first';
    return out;
  }

  const sheetLayers = referenceSheet['layers_g3_1.0x'];

  it('describe (official shuffle) equals layers_g3_1.0x layer by layer: names, ops, shapes, weights, counts, megvii keys', () => {
    const model = shuffleNetV1({ groups: 3, width: 1, shuffle: 'official', backend: reference, init: 'zeros' });
    const ours = model.describe([1, 3, 224, 224]).map(asSheetLayer);
    expect(ours.length).toBe(sheetLayers.length);
    ours.forEach((layer, i) => {
      expect(layer, `layer ${i}`).toEqual(sheetLayers[i]);
    });
  });

  it('describe (paper shuffle) moves only the shuffle, to right after the first pointwise ReLU', () => {
    const model = shuffleNetV1({ groups: 3, width: 1, backend: reference, init: 'zeros' });
    const ours = model.describe().map(asSheetLayer);
    const withoutShuffle = (layers: Record<string, unknown>[] | ReferenceLayer[]) =>
      (layers as Record<string, unknown>[]).filter((l) => l.op !== 'channel_shuffle');
    expect(withoutShuffle(ours)).toEqual(withoutShuffle(sheetLayers));
    const shuffles = ours.flatMap((l, i) => (l.op === 'channel_shuffle' ? [i] : []));
    expect(shuffles.length).toBe(16);
    for (const i of shuffles) expect((ours[i - 1] as { name: string }).name).toMatch(/\.pw1\.relu$/);
  });

  it('parameter names are the official checkpoint keys: every megvii_key of the sheet, with the sheet weight shapes', () => {
    const model = shuffleNetV1({ groups: 3, width: 1, backend: reference, init: 'zeros' });
    const params = new Map(model.parameters().map((p) => [p.name, p]));
    const buffers = new Map(model.buffers().map((t) => [t.name, t]));
    const expectedParams: string[] = [];
    const expectedBuffers: string[] = [];
    for (const layer of sheetLayers) {
      const key = layer.megvii_key;
      if (!key) continue;
      if (layer.op === 'bn') {
        expectedParams.push(`${key}.weight`, `${key}.bias`);
        expectedBuffers.push(`${key}.running_mean`, `${key}.running_var`);
        expect(params.get(`${key}.weight`)?.value.shape).toEqual([layer.out_shape[1]]);
      } else {
        expectedParams.push(`${key}.weight`);
        expect(params.get(`${key}.weight`)?.value.shape, key).toEqual(layer.weight_shape);
      }
    }
    // The same keys in the checkpoint's (state_dict) order, and nothing else.
    expect(model.parameters().map((p) => p.name)).toEqual(expectedParams);
    expect(model.buffers().map((t) => t.name)).toEqual(expectedBuffers);
    expect([...buffers.keys()].length).toBe(98);
    expect(params.get('first_conv.0.weight')?.kind).toBe('conv');
    expect(params.get('features.0.branch_main_1.3.weight')?.kind).toBe('depthwise');
    expect(params.get('features.0.branch_main_1.1.bias')?.kind).toBe('batchnorm');
    expect(params.get('classifier.0.weight')?.kind).toBe('linear');
  });

  it('0.25x follows the rounding rule; configs whose channels do not divide fail naming the config', () => {
    expect(shuffleNetV1Channels(3, 0.25)).toEqual({ conv1: 6, stages: [60, 120, 240] });
    expect(shuffleNetV1Channels(1, 0.25)).toEqual({ conv1: 6, stages: [36, 72, 144] });
    expect(shuffleNetV1Channels(2, 0.25)).toEqual({ conv1: 6, stages: [48, 96, 192] });
    for (const groups of [1, 2, 3] as const)
      expect(() => shuffleNetV1({ groups, width: 0.25, backend: reference, init: 'zeros' })).not.toThrow();
    // g=4: 272 / 4 = 68 -> 64 (a multiple of 16); the stride-2 branch makes 64 - 6 = 58 channels, not divisible by 4.
    expect(() => shuffleNetV1({ groups: 4, width: 0.25, backend: reference })).toThrow(ShuffleArgumentError);
    expect(() => shuffleNetV1({ groups: 4, width: 0.25, backend: reference })).toThrow(
      /^shuffleNetV1: channels expects channel counts that ShuffleNet v1 g4 0\.25x can divide \(stage 2: .*64 - 6 = 58 .*4 groups\).*, got \[6, 64, 128, 256\]$/,
    );
    expect(() => shuffleNetV1({ groups: 8, width: 0.25, backend: reference })).toThrow(/g8 0\.25x .*96 - 6 = 90/);
    expect(() => shuffleNetV1({ groups: 3, channels: { conv1: 4, stages: [20, 40, 80] }, backend: reference })).toThrow(
      /bottleneck 5 = 20 \/ 4 does not split into 3 groups/,
    );
    expect(() => shuffleNetV1({ groups: 2, channels: { conv1: 24, stages: [16, 32, 64] }, backend: reference })).toThrow(
      /must exceed its input 24/,
    );
  });

  it('rejects bad options with clear messages', () => {
    const bad: [Partial<ShuffleNetV1Options> & Record<string, unknown>, RegExp][] = [
      [{ groups: 5 as never }, /^shuffleNetV1: groups expects one of 1, 2, 3, 4, 8, got 5$/],
      [{ width: 0.75 as never }, /^shuffleNetV1: width expects one of 0\.25, 0\.5, 1, 1\.5, 2 \(or pass channels\), got 0\.75$/],
      [{ numClasses: 0 }, /numClasses expects a positive integer, got 0/],
      [{ inChannels: 1.5 }, /inChannels expects a positive integer, got 1\.5/],
      [{ stem: 'cifar' as never }, /stem expects 'imagenet' or 'small', got cifar/],
      [{ shuffle: 'megvii' as never }, /shuffle expects 'paper' or 'official', got megvii/],
      [{ dtype: 'float16' as never }, /dtype expects/],
      [{ repeats: [1, 0, 1] }, /repeats expects three positive integers/],
      [{ backend: {} as never }, /backend expects a Backend/],
      [{ width: 1, channels: { conv1: 4, stages: [16, 32, 64] } }, /width expects undefined when channels is given/],
    ];
    for (const [options, message] of bad) {
      expect(() => shuffleNetV1({ backend: reference, init: 'zeros', ...options } as ShuffleNetV1Options)).toThrow(message);
    }
  });
});

describe('ShuffleNet v1 forward and backward', () => {
  it('any input size and channel count: describe predicts every shape; 28x28 with the small stem ends at 4x4', () => {
    const model = shuffleNetV1({ ...TINY, inChannels: 1, stem: 'small', numClasses: 10 });
    const layers = model.describe([2, 1, 28, 28]);
    expect(layers[0]).toMatchObject({ name: 'conv1', stride: 1, outShape: [2, 4, 28, 28] });
    expect(layers.some((l) => l.op === 'maxpool')).toBe(false);
    const lastUnit = layers.filter((l) => l.name.startsWith('stage4')).at(-1);
    expect(lastUnit?.outShape).toEqual([2, 64, 4, 4]);
    expect(layers.at(-1)?.outShape).toEqual([2, 10]);
    const logits = model.forward(randomUniform([2, 1, 28, 28], { seed: 1 }));
    expect(logits.shape).toEqual([2, 10]);

    const imagenet = shuffleNetV1({ ...TINY, inChannels: 2 });
    const odd = imagenet.describe([1, 2, 23, 17]);
    expect(odd.find((l) => l.name === 'maxpool')?.outShape).toEqual([1, 4, 6, 5]);
    expect(odd.find((l) => l.name === 'globalpool')?.inShape).toEqual([1, 64, 1, 1]);
    expect(imagenet.forward(randomUniform([1, 2, 23, 17], { seed: 2 })).shape).toEqual([1, 5]);
  });

  it('the same seed gives the same weights; another seed other weights; He init scales with fan-in', () => {
    const a = shuffleNetV1({ ...TINY, seed: 7 });
    const b = shuffleNetV1({ ...TINY, seed: 7 });
    const c = shuffleNetV1({ ...TINY, seed: 8 });
    a.parameters().forEach((p, i) => {
      expect(Array.from(p.value.data)).toEqual(Array.from(b.parameters()[i]!.value.data));
    });
    expect(Array.from(a.parameters()[0]!.value.data)).not.toEqual(Array.from(c.parameters()[0]!.value.data));
    const big = shuffleNetV1({ groups: 3, width: 1, backend: reference });
    const w = big.parameters().find((p) => p.name === 'features.5.branch_main_2.0.weight')!.value;
    const fanIn = (w.shape[1] as number) * (w.shape[2] as number) * (w.shape[3] as number);
    const variance = Array.from(w.data).reduce((s, v) => s + v * v, 0) / w.size;
    expect(variance * fanIn).toBeGreaterThan(1.8);
    expect(variance * fanIn).toBeLessThan(2.2);
  });

  it('both shuffle placements run, and differ (no shuffle with groups = 1 makes them equal)', () => {
    const x = randomUniform([2, 3, 16, 16], { seed: 3 });
    const paper = shuffleNetV1({ ...TINY, shuffle: 'paper' });
    const official = shuffleNetV1({ ...TINY, shuffle: 'official' });
    expect(maxAbsDiff(paper.forward(x), official.forward(x))).toBeGreaterThan(1e-3);
    const one = { ...TINY, groups: 1 as const };
    assertClose(shuffleNetV1({ ...one, shuffle: 'paper' }).forward(x), shuffleNetV1({ ...one, shuffle: 'official' }).forward(x));
  });

  it('batch norm: eval mode uses and keeps the running statistics; training mode uses the batch and updates them', () => {
    const model = shuffleNetV1(TINY);
    const x = randomUniform([3, 3, 16, 16], { seed: 4 });
    const before = model.buffers().map((t) => t.value.data.slice());
    const evalLogits = model.forward(x);
    model.buffers().forEach((t, i) => {
      expect(Array.from(t.value.data)).toEqual(Array.from(before[i]!));
    });
    // Eval mode treats each image alone: the first image's logits do not depend on the others.
    const first = tensor(x.data.slice(0, 3 * 16 * 16), [1, 3, 16, 16]);
    assertClose(model.forward(first), tensor(evalLogits.data.slice(0, 5), [1, 5]), { atol: 1e-6, rtol: 1e-5 });

    const trainLogits = model.forward(x, { training: true });
    expect(maxAbsDiff(trainLogits, evalLogits)).toBeGreaterThan(1e-3);
    const mean = model.buffers().find((t) => t.name === 'first_conv.1.running_mean')!.value;
    expect(mean.toArray().some((v) => v !== 0)).toBe(true);
    // Training mode normalises by the batch: an image's logits change when its batch-mates do.
    const trainFirst = model.forward(first.clone(), { training: false });
    expect(maxAbsDiff(trainFirst, tensor(trainLogits.data.slice(0, 5), [1, 5]))).toBeGreaterThan(1e-4);
  });

  it('inference calls the ops without saved state; training the ones that save it; both backward', () => {
    const calls: string[] = [];
    const recording = new Proxy(reference, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.push(String(key));
          return value.apply(target, args);
        };
      },
    });
    const model = shuffleNetV1({ ...TINY, backend: recording });
    const x = randomUniform([2, 3, 16, 16], { seed: 4 });
    const saving = (names: string[]) => names.filter((name) => name.endsWith('WithSaved'));
    model.forward(x);
    expect(saving(calls)).toEqual([]);
    expect(calls).toContain('maxPool2d');
    expect(calls).toContain('batchNormRelu2d');
    // A backward after an inference forward still works (gradient checks in eval mode): pools and norms recompute.
    model.backward(randomUniform([2, 5], { seed: 5 }));
    calls.length = 0;
    model.forward(x, { training: true });
    expect(calls).not.toContain('maxPool2d');
    expect(saving(calls)).toContain('maxPool2dWithSaved');
    expect(saving(calls)).toContain('batchNormRelu2dWithSaved');
  });

  it('writing a parameter value changes the next forward; backward overwrites every grad', () => {
    const model = shuffleNetV1(TINY);
    const x = randomUniform([2, 3, 16, 16], { seed: 5 });
    const y0 = model.forward(x);
    const w = model.parameters().find((p) => p.name === 'classifier.0.weight')!;
    w.value.data[0] = (w.value.data[0] as number) + 1;
    expect(maxAbsDiff(model.forward(x), y0)).toBeGreaterThan(1e-3);

    for (const p of model.parameters()) p.grad.data.fill(Number.NaN);
    const dLogits = randomUniform([2, 5], { seed: 6, low: -1, high: 1 });
    model.forward(x, { training: true });
    model.backward(dLogits);
    const grads = model.parameters().map((p) => p.grad.data.slice());
    for (const p of model.parameters()) expect(p.grad.toArray().every(Number.isFinite), p.name).toBe(true);
    model.forward(x, { training: true });
    model.backward(dLogits);
    model.parameters().forEach((p, i) => {
      expect(Array.from(p.grad.data), p.name).toEqual(Array.from(grads[i]!));
    });
  });

  it('runs in either layout with equal logits, input gradients and parameter gradients', () => {
    const model = shuffleNetV1({ ...TINY, classifierBias: true });
    const x = randomUniform([2, 3, 16, 16], { seed: 7 });
    const dLogits = randomUniform([2, 5], { seed: 8, low: -1, high: 1 });
    for (const training of [false, true]) {
      const yNchw = model.forward(x, { training });
      const dxNchw = model.backward(dLogits);
      const grads = model.parameters().map((p) => p.grad.clone());
      const yNhwc = model.forward(x.toLayout('NHWC'), { training });
      const dxNhwc = model.backward(dLogits);
      expect(dxNhwc.layout).toBe('NHWC');
      assertClose(yNhwc, yNchw, { atol: 1e-5, rtol: 1e-4 }, 'logits');
      assertClose(dxNhwc, dxNchw, { atol: 1e-5, rtol: 1e-4 }, 'dx');
      model.parameters().forEach((p, i) => {
        expect(p.grad.layout).toBe('NCHW');
        assertClose(p.grad, grads[i]!, { atol: 1e-5, rtol: 1e-4 }, p.name);
      });
    }
  });

  it('clear errors: backward before forward, dLogits of another shape, x with the wrong channels or dtype', () => {
    const model = shuffleNetV1(TINY);
    expect(() => model.backward(randomUniform([2, 5], { seed: 1 }))).toThrow(
      /^ShuffleNetV1\.backward: dLogits expects a forward call first/,
    );
    model.forward(randomUniform([2, 3, 8, 8], { seed: 1 }));
    expect(() => model.backward(randomUniform([3, 5], { seed: 1 }))).toThrow(/dLogits expects a tensor of the last logits' shape \[2, 5\]/);
    expect(() => model.forward(randomUniform([2, 4, 8, 8], { seed: 1 }))).toThrow(/^ShuffleNetV1\.forward: x expects 3 channels/);
    expect(() => model.forward(randomUniform([2, 3, 8, 8], { seed: 1, dtype: 'float64' }))).toThrow(
      /x\.dtype expects the model's dtype float32/,
    );
    expect(() => model.forward(randomUniform([3, 8, 8], { seed: 1 }))).toThrow(/x expects a 4-D tensor/);
    expect(() => model.describe([1, 1, 8, 8])).toThrow(/inputShape expects \[N, 3, H, W\]/);
  });
});

/**
 * "Runs on any backend": every backend of the conformance suite, in float32, against the float64
 * reference with the same seed (the float32 weights are the float64 ones rounded). A whole network
 * compounds rounding, so the tolerance is looser than one op's.
 */
describe.each(backends.map((entry) => [entry.backend.name, entry] as const))('on the %s backend', (_name, { backend }) => {
  it('logits and gradients match the float64 reference within float32 tolerance, in both modes and layouts', () => {
    const options = { ...TINY, shuffle: 'official' as const, classifierBias: true };
    const model = shuffleNetV1({ ...options, backend });
    const oracle = shuffleNetV1({ ...options, backend: reference, dtype: 'float64' });
    const x = randomUniform([2, 3, 16, 16], { seed: 9 });
    const dLogits = randomUniform([2, 5], { seed: 10, low: -1, high: 1 });
    for (const layout of ['NCHW', 'NHWC'] as const) {
      for (const training of [false, true]) {
        const expected = oracle.forward(x.astype('float64').toLayout(layout), { training });
        const expectedDx = oracle.backward(dLogits.astype('float64'));
        const logits = model.forward(x.toLayout(layout), { training });
        const dx = model.backward(dLogits);
        assertClose(logits, expected, { atol: 1e-4, rtol: 1e-3 }, `logits (${layout}, training ${training})`);
        const scale = Math.max(...expectedDx.toArray().map(Math.abs));
        assertClose(dx, expectedDx, { atol: 1e-3 * scale, rtol: 1e-3 }, 'dx');
        // Some gradients are 0 up to rounding (a BN beta whose shift the next training-mode BN removes), so
        // the absolute tolerance is relative to the largest gradient of the network.
        const gradScale = Math.max(...oracle.parameters().flatMap((q) => q.grad.toArray().map(Math.abs)));
        model.parameters().forEach((p, i) => {
          const q = oracle.parameters()[i]!;
          expect(p.name).toBe(q.name);
          assertClose(p.grad, q.grad, { atol: 1e-4 * gradScale, rtol: 1e-3 }, p.name);
        });
      }
    }
  });
});
