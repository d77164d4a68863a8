import { allocLike, indexer4 } from '../common/indexing.js';
import { checkGlobalAvgPool2d, checkGlobalAvgPool2dBackward, type GlobalAvgPool2dOps } from './spec.js';

export const globalAvgPool2dReference: GlobalAvgPool2dOps = {
  /* y[n, c] = (1 / (H * W)) * sum over h, w of x[n, c, h, w]: an average pool whose one window is the whole plane. */
  globalAvgPool2d(x) {
    checkGlobalAvgPool2d(x);
    const [batch, channels, height, width] = x.shape as [number, number, number, number];
    const y = allocLike(x, [batch, channels, 1, 1]);
    const xAt = indexer4(x);
    const yAt = indexer4(y);
    for (let n = 0; n < batch; n++) {
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) sum += x.data[xAt(n, c, h, w)] as number;
        }
        y.data[yAt(n, c, 0, 0)] = sum / (height * width);
      }
    }
    return y;
  },

  /*
   * Each y[n, c] is (1 / HW) * sum of its plane's x, so dy[n, c]/dx[n, c, h, w] = 1 / HW, and no other
   * output depends on x[n, c, h, w]. By the chain rule dL/dx[n, c, h, w] = dL/dy[n, c] / (H * W):
   * every element of the plane gets an equal share of its channel's gradient.
   */
  globalAvgPool2dBackward(dy, x) {
    checkGlobalAvgPool2dBackward(dy, x);
    const [batch, channels, height, width] = x.shape as [number, number, number, number];
    const dx = allocLike(x, x.shape);
    const dxAt = indexer4(dx);
    const dyAt = indexer4(dy);
    for (let n = 0; n < batch; n++) {
      for (let c = 0; c < channels; c++) {
        const share = (dy.data[dyAt(n, c, 0, 0)] as number) / (height * width);
        for (let h = 0; h < height; h++) {
          for (let w = 0; w < width; w++) dx.data[dxAt(n, c, h, w)] = share;
        }
      }
    }
    return { dx };
  },
};
