import { describe, fail, type Tensor } from '@shuffle/core';
import { checkSameDType, checkSameLayout, checkShapeEquals, checkTensor } from '../common/args.js';

export interface SplitOps {
  /** Splits a 4-D tensor along channels into pieces of the given sizes (which must sum to C), each in x's layout. */
  split(x: Tensor, sizes: readonly number[]): Tensor[];
  splitBackward(dys: readonly Tensor[], x: Tensor, sizes: readonly number[]): { dx: Tensor };
}

/** A checked call: x's shape and where each piece starts among x's channels. */
export interface SplitGeometry {
  batch: number;
  channels: number;
  height: number;
  width: number;
  sizes: number[];
  /** offsets[i]: the channel of x where piece i starts (the sum of the sizes before it). */
  offsets: number[];
}

/** Validates x and sizes (`op` names the caller, so the backward reports as itself). */
export function splitGeometry(x: Tensor, sizes: readonly number[], op: 'split' | 'splitBackward' = 'split'): SplitGeometry {
  checkTensor(op, 'x', x, 4);
  if (!Array.isArray(sizes) || sizes.length === 0) fail(op, 'sizes', 'a non-empty array of positive integers', sizes);
  sizes.forEach((s, i) => {
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 1) fail(op, `sizes[${i}]`, 'a positive integer', s);
  });
  const [batch, channels, height, width] = x.shape as [number, number, number, number];
  const offsets: number[] = [];
  let total = 0;
  for (const s of sizes) {
    offsets.push(total);
    total += s;
  }
  if (total !== channels) fail(op, 'sizes', `sizes summing to x's channel count ${channels}`, `${describe(sizes)} (sum ${total})`);
  return { batch, channels, height, width, sizes: [...sizes], offsets };
}

/** Validates a splitBackward call: x and sizes as for split, and one dy per piece, shaped like it. */
export function splitBackwardGeometry(dys: readonly Tensor[], x: Tensor, sizes: readonly number[]): SplitGeometry {
  const op = 'splitBackward';
  const geometry = splitGeometry(x, sizes, op);
  const { batch, height, width } = geometry;
  if (!Array.isArray(dys) || dys.length !== geometry.sizes.length) {
    fail(op, 'dys', `an array of ${geometry.sizes.length} tensors (one per piece)`, Array.isArray(dys) ? dys.length : dys);
  }
  const named: Record<string, Tensor> = { x };
  dys.forEach((dy, i) => {
    checkTensor(op, `dys[${i}]`, dy, 4);
    checkShapeEquals(op, `dys[${i}]`, dy.shape, [batch, geometry.sizes[i] as number, height, width], `piece ${i} of split's output`);
    named[`dys[${i}]`] = dy;
  });
  checkSameLayout(op, named);
  checkSameDType(op, named);
  return geometry;
}
