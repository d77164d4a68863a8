import { describe, fail, Tensor, type TensorData } from '@shuffle/core';
import type { Parameter, ParameterKind } from '../model.js';

export interface SgdOptions {
  /** Learning rate; a schedule may change it between steps through `sgd.lr` or `step(lr)`. */
  lr: number;
  /** Momentum factor mu in [0, 1). Default 0 (plain gradient descent). */
  momentum?: number;
  /** Nesterov momentum (needs momentum > 0). Default false. */
  nesterov?: boolean;
  /** L2 penalty lambda added to the gradient as lambda * w. Default 0. */
  weightDecay?: number;
  /**
   * Parameter kinds that get no weight decay. Default none (PyTorch's SGD decays everything). The
   * ShuffleNet recipe excludes 'batchnorm' and 'bias' (decaying a BN scale or a bias only shrinks what
   * the next layer's normalisation undoes) and often 'depthwise' (few weights each, easily over-shrunk).
   */
  noDecay?: readonly ParameterKind[];
}

const KINDS: readonly ParameterKind[] = ['conv', 'depthwise', 'batchnorm', 'linear', 'bias'];

/**
 * Stochastic gradient descent with momentum and weight decay, with PyTorch's `torch.optim.SGD` semantics
 * (dampening 0). For each parameter w with gradient g, at every step:
 *
 *   g   = g + lambda * w                 weight decay, unless the parameter's kind is excluded
 *   buf = mu * buf + g                   momentum buffer (starts at 0, so the first buf is g)
 *   d   = g + mu * buf  (Nesterov)   or  d = buf
 *   w   = w - lr * d
 *
 * With mu = 0 this is w = w - lr * g. Nothing random happens, so equal inputs give equal weights. The
 * update runs in each parameter's dtype (float32 storage rounds after every step, as PyTorch does).
 */
export class Sgd {
  /** The learning rate the next `step()` uses. */
  lr: number;
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;
  readonly noDecay: readonly ParameterKind[];
  /** Number of steps taken. */
  steps = 0;
  private readonly params: readonly Parameter[];
  /** One momentum buffer per parameter (empty when momentum is 0), in the parameter's memory order. */
  private readonly buffers: TensorData[];

  constructor(parameters: readonly Parameter[], options: SgdOptions) {
    const op = 'Sgd';
    if (!Array.isArray(parameters) || parameters.length === 0) fail(op, 'parameters', 'a non-empty array of parameters', parameters);
    if (options === null || typeof options !== 'object') fail(op, 'options', 'an object like { lr, momentum }', options);
    const { lr, momentum = 0, nesterov = false, weightDecay = 0, noDecay = [] } = options;
    this.lr = checkLearningRate(op, 'options.lr', lr);
    if (typeof momentum !== 'number' || !(momentum >= 0 && momentum < 1)) fail(op, 'options.momentum', 'a number in [0, 1)', momentum);
    if (typeof nesterov !== 'boolean') fail(op, 'options.nesterov', 'a boolean', nesterov);
    if (nesterov && momentum === 0) fail(op, 'options.nesterov', 'momentum > 0 (Nesterov looks ahead along the momentum)', 'momentum 0');
    if (typeof weightDecay !== 'number' || !(weightDecay >= 0 && Number.isFinite(weightDecay))) {
      fail(op, 'options.weightDecay', 'a finite number >= 0', weightDecay);
    }
    if (!Array.isArray(noDecay) || noDecay.some((k) => !KINDS.includes(k))) {
      fail(op, 'options.noDecay', `an array of parameter kinds (${KINDS.join(', ')})`, noDecay);
    }
    const names = new Set<string>();
    parameters.forEach((p, i) => {
      const where = `parameters[${i}]`;
      if ((p as unknown) === null || typeof p !== 'object') fail(op, where, 'a { name, value, grad, kind } entry', p);
      if (typeof p.name !== 'string') fail(op, `${where}.name`, 'a string', p.name);
      if (!(p.value instanceof Tensor)) fail(op, `${where}.value`, `a Tensor (${p.name})`, p.value);
      if (!(p.grad instanceof Tensor)) fail(op, `${where}.grad`, `a Tensor (${p.name})`, p.grad);
      if (names.has(p.name)) fail(op, `${where}.name`, 'a name no other parameter has', p.name);
      names.add(p.name);
      if (!KINDS.includes(p.kind)) fail(op, `${where}.kind`, `one of ${KINDS.join(', ')} (${p.name})`, p.kind);
      const { value, grad } = p;
      const sameShape = value.shape.length === grad.shape.length && value.shape.every((d: number, k: number) => d === grad.shape[k]);
      if (!sameShape || value.layout !== grad.layout || value.dtype !== grad.dtype) {
        fail(
          op,
          `${where}.grad`,
          `the shape, layout and dtype of the value (${p.name}: ${describe(value.shape)} ${value.layout} ${value.dtype})`,
          `${describe(grad.shape)} ${grad.layout} ${grad.dtype}`,
        );
      }
    });
    this.momentum = momentum;
    this.nesterov = nesterov;
    this.weightDecay = weightDecay;
    this.noDecay = [...noDecay];
    this.params = [...parameters];
    this.buffers = momentum > 0 ? this.params.map((p) => new (p.value.data.constructor as Float32ArrayConstructor)(p.value.size)) : [];
  }

  /** Whether weight decay applies to a parameter. */
  decays(parameter: Parameter): boolean {
    return this.weightDecay > 0 && !this.noDecay.includes(parameter.kind);
  }

  /**
   * Updates every parameter from its current `grad`, with `lr` (default: `this.lr`). Gradients are read
   * as they are: the model's backward overwrites them, so there is nothing to zero between steps.
   */
  step(lr: number = this.lr): void {
    checkLearningRate('Sgd.step', 'lr', lr);
    const mu = this.momentum;
    this.params.forEach((p, i) => {
      const w = p.value.data;
      const g = p.grad.data;
      const lambda = this.decays(p) ? this.weightDecay : 0;
      const buf = this.buffers[i];
      for (let k = 0; k < w.length; k++) {
        const wk = w[k] as number;
        const gk = (g[k] as number) + lambda * wk;
        let update = gk;
        if (buf) {
          // Stored back in the parameter's dtype, then read again, exactly like PyTorch's in-place buffer.
          buf[k] = mu * (buf[k] as number) + gk;
          update = this.nesterov ? gk + mu * (buf[k] as number) : (buf[k] as number);
        }
        w[k] = wk - lr * update;
      }
    });
    this.steps++;
  }

  /** A copy of the momentum buffer of the parameter `name`, in its memory order (undefined without momentum). */
  momentumBuffer(name: string): TensorData | undefined {
    const i = this.params.findIndex((p) => p.name === name);
    if (i < 0) fail('Sgd.momentumBuffer', 'name', 'the name of an optimized parameter', name);
    return this.buffers[i]?.slice();
  }
}

function checkLearningRate(op: string, argument: string, lr: unknown): number {
  if (typeof lr !== 'number' || !(lr >= 0 && Number.isFinite(lr))) fail(op, argument, 'a finite number >= 0', lr);
  return lr;
}
