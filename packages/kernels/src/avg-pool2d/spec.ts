import { fail, type Tensor } from '@shuffle/core';
import { checkSameDType, checkSameLayout, checkShapeEquals, checkTensor, type Padding, type Pair } from '../common/args.js';
import { type Pool2dGeometry, pool2dGeometry } from '../max-pool2d/spec.js';

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

export interface AvgPool2dGeometry extends Pool2dGeometry {
  countIncludePad: boolean;
}

/** No dilation: PyTorch's avg_pool2d has none, so passing one is an error rather than ignored. */
const AVG_POOL_KEYS = ['kernelSize', 'stride', 'padding', 'ceilMode', 'countIncludePad'] as const;

/** The same window rules as max pooling (see pool2dGeometry), plus countIncludePad. */
export function avgPool2dGeometry(x: Tensor, options: AvgPool2dOptions, op = 'avgPool2d'): AvgPool2dGeometry {
  const g = pool2dGeometry(op, x, options, AVG_POOL_KEYS);
  const { countIncludePad = true } = options;
  if (typeof countIncludePad !== 'boolean') fail(op, 'countIncludePad', 'a boolean', countIncludePad);
  return { ...g, countIncludePad };
}

/**
 * The rows (or columns) one window reads, and what it divides by, as PyTorch's avg_pool2d computes them
 * (aten AvgPool2d): the window [start, start + k) is first cut at the end of the padded input, and its
 * size then (`padded`) is the divisor with countIncludePad; cutting it to the input gives [begin, end),
 * the elements it sums, whose count is the divisor without countIncludePad. A ceil-mode window that
 * runs past the padding therefore never counts the part beyond it.
 */
export function avgWindow(
  outIndex: number,
  stride: number,
  padBefore: number,
  padAfter: number,
  kernel: number,
  size: number,
): { begin: number; end: number; padded: number } {
  const start = outIndex * stride - padBefore;
  const paddedEnd = Math.min(start + kernel, size + padAfter);
  return { begin: Math.max(start, 0), end: Math.min(paddedEnd, size), padded: paddedEnd - start };
}

export function checkAvgPool2dBackward(dy: Tensor, x: Tensor, options: AvgPool2dOptions): AvgPool2dGeometry {
  const op = 'avgPool2dBackward';
  const g = avgPool2dGeometry(x, options, op);
  checkTensor(op, 'dy', dy);
  checkShapeEquals(op, 'dy', dy.shape, [g.batch, g.channels, g.outHeight, g.outWidth], "avgPool2d's output shape");
  checkSameLayout(op, { x, dy });
  checkSameDType(op, { x, dy });
  return g;
}
