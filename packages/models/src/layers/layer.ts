import { fail, heNormal, type Rng, type Tensor, zeros } from '@shuffle/core';
import type { Backend } from '@shuffle/kernels';
import { type LayerInfo, type NamedBuffer, type Parameter, type ParameterKind, writeGradient } from '../model.js';

/**
 * What every layer shares: the backend it calls, a readable name for messages and `describe`, and the
 * parameters it owns. A layer's forward saves what its backward needs; backward(dy) overwrites the
 * gradients of the layer's parameters and returns dx.
 */
export abstract class Layer {
  constructor(
    readonly backend: Backend,
    /** Readable path, e.g. 'stage2.unit1.pw1'. */
    readonly name: string,
  ) {}

  parameters(): Parameter[] {
    return [];
  }

  buffers(): NamedBuffer[] {
    return [];
  }

  /** The layer's entry in `describe`, from the input shape alone. */
  abstract describe(inShape: readonly number[]): LayerInfo;

  abstract backward(dy: Tensor): Tensor;

  /** What forward saved, or a clear error when backward comes first. */
  protected saved<T>(value: T | null): T {
    if (value === null)
      fail(`${this.constructor.name} ${this.name}`, 'backward', 'a forward call first (it uses what forward saved)', 'none');
    return value;
  }
}

/** A parameter with its gradient buffer: He-normal when an Rng is given (weights), else zeros (biases, or weights to be filled in). */
export function makeParameter(name: string, shape: readonly number[], kind: ParameterKind, dtype: Tensor['dtype'], rng?: Rng): Parameter {
  const value = rng ? heNormal(shape, { seed: rng, dtype }) : zeros(shape, { dtype });
  return { name, value, grad: zeros(shape, { dtype }), kind };
}

export function setGradient(parameter: Parameter, computed: Tensor): void {
  writeGradient(parameter.grad, computed, parameter.name);
}

/** Output size of a sliding window along one axis (floor mode): floor((in + 2 pad - kernel) / stride) + 1. */
export function windowOutputSize(size: number, kernel: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - kernel) / stride) + 1;
}

export function shapeOf4(inShape: readonly number[]): [number, number, number, number] {
  return inShape as unknown as [number, number, number, number];
}
