import { sgemm } from '../common/gemm.js';
import { allocLike } from '../common/indexing.js';
import { linearReference } from './reference.js';
import { checkLinearBackward, type LinearOps, type LinearOptions, linearGeometry } from './spec.js';

/*
 * x is [N x in] row-major whatever its rank and layout ([N, in, 1, 1] has H = W = 1, so NCHW and NHWC
 * store it alike), W is [out x in] row-major, so every product is a plain matrix product:
 *   y  = x W^T + b      dx = dy W      dW = dy^T x      db = column sums of dy.
 *
 * From a batch of MR = 4 samples these go to the packed GEMM (common/gemm.ts). Below that, a GEMM tile
 * of 4 rows would be mostly padding (batch 1 does 4x the work), and the work is a pass over W anyway
 * (960 x 1000 floats = 3.8 MB, more than it computes): the small-batch loops stream W once per sample
 * and block four rows of W together, so each load of x (or of dx) serves four multiply-adds.
 *
 * float64 exists for gradient checks only: it goes to the reference.
 */

/** The batch from which the products go to the packed GEMM (its micro-kernel's row count). */
const GEMM_MIN_BATCH = 4;

export const linearCpu: LinearOps = {
  linear(x, weight, options?: LinearOptions) {
    const { batch, inFeatures, outFeatures, bias } = linearGeometry('linear', x, weight, options);
    if (x.dtype === 'float64') return linearReference.linear(x, weight, options);
    const y = allocLike(x, [batch, outFeatures]);
    const xData = x.data as Float32Array;
    const w = weight.data as Float32Array;
    const yData = y.data as Float32Array;
    if (bias) {
      for (let n = 0; n < batch; n++) yData.set(bias.data as Float32Array, n * outFeatures);
    }
    if (batch >= GEMM_MIN_BATCH) {
      // y [N x out] (+)= x [N x in] * W^T [in x out]
      sgemm(batch, outFeatures, inFeatures, xData, 0, inFeatures, 1, w, 0, 1, inFeatures, yData, 0, outFeatures, 1, bias !== undefined);
    } else {
      rowDots(xData, w, yData, batch, inFeatures, outFeatures);
    }
    return y;
  },

  /*
   * With L depending on y through dy[n, o] = dL/dy[n, o], and y[n, o] = sum_i x[n, i] W[o, i] + b[o]:
   *   dx[n, i] = sum_o dy[n, o] W[o, i]     (dx = dy W)
   *   dW[o, i] = sum_n dy[n, o] x[n, i]     (dW = dy^T x: every sample uses W, so the batch sums)
   *   db[o]    = sum_n dy[n, o]
   */
  linearBackward(dy, x, weight, options?: LinearOptions) {
    const { batch, inFeatures, outFeatures, bias } = checkLinearBackward(dy, x, weight, options);
    if (x.dtype === 'float64') return linearReference.linearBackward(dy, x, weight, options);
    const dx = allocLike(x, x.shape);
    const dweight = allocLike(weight, weight.shape);
    const xData = x.data as Float32Array;
    const w = weight.data as Float32Array;
    const dyData = dy.data as Float32Array;
    const dxData = dx.data as Float32Array;
    const dw = dweight.data as Float32Array;
    if (batch >= GEMM_MIN_BATCH) {
      // dx [N x in] = dy [N x out] * W [out x in]
      sgemm(batch, inFeatures, outFeatures, dyData, 0, outFeatures, 1, w, 0, inFeatures, 1, dxData, 0, inFeatures, 1, false);
      // dW [out x in] = dy^T [out x N] * x [N x in]
      sgemm(outFeatures, inFeatures, batch, dyData, 0, 1, outFeatures, xData, 0, inFeatures, 1, dw, 0, inFeatures, 1, false);
    } else {
      rowCombinations(dyData, w, dxData, batch, inFeatures, outFeatures);
      outerProducts(dyData, xData, dw, batch, inFeatures, outFeatures);
    }
    if (!bias) return { dx, dweight };
    const dbias = allocLike(bias, bias.shape);
    const db = dbias.data as Float32Array;
    for (let o = 0; o < outFeatures; o++) {
      let sum = 0;
      for (let n = 0; n < batch; n++) sum += dyData[n * outFeatures + o] as number;
      db[o] = sum;
    }
    return { dx, dweight, dbias };
  },
};

