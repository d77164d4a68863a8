import type { Tensor } from '@shuffle/core';

/**
 * The position in `t.data` of logical element (n, c, h, w), whatever the layout. The reference kernels
 * loop over logical indices and go through this, so one loop nest serves NCHW and NHWC alike.
 */
export function indexer4(t: Tensor): (n: number, c: number, h: number, w: number) => number {
  const [sn, sc, sh, sw] = t.strides as [number, number, number, number];
  return (n, c, h, w) => n * sn + c * sc + h * sh + w * sw;
}

/** A zero tensor with `like`'s dtype and the given shape and layout. */
export function allocLike(like: Tensor, shape: readonly number[], layout = like.layout): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = like.dtype === 'float64' ? new Float64Array(size) : new Float32Array(size);
  return new (like.constructor as typeof Tensor)(data, shape, shape.length === 4 ? layout : 'NCHW');
}
