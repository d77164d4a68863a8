import { Tensor } from '@shuffle/core';
import { resultF32 } from '../common/arena.js';
import { globalAvgPool2dReference } from './reference.js';
import { checkGlobalAvgPool2d, checkGlobalAvgPool2dBackward, type GlobalAvgPool2dOps } from './spec.js';

/*
 * Fast global average pooling: one streaming pass over x (forward) or dx (backward), summing in float64.
 * NCHW: each (image, channel) plane is contiguous, one sum per plane. NHWC: a pixel's channels are
 * contiguous, so every pixel adds its row into a float64 row of per-channel sums. The output [N, C, 1, 1]
 * has the same memory order in both layouts. The backward writes each channel's share dy / (H * W) to
 * every element of its plane. float64 inputs exist only for gradient checks and go to the reference kernel.
 */

let channelSums = new Float64Array(0);

export const globalAvgPool2dCpu: GlobalAvgPool2dOps = {
  globalAvgPool2d(x) {
    checkGlobalAvgPool2d(x);
    if (x.dtype === 'float64') return globalAvgPool2dReference.globalAvgPool2d(x);
    const [batch, channels, height, width] = x.shape as [number, number, number, number];
    const plane = height * width;
    const data = x.data as Float32Array;
    const y = resultF32(batch * channels);
    if (x.layout === 'NCHW') {
      for (let p = 0; p < batch * channels; p++) {
        let sum = 0;
        for (let e = p * plane; e < (p + 1) * plane; e++) sum += data[e] as number;
        y[p] = sum / plane;
      }
    } else {
      if (channelSums.length < channels) channelSums = new Float64Array(channels);
      const sums = channelSums;
      for (let n = 0; n < batch; n++) {
        for (let c = 0; c < channels; c++) sums[c] = 0;
        for (let pixel = 0, e = n * plane * channels; pixel < plane; pixel++) {
          for (let c = 0; c < channels; c++, e++) sums[c] = (sums[c] as number) + (data[e] as number);
        }
        for (let c = 0; c < channels; c++) y[n * channels + c] = (sums[c] as number) / plane;
      }
    }
    return new Tensor(y, [batch, channels, 1, 1], x.layout);
  },

  /* The reference derives it: dL/dx[n, c, h, w] = dy[n, c] / (H * W) for every element of the plane. */
  globalAvgPool2dBackward(dy, x) {
    checkGlobalAvgPool2dBackward(dy, x);
    if (x.dtype === 'float64') return globalAvgPool2dReference.globalAvgPool2dBackward(dy, x);
    const [batch, channels, height, width] = x.shape as [number, number, number, number];
    const plane = height * width;
    const grad = dy.data as Float32Array;
    const dx = resultF32(x.size);
    if (x.layout === 'NCHW') {
      for (let p = 0; p < batch * channels; p++) dx.fill((grad[p] as number) / plane, p * plane, (p + 1) * plane);
    } else {
      if (channelSums.length < channels) channelSums = new Float64Array(channels);
      const shares = channelSums;
      for (let n = 0; n < batch; n++) {
        for (let c = 0; c < channels; c++) shares[c] = (grad[n * channels + c] as number) / plane;
        for (let pixel = 0, e = n * plane * channels; pixel < plane; pixel++) {
          for (let c = 0; c < channels; c++, e++) dx[e] = shares[c] as number;
        }
      }
    }
    return { dx: new Tensor(dx, x.shape, x.layout) };
  },
};
