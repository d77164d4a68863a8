import type { Tensor } from '@shuffle/core';
import type { Padding, Pair } from '../common/args.js';

export interface AvgPool2dOptions {
  kernelSize: Pair;
  /** Default: kernelSize. */
  stride?: Pair;
  padding?: Exclude<Padding, 'same' | 'valid'> | 'valid';
  ceilMode?: boolean;
  /** Default true (PyTorch). */
  countIncludePad?: boolean;
}

export interface AvgPool2dOps {
  avgPool2d(x: Tensor, options: AvgPool2dOptions): Tensor;
  avgPool2dBackward(dy: Tensor, x: Tensor, options: AvgPool2dOptions): { dx: Tensor };
}
