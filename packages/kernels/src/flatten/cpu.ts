import { Tensor } from '@shuffle/core';
import { resultCopyF32, resultF32 } from '../common/arena.js';
import { flattenReference } from './reference.js';
import { checkFlattenBackward, type FlattenOps, flattenShape } from './spec.js';

/*
 * Flatten lists each batch item's values in logical (C, H, W) order. Whenever the memory order already is
 * that order (NCHW, any rank other than 4, and NHWC with H*W = 1 or C = 1, e.g. after global pooling), both
 * directions are one block copy of the data (a fresh tensor, as every op returns). Otherwise (NHWC with
 * spatial extent) each batch item is a (H*W) x C matrix to transpose into C x (H*W), and the backward
 * transposes back; the loops read the NHWC side in order.
 * float64 (gradient checks only) goes to the reference.
 */

/** y[c * plane + p] = x[p * channels + c] for each batch item. */
function nhwcToChw(x: Float32Array, y: Float32Array, batch: number, channels: number, plane: number): void {
  const features = channels * plane;
  for (let n = 0; n < batch; n++) {
    const base = n * features;
    for (let p = 0; p < plane; p++) {
      const row = base + p * channels;
      for (let c = 0; c < channels; c++) y[base + c * plane + p] = x[row + c] as number;
    }
  }
}

/** x[p * channels + c] = y[c * plane + p] for each batch item: the inverse of nhwcToChw. */
function chwToNhwc(y: Float32Array, x: Float32Array, batch: number, channels: number, plane: number): void {
  const features = channels * plane;
  for (let n = 0; n < batch; n++) {
    const base = n * features;
    for (let p = 0; p < plane; p++) {
      const row = base + p * channels;
      for (let c = 0; c < channels; c++) x[row + c] = y[base + c * plane + p] as number;
    }
  }
}

/** Whether x's memory order is already its logical row-major order. */
function isRowMajor(x: Tensor): boolean {
  if (x.rank !== 4 || x.layout === 'NCHW') return true;
  const [, channels, height, width] = x.shape as [number, number, number, number];
  return channels === 1 || height * width === 1;
}

export const flattenCpu: FlattenOps = {
  flatten(x) {
    const outShape = flattenShape('flatten', x);
    if (x.dtype === 'float64') return flattenReference.flatten(x);
    if (isRowMajor(x)) return new Tensor(resultCopyF32(x.data), outShape);
    const [batch, channels, height, width] = x.shape as [number, number, number, number];
    const y = resultF32(x.size);
    nhwcToChw(x.data as Float32Array, y, batch, channels, height * width);
    return new Tensor(y, outShape);
  },

  flattenBackward(dy, x) {
    checkFlattenBackward(dy, x);
    if (x.dtype === 'float64') return flattenReference.flattenBackward(dy, x);
    if (isRowMajor(x)) return { dx: new Tensor(resultCopyF32(dy.data), x.shape, x.layout) };
    const [batch, channels, height, width] = x.shape as [number, number, number, number];
    const dx = resultF32(x.size);
    chwToNhwc(dy.data as Float32Array, dx, batch, channels, height * width);
    return { dx: new Tensor(dx, x.shape, x.layout) };
  },
};
