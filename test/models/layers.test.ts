import { assertClose, ones, Rng, randomUniform, ShuffleArgumentError, type Tensor, tensor, zeros } from '@shuffle/core';
import { reference } from '@shuffle/kernels';
import {
  AvgPool2d,
  BatchNorm2d,
  ChannelShuffle,
  Conv2d,
  DepthwiseConv2d,
  GlobalAvgPool2d,
  type Layer,
  Linear,
  MaxPool2d,
  type Parameter,
  ReLU,
  ShuffleV1Unit,
} from '@shuffle/models';
import { describe, expect, it } from 'vitest';
import { centralDifference, dot, expectGradientsClose, referenceSheet } from './support.js';

const b = reference;
const f64 = { dtype: 'float64' as const };

function random(shape: number[], seed: number, low = -1, high = 1): Tensor {
  return randomUniform(shape, { seed, low, high, ...f64 });
}

/** A layer's forward as a function of its input alone (BN gets its mode here). */
type Run = (x: Tensor) => Tensor;

/**
 * Checks a layer's backward against finite differences of L = sum(dy * layer(x)) for every element of x
 * and of every parameter, and that backward overwrites the gradients (a second call gives the same).
 */
function gradcheckLayer(layer: Layer, run: Run, x: Tensor, seed: number): void {
  const y = run(x);
  const dy = random([...y.shape], seed + 1000).toLayout(y.layout);
  const loss = () => dot(dy, run(x));
  run(x);
  const dx = layer.backward(dy);
  const grads = layer.parameters().map((p) => p.grad.clone());
  run(x);
  layer.backward(dy);
  layer.parameters().forEach((p, i) => {
    assertClose(p.grad, grads[i] as Tensor, {}, `${p.name} after a second backward`);
  });
  const checks: { label: string; analytic: number; numeric: number }[] = [];
  const dxData = dx.toLayout('NCHW').data;
  for (let i = 0; i < x.size; i++)
    checks.push({ label: `dx[${i}]`, analytic: dxData[i] as number, numeric: centralDifference(loss, x, i) });
  for (const [k, p] of layer.parameters().entries()) {
    const grad = grads[k] as Tensor;
    for (let i = 0; i < p.value.size; i++) {
      checks.push({ label: `${p.name}[${i}]`, analytic: grad.data[i] as number, numeric: centralDifference(loss, p.value, i) });
    }
  }
  expectGradientsClose(checks, { atol: 1e-7, rtol: 1e-5 });
}

