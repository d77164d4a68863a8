import { type DType, ones, type Tensor, zeros } from '@shuffle/core';
import type { Backend, BatchNorm2dOptions, BatchNorm2dSaved, DeviceTensor, GpuBatchNorm2dSaved } from '@shuffle/kernels';
import type { DeviceRun } from '../device-run.js';
import type { LayerInfo, NamedBuffer, Parameter } from '../model.js';
import { Layer, makeParameter, setGradient, shapeOf4 } from './layer.js';

export interface BatchNorm2dLayerOptions {
  /** The checkpoint key prefix: `${key}.weight` (gamma), `.bias` (beta), `.running_mean`, `.running_var`. */
  key: string;
  channels: number;
  dtype: DType;
  /** Default 0.1 (PyTorch). */
  momentum?: number;
  /** Default 1e-5 (PyTorch). */
  eps?: number;
  /**
   * A ReLU follows, and forward and backward (and their async forms) run both as one op (batchNormRelu2d:
   * one pass over memory instead of two). The model still lists that ReLU as a layer of its own. Default false.
   */
  relu?: boolean;
}

/**
 * Batch norm over N, H and W per channel: gamma = 1, beta = 0, running mean 0 and variance 1 at the
 * start (PyTorch's). In training mode the forward normalises with the batch's statistics and updates
 * the running ones in place; in eval mode it uses the running ones. Forward saves x, the statistics it
 * used and the mode, which is what the backward needs.
 */
export class BatchNorm2d extends Layer {
  readonly gamma: Parameter;
  readonly beta: Parameter;
  readonly runningMean: NamedBuffer;
  readonly runningVar: NamedBuffer;
  readonly channels: number;
  readonly momentum: number;
  readonly eps: number;
  /** Whether forward and backward include the following ReLU (see BatchNorm2dLayerOptions.relu). */
  readonly fusedRelu: boolean;
  private state: { x: Tensor; saved: BatchNorm2dSaved | undefined; training: boolean } | null = null;
  private deviceState: { x: DeviceTensor; saved: GpuBatchNorm2dSaved } | null = null;

  constructor(backend: Backend, name: string, options: BatchNorm2dLayerOptions) {
    super(backend, name);
    const { key, channels, dtype, momentum = 0.1, eps = 1e-5, relu = false } = options;
    this.fusedRelu = relu;
    this.channels = channels;
    this.momentum = momentum;
    this.eps = eps;
    this.gamma = makeParameter(`${key}.weight`, [channels], 'batchnorm', dtype);
    this.gamma.value.data.fill(1);
    this.beta = makeParameter(`${key}.bias`, [channels], 'batchnorm', dtype);
    this.runningMean = { name: `${key}.running_mean`, value: zeros([channels], { dtype }) };
    this.runningVar = { name: `${key}.running_var`, value: ones([channels], { dtype }) };
  }

  private options(training: boolean): BatchNorm2dOptions {
    return { training, momentum: this.momentum, eps: this.eps };
  }

  /**
   * batch norm, or relu(batch norm) when the ReLU is fused. Inference calls the op without saved
   * statistics (they are the running ones, which an eval-mode forward leaves as they are).
   */
  forward(x: Tensor, training: boolean): Tensor {
    const args = [x, this.gamma.value, this.beta.value, this.runningMean.value, this.runningVar.value, this.options(training)] as const;
    if (!training) {
      this.state = { x, saved: undefined, training };
      return this.fusedRelu ? this.backend.batchNormRelu2d(...args) : this.backend.batchNorm2d(...args);
    }
    const { y, saved } = this.fusedRelu ? this.backend.batchNormRelu2dWithSaved(...args) : this.backend.batchNorm2dWithSaved(...args);
    this.state = { x, saved, training };
    return y;
  }

  /**
   * Given dL/dy of forward's output (after the ReLU when fused), dL/dx. After an inference forward (a
   * gradient check in eval mode) the statistics are the running ones, read again: the same as that
   * forward's unless the buffers were written in between.
   */
  backward(dy: Tensor): Tensor {
    const { x, saved: kept, training } = this.saved(this.state);
    const saved = kept ?? this.evalSaved(x);
    const gamma = this.gamma.value;
    const options = this.options(training);
    const { dx, dgamma, dbeta } = this.fusedRelu
      ? this.backend.batchNormRelu2dBackward(dy, x, gamma, this.beta.value, saved, options)
      : this.backend.batchNorm2dBackward(dy, x, gamma, saved, options);
    setGradient(this.gamma, dgamma);
    setGradient(this.beta, dbeta);
    return dx;
  }

  /** The statistics an eval-mode forward uses, from the op (one forward pass: only a backward after inference pays it). */
  private evalSaved(x: Tensor): BatchNorm2dSaved {
    const args = [x, this.gamma.value, this.beta.value, this.runningMean.value, this.runningVar.value, this.options(false)] as const;
    return (this.fusedRelu ? this.backend.batchNormRelu2dWithSaved(...args) : this.backend.batchNorm2dWithSaved(...args)).saved;
  }

  /**
   * forward on a gpu backend, the running statistics updated on the device in training. Inference
   * saves nothing (an inference forwardAsync keeps nothing for a backward).
   */
  async forwardAsync(run: DeviceRun, x: DeviceTensor, training: boolean): Promise<DeviceTensor> {
    const args = [
      x,
      run.device(this.gamma.value),
      run.device(this.beta.value),
      run.device(this.runningMean.value),
      run.device(this.runningVar.value),
    ] as const;
    if (!training) {
      this.deviceState = null;
      return this.fusedRelu ? run.gpu.batchNormRelu2d(...args, this.options(false)) : run.gpu.batchNorm2d(...args, this.options(false));
    }
    const { y, saved } = this.fusedRelu
      ? await run.gpu.batchNormRelu2dWithSaved(...args, this.options(true))
      : await run.gpu.batchNorm2dWithSaved(...args, this.options(true));
    this.deviceState = { x, saved };
    run.release(saved.mean);
    run.release(saved.invStd);
    return y;
  }

  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    const { x, saved } = this.saved(this.deviceState);
    const gamma = run.device(this.gamma.value);
    const options = this.options(true);
    const { dx, dgamma, dbeta } = this.fusedRelu
      ? await run.gpu.batchNormRelu2dBackward(dy, x, gamma, run.device(this.beta.value), saved, options)
      : await run.gpu.batchNorm2dBackward(dy, x, gamma, saved, options);
    run.gradient(this.gamma, dgamma);
    run.gradient(this.beta, dbeta);
    return dx;
  }

  override parameters(): Parameter[] {
    return [this.gamma, this.beta];
  }

  override buffers(): NamedBuffer[] {
    return [this.runningMean, this.runningVar];
  }

  describe(inShape: readonly number[]): LayerInfo {
    const shape = [...shapeOf4(inShape)];
    return {
      name: this.name,
      op: 'bn',
      inShape: shape,
      outShape: shape,
      params: 2 * this.channels,
      macs: 0,
      megviiKey: this.gamma.name.slice(0, -'.weight'.length),
    };
  }
}
