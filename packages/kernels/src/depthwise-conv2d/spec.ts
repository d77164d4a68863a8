import type { Tensor } from '@shuffle/core';
import type { Padding, Pair } from '../common/args.js';

export interface DepthwiseConv2dOptions {
  stride?: Pair;
  padding?: Padding;
  dilation?: Pair;
  /** [C * multiplier] */
  bias?: Tensor;
}

export interface DepthwiseConv2dOps {
  /** x [N, C, H, W], weight [C*m, 1, kH, kW]; output channel o reads input channel floor(o / m). */
  depthwiseConv2d(x: Tensor, weight: Tensor, options?: DepthwiseConv2dOptions): Tensor;
  depthwiseConv2dBackward(
    dy: Tensor,
    x: Tensor,
    weight: Tensor,
    options?: DepthwiseConv2dOptions,
  ): { dx: Tensor; dweight: Tensor; dbias?: Tensor };
}