describe('layers', () => {
  it('Conv2d: grouped, strided, padded, with bias; matches conv2d and finite differences', () => {
    const conv = new Conv2d(b, 'conv', {
      key: 'c',
      inChannels: 4,
      outChannels: 6,
      kernelSize: 3,
      stride: 2,
      padding: 1,
      groups: 2,
      bias: true,
      ...f64,
      rng: new Rng(1),
    });
    conv.bias?.value.data.set([0.1, -0.2, 0.3, 0, 0.5, -0.6]);
    expect(conv.parameters().map((p) => [p.name, p.kind, p.value.shape])).toEqual([
      ['c.weight', 'conv', [6, 2, 3, 3]],
      ['c.bias', 'bias', [6]],
    ]);
    const x = random([2, 4, 5, 4], 2);
    assertClose(conv.forward(x), b.conv2d(x, conv.weight.value, { stride: 2, padding: 1, groups: 2, bias: conv.bias?.value }));
    gradcheckLayer(conv, (t) => conv.forward(t), x, 3);
  });

  it('DepthwiseConv2d: weight [C, 1, k, k], strided; matches depthwiseConv2d and finite differences', () => {
    const conv = new DepthwiseConv2d(b, 'dw', { key: 'd', channels: 3, kernelSize: 3, stride: 2, padding: 1, ...f64, rng: new Rng(4) });
    expect(conv.parameters().map((p) => [p.name, p.kind, p.value.shape])).toEqual([['d.weight', 'depthwise', [3, 1, 3, 3]]]);
    const x = random([2, 3, 5, 5], 5);
    assertClose(conv.forward(x), b.depthwiseConv2d(x, conv.weight.value, { stride: 2, padding: 1 }));
    gradcheckLayer(conv, (t) => conv.forward(t), x, 6);
  });

  it('BatchNorm2d: starts at gamma 1, beta 0, mean 0, var 1; training updates running stats, eval does not', () => {
    const bn = new BatchNorm2d(b, 'bn', { key: 'k', channels: 2, ...f64 });
    expect(bn.parameters().map((p) => [p.name, p.kind, Array.from(p.value.data)])).toEqual([
      ['k.weight', 'batchnorm', [1, 1]],
      ['k.bias', 'batchnorm', [0, 0]],
    ]);
    expect(bn.buffers().map((t) => [t.name, Array.from(t.value.data)])).toEqual([
      ['k.running_mean', [0, 0]],
      ['k.running_var', [1, 1]],
    ]);
    // Channel 0 holds 1, 2, 3, 4 (mean 2.5, unbiased variance 5/3); channel 1 holds 0 four times.
    const x = tensor([1, 2, 0, 0, 3, 4, 0, 0], [2, 2, 1, 2], 'NCHW', 'float64');
    const evalY = bn.forward(x, false);
    expect(bn.runningMean.value.data[0]).toBe(0);
    assertClose(evalY, b.batchNorm2d(x, ones([2], f64), zeros([2], f64), zeros([2], f64), ones([2], f64)));
    bn.forward(x, true);
    expect(bn.runningMean.value.data[0]).toBeCloseTo(0.25, 12);
    expect(bn.runningVar.value.data[0]).toBeCloseTo(0.9 + 0.1 * (5 / 3), 12);
    expect(bn.runningVar.value.data[1]).toBeCloseTo(0.9, 12);
  });

  for (const training of [true, false]) {
    it(`BatchNorm2d (${training ? 'training' : 'eval'}) matches finite differences`, () => {
      const bn = new BatchNorm2d(b, 'bn', { key: 'k', channels: 3, ...f64 });
      bn.gamma.value.data.set([1.5, -0.5, 0.8]);
      bn.beta.value.data.set([0.1, 0.2, -0.3]);
      bn.runningMean.value.data.set([0.2, -0.1, 0]);
      bn.runningVar.value.data.set([0.5, 2, 1.5]);
      const x = random([2, 3, 2, 3], 7);
      // Keep the running statistics fixed so that every eval-mode call computes the same function.
      const stats = bn.buffers().map((t) => t.value.data.slice());
      const run = (t: Tensor) => {
        const y = bn.forward(t, training);
        bn.buffers().forEach((buffer, i) => {
          buffer.value.data.set(stats[i] as Float64Array);
        });
        return y;
      };
      gradcheckLayer(bn, run, x, 8);
    });
  }

  it('Linear with bias takes a pooled [N, C, 1, 1] input in either layout; matches finite differences', () => {
    const fc = new Linear(b, 'fc', { key: 'classifier.0', inFeatures: 4, outFeatures: 3, bias: true, ...f64, rng: new Rng(9) });
    expect(fc.parameters().map((p) => [p.name, p.kind, p.value.shape])).toEqual([
      ['classifier.0.weight', 'linear', [3, 4]],
      ['classifier.0.bias', 'bias', [3]],
    ]);
    const x = random([2, 4, 1, 1], 10);
    assertClose(fc.forward(x.toLayout('NHWC')), fc.forward(x));
    gradcheckLayer(fc, (t) => fc.forward(t), x, 11);
  });

  it('pools, ReLU and shuffles match their ops and finite differences', () => {
    const window = { kernelSize: 3, stride: 2, padding: 1 };
    const cases: [Layer, Run, Tensor][] = [];
    const maxPool = new MaxPool2d(b, 'maxpool', window);
    const avgPool = new AvgPool2d(b, 'avgpool', window);
    const globalPool = new GlobalAvgPool2d(b, 'globalpool');
    const relu = new ReLU(b, 'relu');
    const paper = new ChannelShuffle(b, 'shuffle', 3, false);
    const official = new ChannelShuffle(b, 'shuffle', 3, true);
    const x = random([2, 6, 5, 4], 12);
    // Keep every element at least 0.05 from the ReLU's kink at 0, so finite differences do not cross it.
    for (let i = 0; i < x.size; i++) if (Math.abs(x.data[i] as number) < 0.05) x.data[i] = 0.05;
    assertClose(maxPool.forward(x), b.maxPool2d(x, window));
    assertClose(avgPool.forward(x), b.avgPool2d(x, { ...window, countIncludePad: true }));
    assertClose(globalPool.forward(x), b.globalAvgPool2d(x));
    assertClose(relu.forward(x), b.relu(x));
    assertClose(paper.forward(x), b.channelShuffle(x, 3));
    assertClose(official.forward(x), b.channelShuffle(x, 3, { inverse: true }));
    for (const layer of [maxPool, avgPool, globalPool, relu, paper, official]) cases.push([layer, (t) => layer.forward(t), x]);
    cases.forEach(([layer, run, input], i) => {
      gradcheckLayer(layer, run, input, 20 + i);
    });
  });

  it('AvgPool2d counts the padding in the divisor (countIncludePad), as the official shortcut does', () => {
    const pool = new AvgPool2d(b, 'avgpool', { kernelSize: 3, stride: 2, padding: 1 });
    // The corner window of an all-ones 2x2 image covers 4 ones and 5 padded zeros: 4 / 9.
    const y = pool.forward(ones([1, 1, 2, 2], f64));
    expect(y.shape).toEqual([1, 1, 1, 1]);
    expect(y.data[0]).toBeCloseTo(4 / 9, 12);
  });

  it('ChannelShuffle orders: paper and official (inverse) match the reference sheet permutations', () => {
    const vectors = referenceSheet.shuffle_test_vectors;
    for (const [name, perm] of Object.entries(vectors)) {
      const match = /^c(\d+)_g(\d+)_(paper|megvii)$/.exec(name);
      if (!match || !Array.isArray(perm)) continue;
      const channels = Number(match[1]);
      const layer = new ChannelShuffle(b, 'shuffle', Number(match[2]), match[3] === 'megvii');
      const ids = tensor(
        Array.from({ length: channels }, (_, c) => c),
        [1, channels, 1, 1],
      );
      expect(Array.from(layer.forward(ids).data), name).toEqual(perm);
    }
  });

  it('backward before forward is a clear error', () => {
    const conv = new Conv2d(b, 'stage2.unit1.pw1', {
      key: 'features.0.branch_main_1.0',
      inChannels: 2,
      outChannels: 2,
      kernelSize: 1,
      ...f64,
    });
    expect(() => conv.backward(zeros([1, 2, 1, 1], f64))).toThrow(ShuffleArgumentError);
    expect(() => conv.backward(zeros([1, 2, 1, 1], f64))).toThrow(/Conv2d stage2\.unit1\.pw1: backward expects a forward call first/);
    expect(() => new ReLU(b, 'r').backward(zeros([1], f64))).toThrow(/ReLU r: backward expects a forward call first/);
    expect(() => new ChannelShuffle(b, 's', 2, false).backward(zeros([1, 2, 1, 1], f64))).toThrow(/forward call first/);
  });

  it('describe gives the output shape and multiply-adds without running', () => {
    const conv = new Conv2d(b, 'conv', {
      key: 'c',
      inChannels: 6,
      outChannels: 9,
      kernelSize: 3,
      stride: 2,
      padding: 1,
      groups: 3,
      ...f64,
    });
    expect(conv.describe([2, 6, 7, 5])).toMatchObject({
      outShape: [2, 9, 4, 3],
      weightShape: [9, 2, 3, 3],
      params: 162,
      macs: 2 * 9 * 4 * 3 * 2 * 9,
      megviiKey: 'c',
    });
    const dw = new DepthwiseConv2d(b, 'dw', { key: 'd', channels: 4, kernelSize: 3, stride: 2, padding: 1, ...f64 });
    expect(dw.describe([1, 4, 5, 5])).toMatchObject({ outShape: [1, 4, 3, 3], groups: 4, params: 36, macs: 4 * 9 * 9 });
    const x = random([2, 6, 7, 5], 30);
    expect(conv.forward(x).shape).toEqual([2, 9, 4, 3]);
  });
});

