import type { Tensor } from '@shuffle/core';
import { allocLike, indexer4 } from '../common/indexing.js';
import { type ConcatOps, concatBackwardGeometry, concatGeometry } from './spec.js';

export const concatReference: ConcatOps = {
  concat(xs: readonly Tensor[]) {
    const { batch, height, width, channels, offsets, totalChannels } = concatGeometry(xs);
    const y = allocLike(xs[0] as Tensor, [batch, totalChannels, height, width]);
    const yAt = indexer4(y);
    xs.forEach((x, i) => {
      const xAt = indexer4(x);
      const offset = offsets[i] as number;
      for (let n = 0; n < batch; n++) {
        for (let c = 0; c < (channels[i] as number); c++) {
          for (let h = 0; h < height; h++) {
            for (let w = 0; w < width; w++) {
              y.data[yAt(n, offset + c, h, w)] = x.data[xAt(n, c, h, w)] as number;
            }
          }
        }
      }
    });
    return y;
  },

  /*
   * y[n, offset_i + c, h, w] = x_i[n, c, h, w]: every input element is copied to exactly one output
   * element with weight 1 and touches no other. By the chain rule
   *   dL/dx_i[n, c, h, w] = dL/dy[n, offset_i + c, h, w],
   * so dx_i is the slice of dy at input i's channels: the backward of concat is a split.
   */
  concatBackward(dy: Tensor, xs: readonly Tensor[]) {
    const { batch, height, width, channels, offsets } = concatBackwardGeometry(dy, xs);
    const dyAt = indexer4(dy);
    const dxs = xs.map((x, i) => {
      const dx = allocLike(x, x.shape);
      const dxAt = indexer4(dx);
      const offset = offsets[i] as number;
      for (let n = 0; n < batch; n++) {
        for (let c = 0; c < (channels[i] as number); c++) {
          for (let h = 0; h < height; h++) {
            for (let w = 0; w < width; w++) {
              dx.data[dxAt(n, c, h, w)] = dy.data[dyAt(n, offset + c, h, w)] as number;
            }
          }
        }
      }
      return dx;
    });
    return { dxs };
  },
};
