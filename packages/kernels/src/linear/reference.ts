import type { Tensor } from '@shuffle/core';
import { allocLike } from '../common/indexing.js';
import { checkLinearBackward, type LinearOps, type LinearOptions, linearGeometry } from './spec.js';

/**
 * The position in x.data of feature i of sample n. Strides serve both shapes: x [N, in] is row-major,
 * and x [N, in, 1, 1] has H = W = 1, so its strides along N and C hold in either layout.
 */
function featureIndexer(x: Tensor): (n: number, i: number) => number {
  const [batchStride, featureStride] = x.strides as [number, number];
  return (n, i) => n * batchStride + i * featureStride;
}

export const linearReference: LinearOps = {
  /* y[n, o] = sum_i x[n, i] * W[o, i] + b[o] */
  linear(x, weight, options?: LinearOptions) {
    const { batch, inFeatures, outFeatures, bias } = linearGeometry('linear', x, weight, options);
    const y = allocLike(x, [batch, outFeatures]);
    const xAt = featureIndexer(x);
    for (let n = 0; n < batch; n++) {
      for (let o = 0; o < outFeatures; o++) {
        let sum = bias ? (bias.data[o] as number) : 0;
        for (let i = 0; i < inFeatures; i++) sum += (x.data[xAt(n, i)] as number) * (weight.data[o * inFeatures + i] as number);
        y.data[n * outFeatures + o] = sum;
      }
    }
    return y;
  },

  /*
   * With L depending on y through dy[n, o] = dL/dy[n, o], and y[n, o] = sum_i x[n, i] W[o, i] + b[o]:
   *   dy[n, o]/dx[n, i] = W[o, i]   so dx[n, i] = sum_o dy[n, o] W[o, i]     (dx = dy W)
   *   dy[n, o]/dW[o, i] = x[n, i]   so dW[o, i] = sum_n dy[n, o] x[n, i]     (dW = dy^T x)
   *   dy[n, o]/db[o]    = 1         so db[o]    = sum_n dy[n, o]
   * (each weight and bias is used by every sample, so their gradients sum over the batch).
   */
  linearBackward(dy, x, weight, options?: LinearOptions) {
    const { batch, inFeatures, outFeatures, bias } = checkLinearBackward(dy, x, weight, options);
    const dx = allocLike(x, x.shape);
    const dxAt = featureIndexer(dx);
    for (let n = 0; n < batch; n++) {
      for (let i = 0; i < inFeatures; i++) {
        let sum = 0;
        for (let o = 0; o < outFeatures; o++) sum += (dy.data[n * outFeatures + o] as number) * (weight.data[o * inFeatures + i] as number);
        dx.data[dxAt(n, i)] = sum;
      }
    }
    const xAt = featureIndexer(x);
    const dweight = allocLike(weight, weight.shape);
    for (let o = 0; o < outFeatures; o++) {
      for (let i = 0; i < inFeatures; i++) {
        let sum = 0;
        for (let n = 0; n < batch; n++) sum += (dy.data[n * outFeatures + o] as number) * (x.data[xAt(n, i)] as number);
        dweight.data[o * inFeatures + i] = sum;
      }
    }
    if (!bias) return { dx, dweight };
    const dbias = allocLike(bias, bias.shape);
    for (let o = 0; o < outFeatures; o++) {
      let sum = 0;
      for (let n = 0; n < batch; n++) sum += dy.data[n * outFeatures + o] as number;
      dbias.data[o] = sum;
    }
    return { dx, dweight, dbias };
  },
};
