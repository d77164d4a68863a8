import { fail } from './errors.js';
import { Rng } from './rng.js';
import { checkDType, checkLayout, checkShape, type DType, type Layout, type Tensor, type TensorOptions, zeros } from './tensor.js';

/** Where random numbers come from: a seed (a fresh generator) or a generator to keep drawing from. */
export type Seed = number | Rng;

export interface RandomOptions extends TensorOptions {
  seed: Seed;
}

/**
 * Elements drawn uniformly from [low, high), in logical order, so the layout never changes the values.
 * Rounding to the dtype never reaches `high` (nor falls below `low`): an element that would is pulled
 * back to the nearest value of the dtype inside the range.
 */
export function randomUniform(shape: readonly number[], options: RandomOptions & { low?: number; high?: number }): Tensor {
  const op = 'randomUniform';
  const resolved = resolve(op, shape, options);
  const { low = 0, high = 1 } = options;
  if (!(Number.isFinite(low) && Number.isFinite(high) && low <= high && Number.isFinite(high - low))) {
    fail(op, 'low, high', 'finite numbers with low <= high and a finite high - low', [low, high]);
  }
  let bottom = low;
  let top = high;
  if (low < high) {
    // low + (high - low) * u rounds up to `high` itself when u is within half an ulp of 1, which float32
    // makes about once in 2^25 draws; and a bound that the dtype cannot hold rounds to a value beyond it.
    bottom = roundTo(low, resolved.dtype);
    if (bottom < low) bottom = nextToward(bottom, resolved.dtype, 1);
    top = roundTo(high, resolved.dtype);
    if (top >= high) top = nextToward(top, resolved.dtype, -1);
    if (bottom > top) fail(op, 'low, high', `a range holding at least one ${resolved.dtype} value`, [low, high]);
  }
  return fill(shape, resolved, (rng) => Math.min(Math.max(low + (high - low) * rng.uniform(), bottom), top));
}

/** Elements drawn from N(mean, std^2), in logical order. */
export function randomNormal(shape: readonly number[], options: RandomOptions & { mean?: number; std?: number }): Tensor {
  const op = 'randomNormal';
  const resolved = resolve(op, shape, options);
  const { mean = 0, std = 1 } = options;
  if (!(Number.isFinite(mean) && Number.isFinite(std) && std >= 0)) {
    fail(op, 'mean, std', 'finite numbers with std >= 0', [mean, std]);
  }
  return fill(shape, resolved, (rng) => mean + std * rng.normal());
}

/**
 * He (Kaiming) normal initialisation for a weight feeding a ReLU: N(0, 2 / fanIn). Keeping the
 * variance of each layer's output equal to its input's needs Var(w) * fanIn = 2 (the ReLU halves it).
 * fanIn defaults to the product of every dimension after the first: Cin/groups * kH * kW for OIHW
 * conv weights, `in` for [out, in] linear weights.
 */
export function heNormal(shape: readonly number[], options: RandomOptions & { fanIn?: number }): Tensor {
  const op = 'heNormal';
  const resolved = resolve(op, shape, options);
  const fanIn = options.fanIn ?? shape.slice(1).reduce((a, b) => a * b, 1);
  if (!(Number.isInteger(fanIn) && fanIn > 0)) {
    fail(op, 'fanIn', 'a positive integer (by default the product of the dimensions after the first)', fanIn);
  }
  const std = Math.sqrt(2 / fanIn);
  return fill(shape, resolved, (rng) => std * rng.normal());
}

interface Resolved {
  layout: Layout;
  dtype: DType;
  seed: Seed;
}

/** Checks everything a random tensor needs, before a single number is drawn from a caller's generator. */
function resolve(op: string, shape: readonly number[], options: RandomOptions): Resolved {
  if (options === null || typeof options !== 'object') fail(op, 'options', 'an object with a seed', options);
  const { seed, layout = 'NCHW', dtype = 'float32' } = options;
  checkShape(op, shape);
  checkLayout(op, layout, shape);
  checkDType(op, dtype);
  if (!(seed instanceof Rng) && !Number.isSafeInteger(seed)) fail(op, 'seed', 'a safe integer or an Rng', seed);
  return { layout, dtype, seed };
}

function fill(shape: readonly number[], { layout, dtype, seed }: Resolved, draw: (rng: Rng) => number): Tensor {
  const rng = seed instanceof Rng ? seed : new Rng(seed);
  const logical = zeros(shape, { dtype });
  for (let i = 0; i < logical.size; i++) logical.data[i] = draw(rng);
  return logical.toLayout(layout);
}

function roundTo(value: number, dtype: DType): number {
  return dtype === 'float32' ? Math.fround(value) : value;
}

/** The neighbour of `value` (a value of `dtype`) one step toward +Infinity (direction 1) or -Infinity (-1). */
function nextToward(value: number, dtype: DType, direction: 1 | -1): number {
  if (value === 0) return direction * (dtype === 'float32' ? 2 ** -149 : Number.MIN_VALUE);
  // Away from zero, the bit patterns of same-signed floats are ordered like their magnitudes.
  const step = value > 0 === direction > 0 ? 1 : -1;
  const view = new DataView(new ArrayBuffer(8));
  if (dtype === 'float32') {
    view.setFloat32(0, value);
    view.setUint32(0, view.getUint32(0) + step);
    return view.getFloat32(0);
  }
  view.setFloat64(0, value);
  view.setBigUint64(0, view.getBigUint64(0) + BigInt(step));
  return view.getFloat64(0);
}
