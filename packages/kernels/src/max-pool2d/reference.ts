import type { Tensor } from '@shuffle/core';
import { allocLike, indexer4 } from '../common/indexing.js';
import { checkMaxPool2dBackward, type MaxPool2dOps, type MaxPool2dSaved, maxPool2dGeometry, type Pool2dGeometry } from './spec.js';

/*
 * Output (n, c, oh, ow) is the largest element of its window: rows oh*strideH - padTop + kh*dilationH
 * and columns ow*strideW - padLeft + kw*dilationW. Taps that fall in the padding are skipped (padding is
 * not a value, so it can never win or tie). The first maximum in row-major window order wins: a later
 * element must be strictly greater to take over. A NaN beats every number and the first NaN beats later
 * ones, so a NaN input shows up in the output instead of being silently dropped.
 */
function pool(x: Tensor, g: Pool2dGeometry): { y: Tensor; saved: MaxPool2dSaved } {
  const y = allocLike(x, [g.batch, g.channels, g.outHeight, g.outWidth]);
  const argmax = new Int32Array(y.size);
  const xAt = indexer4(x);
  const yAt = indexer4(y);
  let o = 0; // position in logical [N, C, outH, outW] order, where argmax is kept
  for (let n = 0; n < g.batch; n++) {
    for (let c = 0; c < g.channels; c++) {
      for (let oh = 0; oh < g.outHeight; oh++) {
        for (let ow = 0; ow < g.outWidth; ow++, o++) {
          let best = Number.NaN;
          let bestIndex = -1;
          for (let kh = 0; kh < g.kernelHeight; kh++) {
            const ih = oh * g.strideHeight - g.pad.top + kh * g.dilationHeight;
            if (ih < 0 || ih >= g.inHeight) continue;
            for (let kw = 0; kw < g.kernelWidth; kw++) {
              const iw = ow * g.strideWidth - g.pad.left + kw * g.dilationWidth;
              if (iw < 0 || iw >= g.inWidth) continue;
              const v = x.data[xAt(n, c, ih, iw)] as number;
              const takesOver = bestIndex < 0 || v > best || (Number.isNaN(v) && !Number.isNaN(best));
              if (takesOver) {
                best = v;
                bestIndex = ih * g.inWidth + iw;
              }
            }
          }
          // The geometry check guarantees every window holds an input element, so bestIndex >= 0.
          y.data[yAt(n, c, oh, ow)] = best;
          argmax[o] = bestIndex;
        }
      }
    }
  }
  return { y, saved: { argmax } };
}

export const maxPool2dReference: MaxPool2dOps = {
  maxPool2d(x, options) {
    return pool(x, maxPool2dGeometry(x, options)).y;
  },

  maxPool2dWithSaved(x, options) {
    return pool(x, maxPool2dGeometry(x, options, 'maxPool2dWithSaved'));
  },

  /*
   * y_o = x_a(o), where a(o) is the winner of window o. Moving any x_i by a small enough step does not
   * change which element wins (away from ties), so dy_o/dx_i = 1 if i = a(o), else 0, and
   *   dL/dx_i = sum_o dL/dy_o * dy_o/dx_i = sum of dy_o over the windows o that x_i won.
   * Overlapping windows (stride < kernel) can pick the same winner, hence the +=. At a tie the function
   * has no derivative; we give the whole of dy_o to the first maximum, as the forward picked it.
   */
  maxPool2dBackward(dy, x, options, saved) {
    const g = checkMaxPool2dBackward(dy, x, options, saved);
    const argmax = (saved ?? pool(x, g).saved).argmax;
    const dx = allocLike(x, x.shape);
    const dxAt = indexer4(dx);
    const dyAt = indexer4(dy);
    let o = 0;
    for (let n = 0; n < g.batch; n++) {
      for (let c = 0; c < g.channels; c++) {
        for (let oh = 0; oh < g.outHeight; oh++) {
          for (let ow = 0; ow < g.outWidth; ow++, o++) {
            const winner = argmax[o] as number;
            const ih = Math.floor(winner / g.inWidth);
            const iw = winner % g.inWidth;
            dx.data[dxAt(n, c, ih, iw)] = (dx.data[dxAt(n, c, ih, iw)] as number) + (dy.data[dyAt(n, c, oh, ow)] as number);
          }
        }
      }
    }
    return { dx };
  },
};
