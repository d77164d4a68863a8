import type { Tensor } from '@shuffle/core';

export interface SplitOps {
  /** Splits a 4-D tensor along channels into pieces of the given sizes (which must sum to C). */
  split(x: Tensor, sizes: readonly number[]): Tensor[];
  splitBackward(dys: readonly Tensor[], x: Tensor, sizes: readonly number[]): { dx: Tensor };
}