/** The unit computed with the backend's ops directly, in the documented order, to hold ShuffleV1Unit to it. */
function unitByHand(unit: ShuffleV1Unit, x: Tensor, placement: 'paper' | 'official', groups: number): Tensor {
  const bn = (layer: BatchNorm2d, t: Tensor) =>
    b.batchNorm2d(t, layer.gamma.value, layer.beta.value, layer.runningMean.value, layer.runningVar.value, { training: false });
  let y = b.conv2d(x, unit.pw1.weight.value, { groups: unit.pw1.groups });
  y = b.relu(bn(unit.pw1Bn, y));
  if (placement === 'paper') y = b.channelShuffle(y, groups);
  y = bn(unit.dwBn, b.depthwiseConv2d(y, unit.dw.weight.value, { stride: unit.stride, padding: 1 }));
  if (placement === 'official') y = b.channelShuffle(y, groups, { inverse: true });
  y = bn(unit.pw2Bn, b.conv2d(y, unit.pw2.weight.value, { groups }));
  if (unit.stride === 1) return b.relu(b.add(x, y));
  return b.concat([b.avgPool2d(x, { kernelSize: 3, stride: 2, padding: 1, countIncludePad: true }), b.relu(y)]);
}

/** Gives every BN non-trivial statistics and affine parameters, so a misplaced layer shows. */
function randomizeBatchNorms(parameters: Parameter[], buffers: { name: string; value: Tensor }[], rng: Rng): void {
  for (const p of parameters) if (p.kind === 'batchnorm') for (let i = 0; i < p.value.size; i++) p.value.data[i] = 0.5 + rng.uniform();
  for (const t of buffers)
    for (let i = 0; i < t.value.size; i++) t.value.data[i] = t.name.endsWith('var') ? 0.5 + rng.uniform() : rng.uniform() - 0.5;
}

