import { fail, type Tensor } from '@shuffle/core';
import type { Backend } from '@shuffle/kernels';
import type { ShuffleNetV1Config } from './config.js';
import type { BatchNorm2d } from './layers/batch-norm2d.js';
import { ChannelShuffle } from './layers/channel-shuffle.js';
import { Conv2d } from './layers/conv2d.js';
import { DepthwiseConv2d } from './layers/depthwise-conv2d.js';
import type { Layer } from './layers/layer.js';
import { Linear } from './layers/linear.js';
import { AvgPool2d, GlobalAvgPool2d, MaxPool2d } from './layers/pooling.js';
import { ReLU } from './layers/relu.js';
import type { ForwardOptions, NamedBuffer, Parameter } from './model.js';
import { ShuffleNetV1, type ShuffleV1Unit } from './shufflenet-v1.js';

/*
 * In eval mode a batch norm after a conv is an affine map per output channel o:
 *   bn(z)[o] = gamma[o] * (z[o] - mean[o]) / sqrt(var[o] + eps) + beta[o] = scale[o] * z[o] + shift[o]
 * with scale = gamma / sqrt(var + eps) and shift = beta - scale * mean. The conv is linear in its
 * weights, z[o] = sum W[o, ...] * x[...] + b[o], so
 *   bn(conv(x))[o] = sum (scale[o] W[o, ...]) * x[...] + (scale[o] b[o] + shift[o]),
 * a conv with weights scale[o] W[o, ...] and bias scale[o] b[o] + shift[o]. The folded network does the
 * same arithmetic with one op fewer per conv; outputs agree up to rounding.
 */

type AnyConv = Conv2d | DepthwiseConv2d;

/** Writes conv followed by bn (eval mode) into `target`, a conv of the same shape with a bias. */
function foldInto(target: AnyConv, conv: AnyConv, bn: BatchNorm2d): void {
  const weight = conv.weight.value.toLayout('NCHW').data;
  const oldBias = conv.bias?.value.data;
  const gamma = bn.gamma.value.data;
  const beta = bn.beta.value.data;
  const mean = bn.runningMean.value.data;
  const variance = bn.runningVar.value.data;
  const outChannels = conv.weight.value.shape[0] as number;
  const perOutput = weight.length / outChannels;
  const foldedWeight = target.weight.value.data;
  const foldedBias = (target.bias as Parameter).value.data;
  for (let o = 0; o < outChannels; o++) {
    const scale = (gamma[o] as number) / Math.sqrt((variance[o] as number) + bn.eps);
    for (let i = 0; i < perOutput; i++) foldedWeight[o * perOutput + i] = scale * (weight[o * perOutput + i] as number);
    foldedBias[o] = scale * ((oldBias?.[o] as number | undefined) ?? 0) + (beta[o] as number) - scale * (mean[o] as number);
  }
}

function foldedConv(backend: Backend, conv: Conv2d, bn: BatchNorm2d, dtype: Tensor['dtype']): Conv2d {
  const key = conv.weight.name.slice(0, -'.weight'.length);
  const { inChannels, outChannels, kernelSize, stride, padding, groups } = conv;
  const target = new Conv2d(backend, conv.name, { key, inChannels, outChannels, kernelSize, stride, padding, groups, bias: true, dtype });
  foldInto(target, conv, bn);
  return target;
}

function foldedDepthwise(backend: Backend, conv: DepthwiseConv2d, bn: BatchNorm2d, dtype: Tensor['dtype']): DepthwiseConv2d {
  const key = conv.weight.name.slice(0, -'.weight'.length);
  const { channels, kernelSize, stride, padding } = conv;
  const target = new DepthwiseConv2d(backend, conv.name, { key, channels, kernelSize, stride, padding, bias: true, dtype });
  foldInto(target, conv, bn);
  return target;
}

/** A unit with its three conv + BN pairs folded: the same graph as ShuffleV1Unit, minus the batch norms. */
class FoldedUnit {
  readonly pw1: Conv2d;
  readonly pw1Relu: ReLU;
  readonly dw: DepthwiseConv2d;
  readonly pw2: Conv2d;
  readonly shuffle: ChannelShuffle | null;
  readonly shufflePlacement: 'paper' | 'official';
  readonly shortcutPool: AvgPool2d | null;
  readonly outRelu: ReLU;

