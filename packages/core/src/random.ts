import { fail } from './errors.js';
import { Rng } from './rng.js';
import { type Tensor, type TensorOptions, zeros } from './tensor.js';

/** Where random numbers come from: a seed (a fresh generator) or a generator to keep drawing from. */
export type Seed = number | Rng;

export interface RandomOptions extends TensorOptions {
  seed: Seed;
}

/** Elements drawn uniformly from [low, high), in logical order, so the layout never changes the values. */
export function randomUniform(shape: readonly number[], options: RandomOptions & { low?: number; high?: number }): Tensor {
  const { low = 0, high = 1 } = options;
  if (!(Number.isFinite(low) && Number.isFinite(high) && low <= high)) {
    fail('randomUniform', 'low, high', 'finite numbers with low <= high', [low, high]);
  }
  return fill('randomUniform', shape, options, (rng) => low + (high - low) * rng.uniform());
}

/** Elements drawn from N(mean, std^2), in logical order. */
export function randomNormal(shape: readonly number[], options: RandomOptions & { mean?: number; std?: number }): Tensor {
  const { mean = 0, std = 1 } = options;
  if (!(Number.isFinite(mean) && Number.isFinite(std) && std >= 0)) {
    fail('randomNormal', 'mean, std', 'finite numbers with std >= 0', [mean, std]);
  }
  return fill('randomNormal', shape, options, (rng) => mean + std * rng.normal());
}

/**
 * He (Kaiming) normal initialisation for a weight feeding a ReLU: N(0, 2 / fanIn). Keeping the
 * variance of each layer's output equal to its input's needs Var(w) * fanIn = 2 (the ReLU halves it).
 * fanIn defaults to the product of every dimension after the first: Cin/groups * kH * kW for OIHW
 * conv weights, `in` for [out, in] linear weights.
 */
export function heNormal(shape: readonly number[], options: RandomOptions & { fanIn?: number }): Tensor {
  const fanIn = options.fanIn ?? shape.slice(1).reduce((a, b) => a * b, 1);
  if (!(Number.isInteger(fanIn) && fanIn > 0)) fail('heNormal', 'fanIn', 'a positive integer', fanIn);
  return randomNormal(shape, { ...options, std: Math.sqrt(2 / fanIn) });
}

function fill(op: string, shape: readonly number[], options: RandomOptions, draw: (rng: Rng) => number): Tensor {
  const { seed } = options;
  if (!(seed instanceof Rng) && !Number.isInteger(seed)) fail(op, 'seed', 'an integer or an Rng', seed);
  const rng = seed instanceof Rng ? seed : new Rng(seed);
  const logical = zeros(shape, { dtype: options.dtype });
  for (let i = 0; i < logical.size; i++) logical.data[i] = draw(rng);
  return logical.toLayout(options.layout ?? 'NCHW');
}
