import type { DType, Rng, Tensor } from '@shuffle/core';
import type { Backend, Conv2dOptions, DeviceTensor } from '@shuffle/kernels';
import type { DeviceRun } from '../device-run.js';
import type { LayerInfo, Parameter } from '../model.js';
import { Layer, makeParameter, setGradient, shapeOf4, windowOutputSize } from './layer.js';

export interface Conv2dLayerOptions {
  /** The checkpoint key prefix of the parameters: `${key}.weight`, `${key}.bias`. */
  key: string;
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  stride?: number;
  padding?: number;
  groups?: number;
  bias?: boolean;
  dtype: DType;
  /** He-normal weights drawn from it; without it the weights start at zero (to be filled in). */
  rng?: Rng;
}

/**
 * A (grouped) convolution, weight [out, in / groups, k, k] (OIHW), square kernel and symmetric padding.
 * Forward saves x; backward returns dx and overwrites dweight (and dbias).
 */
export class Conv2d extends Layer {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number;
  readonly groups: number;
  private x: Tensor | null = null;
  private deviceX: DeviceTensor | null = null;

  constructor(backend: Backend, name: string, options: Conv2dLayerOptions) {
    super(backend, name);
    const { key, inChannels, outChannels, kernelSize, stride = 1, padding = 0, groups = 1, bias = false, dtype, rng } = options;
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = kernelSize;
    this.stride = stride;
    this.padding = padding;
    this.groups = groups;
    this.weight = makeParameter(`${key}.weight`, [outChannels, inChannels / groups, kernelSize, kernelSize], 'conv', dtype, rng);
    this.bias = bias ? makeParameter(`${key}.bias`, [outChannels], 'bias', dtype) : null;
  }

  private options(): Conv2dOptions {
    const options: Conv2dOptions = { stride: this.stride, padding: this.padding, groups: this.groups };
    if (this.bias) options.bias = this.bias.value;
    return options;
  }

  forward(x: Tensor): Tensor {
    this.x = x;
    return this.backend.conv2d(x, this.weight.value, this.options());
  }

  backward(dy: Tensor): Tensor {
    const x = this.saved(this.x);
    const { dx, dweight, dbias } = this.backend.conv2dBackward(dy, x, this.weight.value, this.options());
    setGradient(this.weight, dweight);
    if (this.bias && dbias) setGradient(this.bias, dbias);
    return dx;
  }

  /** forward on a gpu backend: x saved in training (the run keeps it until backwardAsync). */
  async forwardAsync(run: DeviceRun, x: DeviceTensor): Promise<DeviceTensor> {
    this.deviceX = run.training ? x : null; // inference: the run disposes x once used
    return run.gpu.conv2d(x, run.device(this.weight.value), this.deviceOptions(run));
  }

  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    const x = this.saved(this.deviceX);
    const { dx, dweight, dbias } = await run.gpu.conv2dBackward(dy, x, run.device(this.weight.value), this.deviceOptions(run));
    run.gradient(this.weight, dweight);
    if (this.bias && dbias) run.gradient(this.bias, dbias);
    return dx;
  }

  private deviceOptions(run: DeviceRun) {
    const { stride, padding, groups } = this;
    return this.bias ? { stride, padding, groups, bias: run.device(this.bias.value) } : { stride, padding, groups };
  }

  override parameters(): Parameter[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  describe(inShape: readonly number[]): LayerInfo {
    const [n, c, h, w] = shapeOf4(inShape);
    const { outChannels, kernelSize: k, stride, padding, groups } = this;
    const outShape = [n, outChannels, windowOutputSize(h, k, stride, padding), windowOutputSize(w, k, stride, padding)];
    const weightShape = [...this.weight.value.shape];
    return {
      name: this.name,
      op: 'conv',
      kernel: k,
      stride,
      pad: padding,
      groups,
      inShape: [n, c, h, w],
      outShape,
      weightShape,
      params: this.parameters().reduce((sum, p) => sum + p.value.size, 0),
      // Each output element sums (in / groups) * k * k products.
      macs: n * outChannels * (outShape[2] as number) * (outShape[3] as number) * (c / groups) * k * k,
      megviiKey: this.weight.name.slice(0, -'.weight'.length),
    };
  }
}
