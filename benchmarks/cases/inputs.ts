import { Rng, randomUniform, type Tensor } from '@shuffle/core';
import { type Backend, type MaxPool2dSaved, reference } from '@shuffle/kernels';
import type { NetworkCase, OpCase, OpSpec } from './case.js';
import { outputShape } from './ops.js';

/**
 * The inputs of every case, made from its seed: the same numbers in every process, so that a backend
 * measured in one process is checked against the reference computed in another.
 */

export interface OpInputs {
  /** Logical NCHW (NC for linear), float32, values in [-1, 1). */
  x: Tensor;
  weight?: Tensor;
  /** Backward cases: the gradient of the output. */
  dy?: Tensor;
  /** Backward cases: the forward output (TensorFlow.js's MaxPoolGrad wants it). */
  y?: Tensor;
  /** Max-pool backward: the argmax of the forward (what a training step saved). */
  saved?: MaxPool2dSaved;
}

/** One call of a Backend method: `backend[method](...args)`; tensors among the args are the case's inputs. */
export interface OpCall {
  method: keyof Backend;
  args: unknown[];
}

export function opInputs(c: OpCase): OpInputs {
  const { spec } = c;
  const x = randomUniform(spec.x, { seed: c.seed, low: -1, high: 1 });
  const weight = 'weight' in spec ? randomUniform(spec.weight, { seed: c.seed + 1, low: -1, high: 1 }) : undefined;
  if (c.direction === 'forward') return { x, weight };
  const dy = randomUniform(outputShape(spec), { seed: c.seed + 2, low: -1, high: 1 });
  const inputs: OpInputs = { x, weight, dy };
  if (spec.op === 'maxPool2d') {
    const { y, saved } = reference.maxPool2dWithSaved(x, poolOptions(spec));
    inputs.y = y;
    inputs.saved = saved;
  }
  return inputs;
}

function poolOptions(spec: Extract<OpSpec, { op: 'maxPool2d' | 'avgPool2d' }>) {
  const base = { kernelSize: spec.kernelSize, stride: spec.stride, padding: spec.padding };
  return spec.op === 'avgPool2d' ? { ...base, countIncludePad: true } : base;
}

/** The Backend call a case makes (the design contract's signatures), shared by every backend of ours. */
export function opCall(c: OpCase, i: OpInputs): OpCall {
  const { spec } = c;
  const forward = c.direction === 'forward';
  const dy = i.dy as Tensor;
  switch (spec.op) {
    case 'conv2d': {
      const options = { stride: spec.stride, padding: spec.padding, groups: spec.groups };
      return forward
        ? { method: 'conv2d', args: [i.x, i.weight, options] }
        : { method: 'conv2dBackward', args: [dy, i.x, i.weight, options] };
    }
    case 'depthwiseConv2d': {
      const options = { stride: spec.stride, padding: spec.padding };
      return forward
        ? { method: 'depthwiseConv2d', args: [i.x, i.weight, options] }
        : { method: 'depthwiseConv2dBackward', args: [dy, i.x, i.weight, options] };
    }
    case 'maxPool2d':
      return forward
        ? { method: 'maxPool2d', args: [i.x, poolOptions(spec)] }
        : { method: 'maxPool2dBackward', args: [dy, i.x, poolOptions(spec), i.saved] };
    case 'avgPool2d':
      return forward
        ? { method: 'avgPool2d', args: [i.x, poolOptions(spec)] }
        : { method: 'avgPool2dBackward', args: [dy, i.x, poolOptions(spec)] };
    case 'channelShuffle':
      return forward
        ? { method: 'channelShuffle', args: [i.x, spec.groups] }
        : { method: 'channelShuffleBackward', args: [dy, spec.groups] };
    case 'globalAvgPool2d':
      return forward ? { method: 'globalAvgPool2d', args: [i.x] } : { method: 'globalAvgPool2dBackward', args: [dy, i.x] };
    case 'linear':
      return forward ? { method: 'linear', args: [i.x, i.weight] } : { method: 'linearBackward', args: [dy, i.x, i.weight] };
  }
}

/** A forward returns y; a backward returns { dx, dweight? }: both become named outputs. */
export function namedOutputs<T>(direction: 'forward' | 'backward', result: unknown): Record<string, T> {
  if (direction === 'forward') return { y: result as T };
  const out: Record<string, T> = {};
  for (const [name, value] of Object.entries(result as Record<string, T>)) {
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** Runs a case's call on a synchronous backend. */
export function runOp(backend: Backend, call: OpCall): unknown {
  return (backend[call.method] as (...args: unknown[]) => unknown)(...call.args);
}

/** The oracle: the reference backend's outputs for a case. */
export function opOracle(c: OpCase, inputs: OpInputs): Record<string, Tensor> {
  return namedOutputs<Tensor>(c.direction, runOp(reference, opCall(c, inputs)));
}

/** Input images and labels of a network case. */
export function networkBatch(c: NetworkCase): { x: Tensor; labels: Int32Array } {
  const { batch, net } = c;
  const x = randomUniform([batch, 3, net.inputSize, net.inputSize], { seed: c.seed + 7, low: -1, high: 1 });
  const rng = new Rng(c.seed + 8);
  const labels = Int32Array.from({ length: batch }, () => rng.int(net.numClasses));
  return { x, labels };
}
