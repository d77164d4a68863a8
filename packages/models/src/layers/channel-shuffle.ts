import type { Tensor } from '@shuffle/core';
import type { Backend, ChannelShuffleOptions, DeviceTensor } from '@shuffle/kernels';
import type { DeviceRun } from '../device-run.js';
import type { LayerInfo } from '../model.js';
import { Layer } from './layer.js';

/**
 * Channel shuffle with `groups` groups: the paper's order, or its inverse (the official code's). A
 * permutation saves nothing: its backward is the inverse permutation of dy.
 */
export class ChannelShuffle extends Layer {
  private ranForward = false;

  constructor(
    backend: Backend,
    name: string,
    readonly groups: number,
    readonly inverse: boolean,
  ) {
    super(backend, name);
  }

  private options(): ChannelShuffleOptions {
    return { inverse: this.inverse };
  }

  forward(x: Tensor): Tensor {
    this.ranForward = true;
    return this.backend.channelShuffle(x, this.groups, this.options());
  }

  backward(dy: Tensor): Tensor {
    this.saved(this.ranForward ? true : null);
    return this.backend.channelShuffleBackward(dy, this.groups, this.options()).dx;
  }

  async forwardAsync(run: DeviceRun, x: DeviceTensor): Promise<DeviceTensor> {
    this.ranForward = true;
    return run.gpu.channelShuffle(x, this.groups, this.options());
  }

  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    this.saved(this.ranForward ? true : null);
    return (await run.gpu.channelShuffleBackward(dy, this.groups, this.options())).dx;
  }

  describe(inShape: readonly number[]): LayerInfo {
    return {
      name: this.name,
      op: 'channel_shuffle',
      groups: this.groups,
      inShape: [...inShape],
      outShape: [...inShape],
      params: 0,
      macs: 0,
    };
  }
}
