import type { Tensor } from '@shuffle/core';
import type { Padding, Pair } from '../common/args.js';

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Padding;
  dilation?: Pair;
  groups?: number;
  /** [Cout]; added to every output pixel of its channel. */
  bias?: Tensor;
}

export interface Conv2dOps {
  /** x [N, Cin, H, W], weight [Cout, Cin/groups, kH, kW] (OIHW) -> [N, Cout, outH, outW] in x's layout. */
  conv2d(x: Tensor, weight: Tensor, options?: Conv2dOptions): Tensor;
  /** dbias only when options.bias was given. */
  conv2dBackward(dy: Tensor, x: Tensor, weight: Tensor, options?: Conv2dOptions): { dx: Tensor; dweight: Tensor; dbias?: Tensor };
}
