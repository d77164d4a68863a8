import { allocLike, indexer4 } from '../common/indexing.js';
import { type Conv2dOps, type Conv2dOptions, checkConv2dBackward, conv2dGeometry } from './spec.js';

/*
 * With group g = floor(o / Cout_g) of output channel o, Cin_g = Cin / groups and Cout_g = Cout / groups:
 *
 *   y[n, o, i, j] = b[o] + sum_{c < Cin_g} sum_{p < kH} sum_{q < kW} w[o, c, p, q] * x[n, g*Cin_g + c, h, v]
 *   with h = i*strideH - padTop + p*dilationH,  v = j*strideW - padLeft + q*dilationW,
 *
 * and x read as zero wherever (h, v) falls in the padding.
 */
export const conv2dReference: Conv2dOps = {
  conv2d(x, weight, options?: Conv2dOptions) {
    const {
      batch,
      inHeight,
      inWidth,
      outChannels,
      outHeight,
      outWidth,
      inChannelsPerGroup,
      outChannelsPerGroup,
      kernelHeight,
      kernelWidth,
      strideHeight,
      strideWidth,
      dilationHeight,
      dilationWidth,
      pad,
      bias,
    } = conv2dGeometry('conv2d', x, weight, options);
    const y = allocLike(x, [batch, outChannels, outHeight, outWidth]);
    const xAt = indexer4(x);
    const wAt = indexer4(weight);
    const yAt = indexer4(y);
    for (let n = 0; n < batch; n++) {
      for (let o = 0; o < outChannels; o++) {
        const firstInChannel = Math.floor(o / outChannelsPerGroup) * inChannelsPerGroup;
        for (let i = 0; i < outHeight; i++) {
          for (let j = 0; j < outWidth; j++) {
            let sum = bias ? (bias.data[o] as number) : 0;
            for (let c = 0; c < inChannelsPerGroup; c++) {
              for (let p = 0; p < kernelHeight; p++) {
                const h = i * strideHeight - pad.top + p * dilationHeight;
                if (h < 0 || h >= inHeight) continue;
                for (let q = 0; q < kernelWidth; q++) {
                  const v = j * strideWidth - pad.left + q * dilationWidth;
                  if (v < 0 || v >= inWidth) continue;
                  sum += (weight.data[wAt(o, c, p, q)] as number) * (x.data[xAt(n, firstInChannel + c, h, v)] as number);
                }
              }
            }
            y.data[yAt(n, o, i, j)] = sum;
          }
        }
      }
    }
    return y;
  },

  /*
   * L depends on y, and dy[n,o,i,j] = ∂L/∂y[n,o,i,j] is given. By the chain rule, for any input t,
   *   ∂L/∂t = sum_{n,o,i,j} dy[n,o,i,j] * ∂y[n,o,i,j]/∂t.
   * y is b plus a sum of products w * x, so each partial derivative is the other factor of a product:
   *   ∂y[n,o,i,j]/∂w[o,c,p,q] = x[n, g*Cin_g + c, h, v]  =>  dw[o,c,p,q] = sum_{n,i,j} dy[n,o,i,j] * x[n, g*Cin_g + c, h, v]
   *   ∂y[n,o,i,j]/∂b[o]       = 1                         =>  db[o]       = sum_{n,i,j} dy[n,o,i,j]
   *   ∂y[n,o,i,j]/∂x[n,k,h,v] = w[o,c,p,q] for the tap (c, p, q) that reads (k, h, v), if any,
   *                               =>  dx[n,k,h,v] = sum of dy[n,o,i,j] * w[o,c,p,q] over every (o,i,j) and tap reading it.
   * Walking the forward's loops and sending dy * w back to the element each tap read adds exactly those terms.
   * Padding taps read a constant zero that depends on nothing, so they feed no gradient.
   */
  conv2dBackward(dy, x, weight, options?: Conv2dOptions) {
    const {
      batch,
      inHeight,
      inWidth,
      outChannels,
      outHeight,
      outWidth,
      inChannelsPerGroup,
      outChannelsPerGroup,
      kernelHeight,
      kernelWidth,
      strideHeight,
      strideWidth,
      dilationHeight,
      dilationWidth,
      pad,
      bias,
    } = checkConv2dBackward(dy, x, weight, options);
    const dx = allocLike(x, x.shape);
    const dweight = allocLike(weight, weight.shape);
    const xAt = indexer4(x);
    const wAt = indexer4(weight);
    const dyAt = indexer4(dy);
    for (let n = 0; n < batch; n++) {
      for (let o = 0; o < outChannels; o++) {
        const firstInChannel = Math.floor(o / outChannelsPerGroup) * inChannelsPerGroup;
        for (let i = 0; i < outHeight; i++) {
          for (let j = 0; j < outWidth; j++) {
            const grad = dy.data[dyAt(n, o, i, j)] as number;
            for (let c = 0; c < inChannelsPerGroup; c++) {
              for (let p = 0; p < kernelHeight; p++) {
                const h = i * strideHeight - pad.top + p * dilationHeight;
                if (h < 0 || h >= inHeight) continue;
                for (let q = 0; q < kernelWidth; q++) {
                  const v = j * strideWidth - pad.left + q * dilationWidth;
                  if (v < 0 || v >= inWidth) continue;
                  const xIndex = xAt(n, firstInChannel + c, h, v);
                  const wIndex = wAt(o, c, p, q);
                  dx.data[xIndex] = (dx.data[xIndex] as number) + grad * (weight.data[wIndex] as number);
                  dweight.data[wIndex] = (dweight.data[wIndex] as number) + grad * (x.data[xIndex] as number);
                }
              }
            }
          }
        }
      }
    }
    if (!bias) return { dx, dweight };
    const dbias = allocLike(bias, bias.shape);
    for (let n = 0; n < batch; n++) {
      for (let o = 0; o < outChannels; o++) {
        for (let i = 0; i < outHeight; i++) {
          for (let j = 0; j < outWidth; j++) dbias.data[o] = (dbias.data[o] as number) + (dy.data[dyAt(n, o, i, j)] as number);
        }
      }
    }
    return { dx, dweight, dbias };
  },
};
