import type { Tensor } from '@shuffle/core';
import { allocLike, indexer4 } from '../common/indexing.js';
import { type SplitOps, splitBackwardGeometry, splitGeometry } from './spec.js';

export const splitReference: SplitOps = {
  split(x: Tensor, sizes: readonly number[]) {
    const { batch, height, width, offsets } = splitGeometry(x, sizes);
    const xAt = indexer4(x);
    return sizes.map((size, i) => {
      const offset = offsets[i] as number;
      const y = allocLike(x, [batch, size, height, width]);
      const yAt = indexer4(y);
      for (let n = 0; n < batch; n++) {
        for (let c = 0; c < size; c++) {
          for (let h = 0; h < height; h++) {
            for (let w = 0; w < width; w++) {
              y.data[yAt(n, c, h, w)] = x.data[xAt(n, offset + c, h, w)] as number;
            }
          }
        }
      }
      return y;
    });
  },

  /*
   * y_i[n, c, h, w] = x[n, offset_i + c, h, w]: every element of x is copied into exactly one piece,
   * with weight 1. By the chain rule
   *   dL/dx[n, offset_i + c, h, w] = dL/dy_i[n, c, h, w],
   * so dx is the pieces' gradients laid side by side along channels: the backward of split is a concat.
   */
  splitBackward(dys: readonly Tensor[], x: Tensor, sizes: readonly number[]) {
    const { batch, height, width, offsets } = splitBackwardGeometry(dys, x, sizes);
    const dx = allocLike(x, x.shape);
    const dxAt = indexer4(dx);
    dys.forEach((dy, i) => {
      const dyAt = indexer4(dy);
      const offset = offsets[i] as number;
      for (let n = 0; n < batch; n++) {
        for (let c = 0; c < (sizes[i] as number); c++) {
          for (let h = 0; h < height; h++) {
            for (let w = 0; w < width; w++) {
              dx.data[dxAt(n, offset + c, h, w)] = dy.data[dyAt(n, c, h, w)] as number;
            }
          }
        }
      }
    });
    return { dx };
  },
};
