import type { Tensor } from '@shuffle/core';

export interface LinearOptions {
  /** [out] */
  bias?: Tensor;
}

export interface LinearOps {
  /** x [N, in] or [N, in, 1, 1], weight [out, in] -> y [N, out], y = x W^T + b. */
  linear(x: Tensor, weight: Tensor, options?: LinearOptions): Tensor;
  /** dx in x's shape and layout; dbias only when options.bias was given. */
  linearBackward(dy: Tensor, x: Tensor, weight: Tensor, options?: LinearOptions): { dx: Tensor; dweight: Tensor; dbias?: Tensor };
}
