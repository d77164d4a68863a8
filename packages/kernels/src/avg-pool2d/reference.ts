import type { Tensor } from '@shuffle/core';
import { allocLike, indexer4 } from '../common/indexing.js';
import { type AvgPool2dGeometry, type AvgPool2dOps, avgPool2dGeometry, avgWindow, checkAvgPool2dBackward } from './spec.js';

/** Window (oh, ow): the input rows and columns it sums, and its divisor (see avgWindow). */
function window(g: AvgPool2dGeometry, oh: number, ow: number) {
  const rows = avgWindow(oh, g.strideHeight, g.pad.top, g.pad.bottom, g.kernelHeight, g.inHeight);
  const cols = avgWindow(ow, g.strideWidth, g.pad.left, g.pad.right, g.kernelWidth, g.inWidth);
  const divisor = g.countIncludePad ? rows.padded * cols.padded : (rows.end - rows.begin) * (cols.end - cols.begin);
  return { rows, cols, divisor };
}

export const avgPool2dReference: AvgPool2dOps = {
  /* y[n, c, oh, ow] = (sum of the input elements in the window) / divisor. */
  avgPool2d(x, options) {
    const g = avgPool2dGeometry(x, options);
    const y = allocLike(x, [g.batch, g.channels, g.outHeight, g.outWidth]);
    const xAt = indexer4(x);
    const yAt = indexer4(y);
    for (let n = 0; n < g.batch; n++) {
      for (let c = 0; c < g.channels; c++) {
        for (let oh = 0; oh < g.outHeight; oh++) {
          for (let ow = 0; ow < g.outWidth; ow++) {
            const { rows, cols, divisor } = window(g, oh, ow);
            let sum = 0;
            for (let ih = rows.begin; ih < rows.end; ih++) {
              for (let iw = cols.begin; iw < cols.end; iw++) sum += x.data[xAt(n, c, ih, iw)] as number;
            }
            y.data[yAt(n, c, oh, ow)] = sum / divisor;
          }
        }
      }
    }
    return y;
  },

  /*
   * y_o = (1 / D_o) * sum of x_i over window o, with D_o a constant (it depends on the geometry, never
   * on x). So dy_o/dx_i = 1 / D_o when x_i lies in window o, else 0, and
   *   dL/dx_i = sum_o dL/dy_o * dy_o/dx_i = sum of dy_o / D_o over the windows o that contain x_i.
   * Each window spreads its dy evenly over the input elements it read.
   */
  avgPool2dBackward(dy: Tensor, x: Tensor, options) {
    const g = checkAvgPool2dBackward(dy, x, options);
    const dx = allocLike(x, x.shape);
    const dxAt = indexer4(dx);
    const dyAt = indexer4(dy);
    for (let n = 0; n < g.batch; n++) {
      for (let c = 0; c < g.channels; c++) {
        for (let oh = 0; oh < g.outHeight; oh++) {
          for (let ow = 0; ow < g.outWidth; ow++) {
            const { rows, cols, divisor } = window(g, oh, ow);
            const share = (dy.data[dyAt(n, c, oh, ow)] as number) / divisor;
            for (let ih = rows.begin; ih < rows.end; ih++) {
              for (let iw = cols.begin; iw < cols.end; iw++) {
                dx.data[dxAt(n, c, ih, iw)] = (dx.data[dxAt(n, c, ih, iw)] as number) + share;
              }
            }
          }
        }
      }
    }
    return { dx };
  },
};
