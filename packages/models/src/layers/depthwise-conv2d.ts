import type { DType, Rng, Tensor } from '@shuffle/core';
import type { Backend, DepthwiseConv2dOptions, DeviceTensor } from '@shuffle/kernels';
import type { DeviceRun } from '../device-run.js';
import type { LayerInfo, Parameter } from '../model.js';
import { Layer, makeParameter, setGradient, shapeOf4, windowOutputSize } from './layer.js';

export interface DepthwiseConv2dLayerOptions {
  /** The checkpoint key prefix of the parameters: `${key}.weight`, `${key}.bias`. */
  key: string;
  channels: number;
  kernelSize: number;
  stride?: number;
  padding?: number;
  bias?: boolean;
  dtype: DType;
  /** He-normal weights drawn from it; without it the weights start at zero (to be filled in). */
  rng?: Rng;
}

/**
 * A depthwise convolution: one k x k filter per channel, weight [C, 1, k, k] (PyTorch's Conv2d with
 * groups = C, so the checkpoint's weights fit as they are). It has its own op so that fast backends can
 * use a kernel made for it. Forward saves x; backward returns dx and overwrites dweight (and dbias).
 */
export class DepthwiseConv2d extends Layer {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly channels: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number;
  private x: Tensor | null = null;
  private deviceX: DeviceTensor | null = null;

  constructor(backend: Backend, name: string, options: DepthwiseConv2dLayerOptions) {
    super(backend, name);
    const { key, channels, kernelSize, stride = 1, padding = 0, bias = false, dtype, rng } = options;
    this.channels = channels;
    this.kernelSize = kernelSize;
    this.stride = stride;
    this.padding = padding;
    this.weight = makeParameter(`${key}.weight`, [channels, 1, kernelSize, kernelSize], 'depthwise', dtype, rng);
    this.bias = bias ? makeParameter(`${key}.bias`, [channels], 'bias', dtype) : null;
  }

  private options(): DepthwiseConv2dOptions {
    const options: DepthwiseConv2dOptions = { stride: this.stride, padding: this.padding };
    if (this.bias) options.bias = this.bias.value;
    return options;
  }

  forward(x: Tensor): Tensor {
    this.x = x;
    return this.backend.depthwiseConv2d(x, this.weight.value, this.options());
  }

  backward(dy: Tensor): Tensor {
    const x = this.saved(this.x);
    const { dx, dweight, dbias } = this.backend.depthwiseConv2dBackward(dy, x, this.weight.value, this.options());
    setGradient(this.weight, dweight);
    if (this.bias && dbias) setGradient(this.bias, dbias);
    return dx;
  }

  async forwardAsync(run: DeviceRun, x: DeviceTensor): Promise<DeviceTensor> {
    this.deviceX = run.training ? x : null; // inference: the run disposes x once used
    return run.gpu.depthwiseConv2d(x, run.device(this.weight.value), this.deviceOptions(run));
  }

  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    const x = this.saved(this.deviceX);
    const { dx, dweight, dbias } = await run.gpu.depthwiseConv2dBackward(dy, x, run.device(this.weight.value), this.deviceOptions(run));
    run.gradient(this.weight, dweight);
    if (this.bias && dbias) run.gradient(this.bias, dbias);
    return dx;
  }

  private deviceOptions(run: DeviceRun) {
    const { stride, padding } = this;
    return this.bias ? { stride, padding, bias: run.device(this.bias.value) } : { stride, padding };
  }

  override parameters(): Parameter[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  describe(inShape: readonly number[]): LayerInfo {
    const [n, c, h, w] = shapeOf4(inShape);
    const { kernelSize: k, stride, padding } = this;
    const outShape = [n, c, windowOutputSize(h, k, stride, padding), windowOutputSize(w, k, stride, padding)];
    return {
      name: this.name,
      op: 'conv',
      kernel: k,
      stride,
      pad: padding,
      groups: c,
      inShape: [n, c, h, w],
      outShape,
      weightShape: [...this.weight.value.shape],
      params: this.parameters().reduce((sum, p) => sum + p.value.size, 0),
      // Each output element sums k * k products of its own channel.
      macs: n * c * (outShape[2] as number) * (outShape[3] as number) * k * k,
      megviiKey: this.weight.name.slice(0, -'.weight'.length),
    };
  }
}
