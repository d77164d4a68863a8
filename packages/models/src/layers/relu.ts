import type { Tensor } from '@shuffle/core';
import type { LayerInfo } from '../model.js';
import { Layer } from './layer.js';

/**
 * max(x, 0). Forward saves x (the backward passes dy where x > 0). In ShuffleNetV1 every ReLU runs fused
 * into the op before it (batchNormRelu2d, addRelu), so there these layers only describe themselves;
 * the batch-norm-folded model runs them.
 */
export class ReLU extends Layer {
  private x: Tensor | null = null;

  forward(x: Tensor): Tensor {
    this.x = x;
    return this.backend.relu(x);
  }

  backward(dy: Tensor): Tensor {
    return this.backend.reluBackward(dy, this.saved(this.x)).dx;
  }

  describe(inShape: readonly number[]): LayerInfo {
    return { name: this.name, op: 'relu', inShape: [...inShape], outShape: [...inShape], params: 0, macs: 0 };
  }
}
