import type { Tensor } from '@shuffle/core';
import type { AvgPool2dOptions, Backend, DeviceTensor, GpuMaxPool2dSaved, MaxPool2dOptions, MaxPool2dSaved } from '@shuffle/kernels';
import type { DeviceRun } from '../device-run.js';
import type { LayerInfo } from '../model.js';
import { Layer, shapeOf4, windowOutputSize } from './layer.js';

/** A square window, stride and symmetric padding, as ShuffleNet's pools use. */
export interface PoolWindow {
  kernelSize: number;
  stride: number;
  padding: number;
}

function describePool(name: string, op: 'maxpool' | 'avgpool', window: PoolWindow, inShape: readonly number[]): LayerInfo {
  const [n, c, h, w] = shapeOf4(inShape);
  const { kernelSize: k, stride, padding } = window;
  return {
    name,
    op,
    kernel: k,
    stride,
    pad: padding,
    inShape: [n, c, h, w],
    outShape: [n, c, windowOutputSize(h, k, stride, padding), windowOutputSize(w, k, stride, padding)],
    params: 0,
    macs: 0,
  };
}

/**
 * Max pooling. Forward saves x and, in training, which element won each window; backward routes dy to
 * the winners (recomputed from x after an inference forward).
 */
export class MaxPool2d extends Layer {
  private state: { x: Tensor; saved: MaxPool2dSaved | undefined } | null = null;
  private deviceState: { x: DeviceTensor; saved: GpuMaxPool2dSaved } | null = null;

  constructor(
    backend: Backend,
    name: string,
    readonly window: PoolWindow,
  ) {
    super(backend, name);
  }

  private options(): MaxPool2dOptions {
    return { kernelSize: this.window.kernelSize, stride: this.window.stride, padding: this.window.padding };
  }

  /**
   * Inference (training false) pools without the argmax: the plain op skips writing it, and the fast
   * cpu kernel has a quicker path without it. A backward may still follow (gradient checks in eval mode):
   * it recomputes the argmax from x. Default true, what a caller that does not say gets.
   */
  forward(x: Tensor, training = true): Tensor {
    if (!training) {
      this.state = { x, saved: undefined };
      return this.backend.maxPool2d(x, this.options());
    }
    const { y, saved } = this.backend.maxPool2dWithSaved(x, this.options());
    this.state = { x, saved };
    return y;
  }

  backward(dy: Tensor): Tensor {
    const { x, saved } = this.saved(this.state);
    return this.backend.maxPool2dBackward(dy, x, this.options(), saved).dx;
  }

  /** Inference pools without saving the argmax. */
  async forwardAsync(run: DeviceRun, x: DeviceTensor, training: boolean): Promise<DeviceTensor> {
    if (!training) {
      this.deviceState = null;
      return run.gpu.maxPool2d(x, this.options());
    }
    const { y, saved } = await run.gpu.maxPool2dWithSaved(x, this.options());
    this.deviceState = { x, saved };
    run.release(saved.argmax);
    return y;
  }

  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    const { x, saved } = this.saved(this.deviceState);
    return (await run.gpu.maxPool2dBackward(dy, x, this.options(), saved)).dx;
  }

  describe(inShape: readonly number[]): LayerInfo {
    return describePool(this.name, 'maxpool', this.window, inShape);
  }
}

/**
 * Average pooling; padded positions count in the divisor (countIncludePad, PyTorch's default and what
 * the official ShuffleNet's shortcut uses). Forward saves x (only its shape matters to the backward).
 */
export class AvgPool2d extends Layer {
  private x: Tensor | null = null;
  private deviceX: DeviceTensor | null = null;

  constructor(
    backend: Backend,
    name: string,
    readonly window: PoolWindow,
  ) {
    super(backend, name);
  }

  private options(): AvgPool2dOptions {
    return { kernelSize: this.window.kernelSize, stride: this.window.stride, padding: this.window.padding, countIncludePad: true };
  }

  forward(x: Tensor): Tensor {
    this.x = x;
    return this.backend.avgPool2d(x, this.options());
  }

  backward(dy: Tensor): Tensor {
    return this.backend.avgPool2dBackward(dy, this.saved(this.x), this.options()).dx;
  }

  async forwardAsync(run: DeviceRun, x: DeviceTensor): Promise<DeviceTensor> {
    this.deviceX = run.training ? x : null; // inference: the run disposes x once used
    return run.gpu.avgPool2d(x, this.options());
  }

  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    return (await run.gpu.avgPool2dBackward(dy, this.saved(this.deviceX), this.options())).dx;
  }

  describe(inShape: readonly number[]): LayerInfo {
    return describePool(this.name, 'avgpool', this.window, inShape);
  }
}

/** The mean over H and W of each channel, [N, C, H, W] -> [N, C, 1, 1], for any input size. */
export class GlobalAvgPool2d extends Layer {
  private x: Tensor | null = null;
  private deviceX: DeviceTensor | null = null;

  forward(x: Tensor): Tensor {
    this.x = x;
    return this.backend.globalAvgPool2d(x);
  }

  backward(dy: Tensor): Tensor {
    return this.backend.globalAvgPool2dBackward(dy, this.saved(this.x)).dx;
  }

  async forwardAsync(run: DeviceRun, x: DeviceTensor): Promise<DeviceTensor> {
    this.deviceX = run.training ? x : null; // inference: the run disposes x once used
    return run.gpu.globalAvgPool2d(x);
  }

  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    return (await run.gpu.globalAvgPool2dBackward(dy, this.saved(this.deviceX))).dx;
  }

  describe(inShape: readonly number[]): LayerInfo {
    const [n, c] = shapeOf4(inShape);
    return { name: this.name, op: 'global_avgpool', inShape: [...inShape], outShape: [n, c, 1, 1], params: 0, macs: 0 };
  }
}
