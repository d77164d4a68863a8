import type { Tensor } from '@shuffle/core';
import { allocLike, indexer4 } from '../common/indexing.js';
import { checkFlattenBackward, type FlattenOps, flattenShape } from './spec.js';

/*
 * Flattening only moves elements: y[n, (c*H + h)*W + w] = x[n, c, h, w], the logical (C, H, W) order
 * whatever the order x keeps in memory, so an NHWC network feeds its classifier the same features as an
 * NCHW one. A move has derivative 1 from each x element to the one y element it lands in, so the
 * backward is the inverse move: dx[n, c, h, w] = dy[n, (c*H + h)*W + w], stored in x's layout.
 * Tensors of any rank other than 4 are stored row-major, which is already their logical order.
 */
export const flattenReference: FlattenOps = {
  flatten(x) {
    const outShape = flattenShape('flatten', x);
    const y = allocLike(x, outShape);
    if (x.rank !== 4) {
      for (let i = 0; i < x.size; i++) y.data[i] = x.data[i] as number;
      return y;
    }
    const [batch, channels, height, width] = x.shape as [number, number, number, number];
    const features = channels * height * width;
    const at = indexer4(x);
    for (let n = 0; n < batch; n++) {
      for (let c = 0; c < channels; c++) {
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) {
            y.data[n * features + (c * height + h) * width + w] = x.data[at(n, c, h, w)] as number;
          }
        }
      }
    }
    return y;
  },

  flattenBackward(dy: Tensor, x: Tensor) {
    checkFlattenBackward(dy, x);
    const dx = allocLike(x, x.shape);
    if (x.rank !== 4) {
      for (let i = 0; i < x.size; i++) dx.data[i] = dy.data[i] as number;
      return { dx };
    }
    const [batch, channels, height, width] = x.shape as [number, number, number, number];
    const features = channels * height * width;
    const at = indexer4(dx);
    for (let n = 0; n < batch; n++) {
      for (let c = 0; c < channels; c++) {
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) {
            dx.data[at(n, c, h, w)] = dy.data[n * features + (c * height + h) * width + w] as number;
          }
        }
      }
    }
    return { dx };
  },
};