describe('ShuffleV1Unit', () => {
  const groups = 2;
  for (const placement of ['paper', 'official'] as const) {
    for (const stride of [1, 2] as const) {
      it(`${placement} shuffle, stride ${stride}: equals the ops composed by hand; names follow megvii`, () => {
        // mid = 6 channels in 2 groups: 6 / 2 != 2, so the paper shuffle and its inverse differ.
        const inChannels = stride === 2 ? 8 : 24;
        const unit = new ShuffleV1Unit(
          b,
          { name: 'stage3.unit1', key: 'features.4', inChannels, outChannels: 24, stride, groups, firstGroups: groups, shuffle: placement },
          'float64',
          new Rng(40),
        );
        const parameters = unit.layers().flatMap((l) => l.parameters());
        randomizeBatchNorms(
          parameters,
          unit.layers().flatMap((l) => l.buffers()),
          new Rng(41),
        );
        const x = random([2, inChannels, 5, 5], 42, 0, 1);
        const y = unit.forward(x, false);
        expect(y.shape).toEqual([2, 24, stride === 2 ? 3 : 5, stride === 2 ? 3 : 5]);
        assertClose(y, unitByHand(unit, x, placement, groups), { atol: 1e-12, rtol: 1e-12 });
        // The other placement computes something else with the same weights.
        const other = unitByHand(unit, x, placement === 'paper' ? 'official' : 'paper', groups).toArray();
        expect(Math.max(...y.toArray().map((v, i) => Math.abs(v - (other[i] as number))))).toBeGreaterThan(1e-3);
        expect(parameters.map((p) => p.name)).toEqual([
          'features.4.branch_main_1.0.weight',
          'features.4.branch_main_1.1.weight',
          'features.4.branch_main_1.1.bias',
          'features.4.branch_main_1.3.weight',
          'features.4.branch_main_1.4.weight',
          'features.4.branch_main_1.4.bias',
          'features.4.branch_main_2.0.weight',
          'features.4.branch_main_2.1.weight',
          'features.4.branch_main_2.1.bias',
        ]);
        expect(unit.pw2.outChannels).toBe(stride === 2 ? 24 - inChannels : 24);
        expect(unit.pw1.outChannels).toBe(6);
      });
    }
  }
});