  constructor(
    readonly backend: Backend,
    unit: ShuffleV1Unit,
    dtype: Tensor['dtype'],
  ) {
    this.pw1 = foldedConv(backend, unit.pw1, unit.pw1Bn, dtype);
    this.pw1Relu = new ReLU(backend, unit.pw1Relu.name);
    this.dw = foldedDepthwise(backend, unit.dw, unit.dwBn, dtype);
    this.pw2 = foldedConv(backend, unit.pw2, unit.pw2Bn, dtype);
    this.shuffle = unit.shuffle ? new ChannelShuffle(backend, unit.shuffle.name, unit.shuffle.groups, unit.shuffle.inverse) : null;
    this.shufflePlacement = unit.shufflePlacement;
    this.shortcutPool = unit.shortcutPool ? new AvgPool2d(backend, unit.shortcutPool.name, unit.shortcutPool.window) : null;
    this.outRelu = new ReLU(backend, unit.outRelu.name);
  }

  forward(x: Tensor): Tensor {
    let y = this.pw1Relu.forward(this.pw1.forward(x));
    if (this.shuffle && this.shufflePlacement === 'paper') y = this.shuffle.forward(y);
    y = this.dw.forward(y);
    if (this.shuffle && this.shufflePlacement === 'official') y = this.shuffle.forward(y);
    const branch = this.pw2.forward(y);
    if (this.shortcutPool === null) return this.outRelu.forward(this.backend.add(x, branch));
    return this.backend.concat([this.shortcutPool.forward(x), this.outRelu.forward(branch)]);
  }

  layers(): Layer[] {
    return [this.pw1, this.dw, this.pw2];
  }
}

/**
 * ShuffleNet v1 for inference with every batch norm folded into the conv before it (convs with bias,
 * no BN). Its outputs equal the source model's eval-mode outputs up to rounding. It is a snapshot:
 * later changes to the source model's weights or statistics do not reach it.
 */
export class FoldedShuffleNetV1 {
  readonly config: ShuffleNetV1Config;
  readonly backend: Backend;
  readonly firstConv: Conv2d;
  readonly firstRelu: ReLU;
  readonly maxPool: MaxPool2d | null;
  readonly units: FoldedUnit[];
  readonly globalPool: GlobalAvgPool2d;
  readonly classifier: Linear;

  constructor(model: ShuffleNetV1) {
    const { config } = model;
    // The layers' Backend: a gpu model's refuses synchronous calls, naming forwardAsync.
    const backend = model.firstConv.backend;
    const { dtype } = config;
    this.config = config;
    this.backend = backend;
    this.firstConv = foldedConv(backend, model.firstConv, model.firstBn, dtype);
    this.firstRelu = new ReLU(backend, model.firstRelu.name);
    this.maxPool = model.maxPool ? new MaxPool2d(backend, model.maxPool.name, model.maxPool.window) : null;
    this.units = model.units.map((unit) => new FoldedUnit(backend, unit, dtype));
    this.globalPool = new GlobalAvgPool2d(backend, model.globalPool.name);
    const source = model.classifier;
    this.classifier = new Linear(backend, source.name, {
      key: source.weight.name.slice(0, -'.weight'.length),
      inFeatures: source.inFeatures,
      outFeatures: source.outFeatures,
      bias: source.bias !== null,
      dtype,
    });
    this.classifier.weight.value.data.set(source.weight.value.data);
    if (source.bias && this.classifier.bias) this.classifier.bias.value.data.set(source.bias.value.data);
  }

  /** x [N, C, H, W] in either layout -> logits [N, numClasses]. Inference only. */
  forward(x: Tensor, options: ForwardOptions = {}): Tensor {
    if (options?.training)
      fail('FoldedShuffleNetV1.forward', 'options.training', 'false (a folded model has no batch norm to train)', true);
    let y = this.firstRelu.forward(this.firstConv.forward(x));
    if (this.maxPool) y = this.maxPool.forward(y, false);
    for (const unit of this.units) y = unit.forward(y);
    return this.classifier.forward(this.globalPool.forward(y));
  }

  /** The folded weights and biases (named `<conv key>.weight` / `.bias`) and the classifier's. */
  parameters(): Parameter[] {
    const layers: Layer[] = [this.firstConv, ...this.units.flatMap((unit) => unit.layers()), this.classifier];
    return layers.flatMap((layer) => layer.parameters());
  }

  /** None: the running statistics live in the folded weights. */
  buffers(): NamedBuffer[] {
    return [];
  }
}

/** An inference copy of `model` with every batch norm folded into its conv, using the running statistics. */
export function foldBatchNorm(model: ShuffleNetV1): FoldedShuffleNetV1 {
  if (!(model instanceof ShuffleNetV1)) fail('foldBatchNorm', 'model', 'a ShuffleNetV1', model);
  // The folded model runs the synchronous forward only, which a gpu model's layers refuse.
  if (model.gpu !== null)
    fail('foldBatchNorm', 'model', 'a model on a synchronous backend (the folded model has no forwardAsync)', model.gpu.name);
  return new FoldedShuffleNetV1(model);
}
