import type { Tensor } from '@shuffle/core';
import { allocLike, indexer4 } from '../common/indexing.js';
import { type ChannelShuffleOps, type ChannelShuffleOptions, channelShuffleGeometry, shuffleSource } from './spec.js';

export const channelShuffleReference: ChannelShuffleOps = {
  channelShuffle(x: Tensor, groups: number, options?: ChannelShuffleOptions) {
    const geometry = channelShuffleGeometry('channelShuffle', 'x', x, groups, options);
    const { batch, channels, height, width } = geometry;
    const y = allocLike(x, x.shape);
    const xAt = indexer4(x);
    const yAt = indexer4(y);
    for (let n = 0; n < batch; n++) {
      for (let c = 0; c < channels; c++) {
        const source = shuffleSource(c, geometry);
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) {
            y.data[yAt(n, c, h, w)] = x.data[xAt(n, source, h, w)] as number;
          }
        }
      }
    }
    return y;
  },

  /*
   * y[n, c, h, w] = x[n, s(c), h, w] with s a permutation of the channels (shuffleSource). Each x element
   * feeds exactly one y element with weight 1, so by the chain rule
   *   dL/dx[n, s(c), h, w] = sum over y of dL/dy * dy/dx[n, s(c), h, w] = dL/dy[n, c, h, w],
   * i.e. dx is dy sent back through the inverse permutation: dx[s(c)] = dy[c].
   */
  channelShuffleBackward(dy: Tensor, groups: number, options?: ChannelShuffleOptions) {
    const geometry = channelShuffleGeometry('channelShuffleBackward', 'dy', dy, groups, options);
    const { batch, channels, height, width } = geometry;
    const dx = allocLike(dy, dy.shape);
    const dyAt = indexer4(dy);
    const dxAt = indexer4(dx);
    for (let n = 0; n < batch; n++) {
      for (let c = 0; c < channels; c++) {
        const source = shuffleSource(c, geometry);
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) {
            dx.data[dxAt(n, source, h, w)] = dy.data[dyAt(n, c, h, w)] as number;
          }
        }
      }
    }
    return { dx };
  },
};
