import { Rng, randomUniform, type Tensor } from '@shuffle/core';
import fc from 'fast-check';
import type { Sample } from '../spec.js';

/** A logical [N, C, H, W] shape; the defaults reach 1x1 spatial, batch > 1, odd sizes and C not a multiple of 4. */
export function shape4({ maxN = 3, maxC = 7, maxH = 9, maxW = 9, minH = 1, minW = 1 } = {}): fc.Arbitrary<number[]> {
  return fc.tuple(
    fc.integer({ min: 1, max: maxN }),
    fc.integer({ min: 1, max: maxC }),
    fc.integer({ min: minH, max: maxH }),
    fc.integer({ min: minW, max: maxW }),
  );
}

/** Uniform [-1, 1) tensors of the given shapes, all drawn from one seed. */
export function randomInputs(shapes: Record<string, readonly number[]>, seed: number): Record<string, Tensor> {
  const rng = new Rng(seed);
  const inputs: Record<string, Tensor> = {};
  for (const [name, shape] of Object.entries(shapes)) inputs[name] = randomUniform(shape, { seed: rng, low: -1, high: 1 });
  return inputs;
}

/** A sample with random tensors of the given shapes and fixed options. */
export function withInputs<Options>(shapes: Record<string, readonly number[]>, options: Options): fc.Arbitrary<Sample<Options>> {
  return fc.integer({ min: 0, max: 2 ** 31 - 1 }).map((seed) => ({ inputs: randomInputs(shapes, seed), options }));
}

/**
 * A copy of `x` whose elements sit at least `gap` away from every point in `kinks` (ReLU's 0, a max
 * pool's ties), so that central differences with a much smaller step never straddle one.
 */
export function awayFrom(x: Tensor, kinks: readonly number[] = [0], gap = 1e-3): Tensor {
  const y = x.clone();
  for (let i = 0; i < y.size; i++) {
    let v = y.data[i] as number;
    for (const k of kinks) if (Math.abs(v - k) < gap) v = v < k ? k - gap : k + gap;
    y.data[i] = v;
  }
  return y;
}
