import type { Tensor } from '@shuffle/core';

export interface FlattenOps {
  /** [N, ...rest] -> [N, prod(rest)] in logical (C, H, W) order, as PyTorch's flatten(1). */
  flatten(x: Tensor): Tensor;
  /** dx in x's shape and layout. */
  flattenBackward(dy: Tensor, x: Tensor): { dx: Tensor };
}
