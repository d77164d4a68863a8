import type { Tensor } from '@shuffle/core';

export interface GlobalAvgPool2dOps {
  /** Mean over height and width: [N, C, H, W] -> [N, C, 1, 1] in x's layout. */
  globalAvgPool2d(x: Tensor): Tensor;
  globalAvgPool2dBackward(dy: Tensor, x: Tensor): { dx: Tensor };
}
