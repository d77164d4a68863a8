/** Arbitraries and helpers shared by the @shuffle/core tests. */
import { type DType, type Layout, ShuffleArgumentError, shapeSize } from '@shuffle/core';
import fc from 'fast-check';
import { expect } from 'vitest';

/** A dimension that is 0 now and then, often 1 (1x1 spatial, batch 1), otherwise small and often odd. */
export const dimension: fc.Arbitrary<number> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(0) },
  { weight: 3, arbitrary: fc.constant(1) },
  { weight: 8, arbitrary: fc.integer({ min: 2, max: 5 }) },
);

export const shape4: fc.Arbitrary<[number, number, number, number]> = fc.tuple(dimension, dimension, dimension, dimension);

/** A shape of any rank from 0 (a scalar) to 5. */
export const anyShape: fc.Arbitrary<number[]> = fc.array(dimension, { minLength: 0, maxLength: 5 });

export const dtypes: fc.Arbitrary<DType> = fc.constantFrom('float32', 'float64');
export const layouts: fc.Arbitrary<Layout> = fc.constantFrom('NCHW', 'NHWC');

/** Any value the dtype holds, NaN, infinities and -0 included. */
export function element(dtype: DType): fc.Arbitrary<number> {
  return dtype === 'float32' ? fc.float() : fc.double();
}

export function values(shape: readonly number[], dtype: DType): fc.Arbitrary<number[]> {
  const size = shapeSize(shape);
  return fc.array(element(dtype), { minLength: size, maxLength: size });
}

/** Tensor contents: a 4-D shape, a dtype, the layout `values` are given in, and the values in that memory order. */
export interface Case4 {
  shape: number[];
  dtype: DType;
  layout: Layout;
  values: number[];
}

export const case4: fc.Arbitrary<Case4> = fc
  .record({ shape: shape4, dtype: dtypes, layout: layouts })
  .chain((c) => values(c.shape, c.dtype).map((v) => ({ ...c, shape: [...c.shape], values: v })));

export function otherLayout(layout: Layout): Layout {
  return layout === 'NCHW' ? 'NHWC' : 'NCHW';
}

/** Every index of `shape` in row-major order, with its row-major position. */
export function* indices(shape: readonly number[]): Generator<[number[], number]> {
  const size = shapeSize(shape);
  const index = shape.map(() => 0);
  for (let flat = 0; flat < size; flat++) {
    yield [[...index], flat];
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d] = (index[d] as number) + 1;
      if ((index[d] as number) < (shape[d] as number)) break;
      index[d] = 0;
    }
  }
}

/**
 * Where a logical [n, c, h, w] lives in memory, written from the definition of the layouts and nothing
 * else: NCHW holds w fastest, then h, c, n; NHWC holds c fastest, then w, h, n.
 */
export function memoryPosition(shape: readonly number[], layout: Layout, [n, c, h, w]: readonly number[]): number {
  const [, C, H, W] = shape as [number, number, number, number];
  const [b, ch, y, x] = [n, c, h, w] as [number, number, number, number];
  return layout === 'NCHW' ? ((b * C + ch) * H + y) * W + x : ((b * H + y) * W + x) * C + ch;
}

export function sameElements(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/**
 * Asserts that `call` throws a ShuffleArgumentError from `op` about `argument` whose whole message
 * matches `message` (which should spell out what was expected and what came).
 */
export function expectArgumentError(call: () => unknown, op: string, argument: string, message: RegExp): void {
  let thrown: unknown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `${op} did not throw`).toBeInstanceOf(ShuffleArgumentError);
  const error = thrown as ShuffleArgumentError;
  expect(error.message).toMatch(message);
  expect(error.message.startsWith(`${op}: ${argument} expects `)).toBe(true);
  expect([error.op, error.argument]).toEqual([op, argument]);
}
