import type { Tensor } from '@shuffle/core';

export interface ConcatOps {
  /** Joins 4-D tensors along channels (same N, H, W and layout). */
  concat(xs: readonly Tensor[]): Tensor;
  /** One gradient per input, in order. */
  concatBackward(dy: Tensor, xs: readonly Tensor[]): { dxs: Tensor[] };
}
