import type { Tensor } from '@shuffle/core';
import type { Padding, Pair } from '../common/args.js';

export interface MaxPool2dOptions {
  kernelSize: Pair;
  /** Default: kernelSize. */
  stride?: Pair;
  /** Numeric padding only (PyTorch's rule: at most half the kernel). */
  padding?: Exclude<Padding, 'same' | 'valid'> | 'valid';
  dilation?: Pair;
  ceilMode?: boolean;
}

/** For each output element, the logical flat index h*W + w of the input element that won its window. */
export interface MaxPool2dSaved {
  argmax: Int32Array;
}

export interface MaxPool2dOps {
  maxPool2d(x: Tensor, options: MaxPool2dOptions): Tensor;
  maxPool2dWithSaved(x: Tensor, options: MaxPool2dOptions): { y: Tensor; saved: MaxPool2dSaved };
  /** Without `saved`, the argmax is recomputed from x. */
  maxPool2dBackward(dy: Tensor, x: Tensor, options: MaxPool2dOptions, saved?: MaxPool2dSaved): { dx: Tensor };
}
