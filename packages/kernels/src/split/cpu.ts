import { Tensor } from '@shuffle/core';
import { resultF32 } from '../common/arena.js';
import { copyChannels } from '../concat/cpu.js';
import { splitReference } from './reference.js';
import { type SplitOps, splitBackwardGeometry, splitGeometry } from './spec.js';

/*
 * Split is concat's mirror: each piece (and, backward, each piece's gradient) is one channel-block copy,
 * contiguous runs per batch item in NCHW and short rows per pixel in NHWC (see copyChannels).
 * float64 (gradient checks only) goes to the reference.
 */
export const splitCpu: SplitOps = {
  split(x, sizes) {
    const { batch, channels, height, width, offsets } = splitGeometry(x, sizes);
    if (x.dtype === 'float64') return splitReference.split(x, sizes);
    const plane = height * width;
    const nchw = x.layout === 'NCHW';
    return sizes.map((size, i) => {
      const y = resultF32(batch * size * plane);
      copyChannels(x.data as Float32Array, channels, offsets[i] as number, y, size, 0, size, batch, plane, nchw);
      return new Tensor(y, [batch, size, height, width], x.layout);
    });
  },

  splitBackward(dys, x, sizes) {
    const { batch, channels, height, width, offsets } = splitBackwardGeometry(dys, x, sizes);
    if (x.dtype === 'float64') return splitReference.splitBackward(dys, x, sizes);
    const plane = height * width;
    const nchw = x.layout === 'NCHW';
    const dx = resultF32(x.size);
    dys.forEach((dy, i) => {
      const size = sizes[i] as number;
      copyChannels(dy.data as Float32Array, size, 0, dx, channels, offsets[i] as number, size, batch, plane, nchw);
    });
    return { dx: new Tensor(dx, x.shape, x.layout) };
  },
};
