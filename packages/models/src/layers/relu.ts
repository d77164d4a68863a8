import type { Tensor } from '@shuffle/core';
import type { DeviceTensor } from '@shuffle/kernels';
import type { DeviceRun } from '../device-run.js';
import type { LayerInfo } from '../model.js';
import { Layer } from './layer.js';

/** max(x, 0). Forward saves x (the backward passes dy where x > 0). */
export class ReLU extends Layer {
  private x: Tensor | null = null;
  private deviceX: DeviceTensor | null = null;

  forward(x: Tensor): Tensor {
    this.x = x;
    return this.backend.relu(x);
  }

  backward(dy: Tensor): Tensor {
    return this.backend.reluBackward(dy, this.saved(this.x)).dx;
  }

  async forwardAsync(run: DeviceRun, x: DeviceTensor): Promise<DeviceTensor> {
    this.deviceX = x;
    return run.gpu.relu(x);
  }

  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    return (await run.gpu.reluBackward(dy, this.saved(this.deviceX))).dx;
  }

  describe(inShape: readonly number[]): LayerInfo {
    return { name: this.name, op: 'relu', inShape: [...inShape], outShape: [...inShape], params: 0, macs: 0 };
  }
}