/** y[n, o] += sum_i x[n, i] W[o, i], four rows of W at a time (y holds the bias or zeros). */
function rowDots(x: Float32Array, w: Float32Array, y: Float32Array, batch: number, inFeatures: number, outFeatures: number): void {
  let o = 0;
  for (; o + 4 <= outFeatures; o += 4) {
    const w0 = o * inFeatures;
    const w1 = w0 + inFeatures;
    const w2 = w1 + inFeatures;
    const w3 = w2 + inFeatures;
    for (let n = 0; n < batch; n++) {
      const xStart = n * inFeatures;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let i = 0; i < inFeatures; i++) {
        const xi = x[xStart + i] as number;
        s0 += (w[w0 + i] as number) * xi;
        s1 += (w[w1 + i] as number) * xi;
        s2 += (w[w2 + i] as number) * xi;
        s3 += (w[w3 + i] as number) * xi;
      }
      const yStart = n * outFeatures + o;
      y[yStart] = (y[yStart] as number) + s0;
      y[yStart + 1] = (y[yStart + 1] as number) + s1;
      y[yStart + 2] = (y[yStart + 2] as number) + s2;
      y[yStart + 3] = (y[yStart + 3] as number) + s3;
    }
  }
  for (; o < outFeatures; o++) {
    const wStart = o * inFeatures;
    for (let n = 0; n < batch; n++) {
      const xStart = n * inFeatures;
      let sum = 0;
      for (let i = 0; i < inFeatures; i++) sum += (w[wStart + i] as number) * (x[xStart + i] as number);
      y[n * outFeatures + o] = (y[n * outFeatures + o] as number) + sum;
    }
  }
}

/** dx[n, :] = sum_o dy[n, o] W[o, :], adding four rows of W per pass over dx's row (dx starts at zero). */
function rowCombinations(
  dy: Float32Array,
  w: Float32Array,
  dx: Float32Array,
  batch: number,
  inFeatures: number,
  outFeatures: number,
): void {
  for (let n = 0; n < batch; n++) {
    const dxStart = n * inFeatures;
    const dyStart = n * outFeatures;
    let o = 0;
    for (; o + 4 <= outFeatures; o += 4) {
      const d0 = dy[dyStart + o] as number;
      const d1 = dy[dyStart + o + 1] as number;
      const d2 = dy[dyStart + o + 2] as number;
      const d3 = dy[dyStart + o + 3] as number;
      const w0 = o * inFeatures;
      const w1 = w0 + inFeatures;
      const w2 = w1 + inFeatures;
      const w3 = w2 + inFeatures;
      for (let i = 0; i < inFeatures; i++) {
        dx[dxStart + i] =
          (dx[dxStart + i] as number) +
          (d0 * (w[w0 + i] as number) + d1 * (w[w1 + i] as number) + d2 * (w[w2 + i] as number) + d3 * (w[w3 + i] as number));
      }
    }
    for (; o < outFeatures; o++) {
      const d = dy[dyStart + o] as number;
      const wStart = o * inFeatures;
      for (let i = 0; i < inFeatures; i++) dx[dxStart + i] = (dx[dxStart + i] as number) + d * (w[wStart + i] as number);
    }
  }
}

/** dW[o, :] = sum_n dy[n, o] x[n, :]: one pass over dW, the batch's few terms summed per element. */
function outerProducts(dy: Float32Array, x: Float32Array, dw: Float32Array, batch: number, inFeatures: number, outFeatures: number): void {
  for (let o = 0; o < outFeatures; o++) {
    const dwStart = o * inFeatures;
    const d0 = dy[o] as number;
    if (batch === 1) {
      for (let i = 0; i < inFeatures; i++) dw[dwStart + i] = d0 * (x[i] as number);
      continue;
    }
    for (let i = 0; i < inFeatures; i++) {
      let sum = 0;
      for (let n = 0; n < batch; n++) sum += (dy[n * outFeatures + o] as number) * (x[n * inFeatures + i] as number);
      dw[dwStart + i] = sum;
    }
  }
}
