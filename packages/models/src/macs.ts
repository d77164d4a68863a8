import type { LayerInfo } from './model.js';

export interface MacCount {
  /** Multiply-adds of every convolution and the classifier: what both ShuffleNet papers call "FLOPs". */
  total: number;
  conv: number;
  fc: number;
  /**
   * Per part of the network, keyed by the first part of each layer's name: 'conv1', 'maxpool',
   * 'stage2', 'stage3', 'stage4', 'globalpool', 'fc' (as the reference sheet's per_stage).
   */
  perStage: Record<string, number>;
}

/**
 * Counts multiply-adds from a model's layer list, e.g. `countMacs(model.describe([1, 3, 224, 224]))`.
 * A conv with `groups` g, k x k kernel, Cin -> Cout costs outH * outW * Cout * (Cin / g) * k * k per
 * image; the classifier Cin * Cout. BN, ReLU, pooling, add and shuffle are not multiply-adds and count 0,
 * as in the papers. TF-style profilers report twice these numbers (a multiply and an add).
 */
export function countMacs(layers: readonly LayerInfo[]): MacCount {
  const count: MacCount = { total: 0, conv: 0, fc: 0, perStage: {} };
  for (const layer of layers) {
    const stage = layer.name.split('.')[0] as string;
    count.perStage[stage] = (count.perStage[stage] ?? 0) + layer.macs;
    count.total += layer.macs;
    if (layer.op === 'conv') count.conv += layer.macs;
    if (layer.op === 'fc') count.fc += layer.macs;
  }
  return count;
}
