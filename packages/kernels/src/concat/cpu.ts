import { Tensor } from '@shuffle/core';
import { resultF32 } from '../common/arena.js';
import { concatReference } from './reference.js';
import { type ConcatOps, concatBackwardGeometry, concatGeometry } from './spec.js';

/** NHWC rows at least this long are copied with set(subarray); shorter ones with a loop. */
const SET_MIN_ROW = 48;

/**
 * Copies `count` channels, starting at channel `srcStart` of `src` (which has `srcChannels` channels), to
 * channel `dstStart` onwards of `dst` (`dstChannels` channels), for every batch item and pixel. Concat,
 * split and their backwards are all this copy.
 *
 * NCHW: a batch item's channels are consecutive blocks of H*W, so the copied channels are one contiguous
 * run per batch item, moved with a single typed-array set() (a memmove). NHWC: each pixel holds its C
 * channels in a row, so the copy is one row per pixel: set(subarray) for rows of at least SET_MIN_ROW
 * values, a plain loop below that, where creating the subarray view costs more than the copy (measured
 * crossover ~40 values).
 */
export function copyChannels(
  src: Float32Array,
  srcChannels: number,
  srcStart: number,
  dst: Float32Array,
  dstChannels: number,
  dstStart: number,
  count: number,
  batch: number,
  plane: number,
  nchw: boolean,
): void {
  if (nchw) {
    const run = count * plane;
    for (let n = 0; n < batch; n++) {
      const from = (n * srcChannels + srcStart) * plane;
      dst.set(src.subarray(from, from + run), (n * dstChannels + dstStart) * plane);
    }
    return;
  }
  const pixels = batch * plane;
  let from = srcStart;
  let to = dstStart;
  if (count >= SET_MIN_ROW) {
    for (let p = 0; p < pixels; p++, from += srcChannels, to += dstChannels) dst.set(src.subarray(from, from + count), to);
    return;
  }
  for (let p = 0; p < pixels; p++, from += srcChannels, to += dstChannels) {
    for (let c = 0; c < count; c++) dst[to + c] = src[from + c] as number;
  }
}

// float64 (gradient checks only) goes to the reference.
export const concatCpu: ConcatOps = {
  concat(xs) {
    const { batch, height, width, layout, channels, offsets, totalChannels } = concatGeometry(xs);
    const first = xs[0] as Tensor;
    if (first.dtype === 'float64') return concatReference.concat(xs);
    const plane = height * width;
    const nchw = layout === 'NCHW';
    const y = resultF32(batch * totalChannels * plane);
    xs.forEach((x, i) => {
      const size = channels[i] as number;
      copyChannels(x.data as Float32Array, size, 0, y, totalChannels, offsets[i] as number, size, batch, plane, nchw);
    });
    return new Tensor(y, [batch, totalChannels, height, width], layout);
  },

  concatBackward(dy, xs) {
    const { batch, height, width, layout, channels, offsets, totalChannels } = concatBackwardGeometry(dy, xs);
    if (dy.dtype === 'float64') return concatReference.concatBackward(dy, xs);
    const plane = height * width;
    const nchw = layout === 'NCHW';
    const dxs = xs.map((x, i) => {
      const size = channels[i] as number;
      const dx = resultF32(x.size);
      copyChannels(dy.data as Float32Array, totalChannels, offsets[i] as number, dx, size, 0, size, batch, plane, nchw);
      return new Tensor(dx, x.shape, layout);
    });
    return { dxs };
  },
};
