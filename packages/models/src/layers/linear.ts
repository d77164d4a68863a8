import type { DType, Rng, Tensor } from '@shuffle/core';
import type { Backend, DeviceTensor, LinearOptions } from '@shuffle/kernels';
import type { DeviceRun } from '../device-run.js';
import type { LayerInfo, Parameter } from '../model.js';
import { Layer, makeParameter, setGradient } from './layer.js';

export interface LinearLayerOptions {
  /** The checkpoint key prefix: `${key}.weight`, `${key}.bias`. */
  key: string;
  inFeatures: number;
  outFeatures: number;
  bias?: boolean;
  dtype: DType;
  /** He-normal weights drawn from it; without it the weights start at zero (to be filled in). */
  rng?: Rng;
}

/**
 * y = x W^T (+ b), weight [out, in]. x may be [N, in] or a pooled [N, in, 1, 1] in either layout.
 * Forward saves x; backward returns dx in x's shape and overwrites dweight (and dbias).
 */
export class Linear extends Layer {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  private x: Tensor | null = null;
  private deviceX: DeviceTensor | null = null;

  constructor(backend: Backend, name: string, options: LinearLayerOptions) {
    super(backend, name);
    const { key, inFeatures, outFeatures, bias = false, dtype, rng } = options;
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = makeParameter(`${key}.weight`, [outFeatures, inFeatures], 'linear', dtype, rng);
    this.bias = bias ? makeParameter(`${key}.bias`, [outFeatures], 'bias', dtype) : null;
  }

  private options(): LinearOptions {
    return this.bias ? { bias: this.bias.value } : {};
  }

  forward(x: Tensor): Tensor {
    this.x = x;
    return this.backend.linear(x, this.weight.value, this.options());
  }

  backward(dy: Tensor): Tensor {
    const x = this.saved(this.x);
    const { dx, dweight, dbias } = this.backend.linearBackward(dy, x, this.weight.value, this.options());
    setGradient(this.weight, dweight);
    if (this.bias && dbias) setGradient(this.bias, dbias);
    return dx;
  }

  async forwardAsync(run: DeviceRun, x: DeviceTensor): Promise<DeviceTensor> {
    this.deviceX = run.training ? x : null; // inference: the run disposes x once used
    return run.gpu.linear(x, run.device(this.weight.value), this.deviceOptions(run));
  }

  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    const x = this.saved(this.deviceX);
    const { dx, dweight, dbias } = await run.gpu.linearBackward(dy, x, run.device(this.weight.value), this.deviceOptions(run));
    run.gradient(this.weight, dweight);
    if (this.bias && dbias) run.gradient(this.bias, dbias);
    return dx;
  }

  private deviceOptions(run: DeviceRun) {
    return this.bias ? { bias: run.device(this.bias.value) } : {};
  }

  override parameters(): Parameter[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  describe(inShape: readonly number[]): LayerInfo {
    const n = inShape[0] as number;
    return {
      name: this.name,
      op: 'fc',
      inShape: [n, this.inFeatures],
      outShape: [n, this.outFeatures],
      weightShape: [this.outFeatures, this.inFeatures],
      params: this.parameters().reduce((sum, p) => sum + p.value.size, 0),
      macs: n * this.inFeatures * this.outFeatures,
      megviiKey: this.weight.name.slice(0, -'.weight'.length),
    };
  }
}
