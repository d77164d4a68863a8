import type { Tensor } from '@shuffle/core';
import type { LayerInfo } from '../model.js';
import { Layer } from './layer.js';

/** max(x, 0). Forward saves x (the backward passes dy where x > 0). */
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
