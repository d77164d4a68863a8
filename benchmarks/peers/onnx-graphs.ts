import type { Tensor } from '@shuffle/core';
import type { OpSpec } from '../cases/case.js';
import { BN_EPS, type NetworkPlan, type WeightMap } from '../cases/network.js';
import { outputShape } from '../cases/ops.js';
import { encodeModel, OnnxGraph } from './onnx-proto.js';

/**
 * The ONNX graphs (opset 17, NCHW, float32) of the forward cases and of ShuffleNet v1 inference.
 * Grouped and depthwise convolutions are native in ONNX (Conv's `group`); average pooling takes
 * count_include_pad = 1 to match PyTorch's default; the channel shuffle is Reshape -> Transpose -> Reshape.
 */

const pads = (p: number) => [p, p, p, p];

/** A forward op case as a one-op graph: input 'x', output 'y'. Weights become initializers. */
export function opGraph(spec: OpSpec, weight: Tensor | undefined): Uint8Array {
  const g = new OnnxGraph(spec.op);
  const x = g.input('x', spec.x);
  const out = outputShape(spec);
  switch (spec.op) {
    case 'conv2d':
    case 'depthwiseConv2d': {
      const w = g.constant('w', spec.weight, Float32Array.from((weight as Tensor).data));
      const [, , kh, kw] = spec.weight;
      const group = spec.op === 'conv2d' ? spec.groups : spec.x[1];
      g.node('Conv', [x, w], { group, kernel_shape: [kh, kw], pads: pads(spec.padding), strides: [spec.stride, spec.stride] }, 'y');
      break;
    }
    case 'maxPool2d':
      g.node(
        'MaxPool',
        [x],
        { kernel_shape: [spec.kernelSize, spec.kernelSize], pads: pads(spec.padding), strides: [spec.stride, spec.stride] },
        'y',
      );
      break;
    case 'avgPool2d':
      g.node(
        'AveragePool',
        [x],
        {
          kernel_shape: [spec.kernelSize, spec.kernelSize],
          pads: pads(spec.padding),
          strides: [spec.stride, spec.stride],
          count_include_pad: 1,
        },
        'y',
      );
      break;
    case 'channelShuffle':
      shuffle(g, x, spec.x, spec.groups, 'y');
      break;
    case 'globalAvgPool2d':
      g.node('GlobalAveragePool', [x], {}, 'y');
      break;
    case 'linear': {
      const w = g.constant('w', spec.weight, Float32Array.from((weight as Tensor).data));
      g.node('Gemm', [x, w], { transB: 1 }, 'y');
      break;
    }
  }
  g.output('y', out);
  return encodeModel(g);
}

/** The paper's shuffle: view C as (G, C/G), transpose those two axes, flatten back. */
function shuffle(g: OnnxGraph, x: string, shape: readonly number[], groups: number, output?: string): string {
  const [n, c, h, w] = shape as [number, number, number, number];
  const split = g.node('Reshape', [x, g.int64(g.fresh('shape'), [n, groups, c / groups, h, w])]);
  const swapped = g.node('Transpose', [split], { perm: [0, 2, 1, 3, 4] });
  return g.node('Reshape', [swapped, g.int64(g.fresh('shape'), [n, c, h, w])], {}, output);
}

/** ShuffleNet v1 inference (batch norm on running statistics) for a batch of `batch` images of `size`. */
export function networkGraph(plan: NetworkPlan, weights: WeightMap, buffers: WeightMap, batch: number, size: number): Uint8Array {
  const g = new OnnxGraph('shufflenet_v1');
  const param = (name: string) => {
    const w = weights.get(name) ?? buffers.get(name);
    if (!w) throw new Error(`ONNX ShuffleNet: no value for '${name}'`);
    return g.constant(name, w.shape, w.data);
  };
  const conv = (x: string, name: string, group: number, kernel: number, stride: number, pad: number) =>
    g.node('Conv', [x, param(name)], { group, kernel_shape: [kernel, kernel], pads: pads(pad), strides: [stride, stride] });
  const bn = (x: string, key: string) =>
    g.node(
      'BatchNormalization',
      [x, param(`${key}.weight`), param(`${key}.bias`), param(`${key}.running_mean`), param(`${key}.running_var`)],
      {
        epsilon: { float: BN_EPS },
      },
    );

  const stemStride = plan.stem === 'imagenet' ? 2 : 1;
  let y = g.node('Relu', [
    bn(conv(g.input('x', [batch, plan.inChannels, size, size]), 'first_conv.0.weight', 1, 3, stemStride, 1), 'first_conv.1'),
  ]);
  let spatial = Math.floor((size + 2 - 3) / stemStride) + 1;
  if (plan.stem === 'imagenet') {
    y = g.node('MaxPool', [y], { kernel_shape: [3, 3], pads: pads(1), strides: [2, 2] });
    spatial = Math.floor((spatial + 2 - 3) / 2) + 1;
  }
  for (const u of plan.units) {
    const main1 = `${u.key}.branch_main_1`;
    const main2 = `${u.key}.branch_main_2`;
    let b = g.node('Relu', [bn(conv(y, `${main1}.0.weight`, u.firstGroups, 1, 1, 0), `${main1}.1`)]);
    if (u.groups > 1) b = shuffle(g, b, [batch, u.mid, spatial, spatial], u.groups);
    const out = Math.floor((spatial + 2 - 3) / u.stride) + 1;
    b = bn(conv(b, `${main1}.3.weight`, u.mid, 3, u.stride, 1), `${main1}.4`);
    b = bn(conv(b, `${main2}.0.weight`, u.groups, 1, 1, 0), `${main2}.1`);
    if (u.stride === 1) {
      y = g.node('Relu', [g.node('Add', [y, b])]);
    } else {
      const shortcut = g.node('AveragePool', [y], { kernel_shape: [3, 3], pads: pads(1), strides: [2, 2], count_include_pad: 1 });
      y = g.node('Concat', [shortcut, g.node('Relu', [b])], { axis: 1 });
    }
    spatial = out;
  }
  const features = g.node('Flatten', [g.node('GlobalAveragePool', [y])], { axis: 1 });
  const inputs = [features, param('classifier.0.weight')];
  if (plan.classifierBias) inputs.push(param('classifier.0.bias'));
  g.node('Gemm', inputs, { transB: 1 }, 'logits');
  g.output('logits', [batch, plan.numClasses]);
  return encodeModel(g);
}
