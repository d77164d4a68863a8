import type { Tensor } from '@shuffle/core';

export interface AddOps {
  /** Elementwise a + b; same shape and layout. */
  add(a: Tensor, b: Tensor): Tensor;
  addBackward(dy: Tensor, a: Tensor, b: Tensor): { da: Tensor; db: Tensor };
}
