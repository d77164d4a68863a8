import { Tensor } from '@shuffle/core';
import { zeroedF32 } from '../common/arena.js';
import { sgemmPart } from '../common/gemm.js';
import { defineTask, jobArgs, partsFor, runParallel, sharedF32, sharedSlot } from '../common/threads.js';
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
 * With several threads (common/threads.ts), the GEMM path cuts each product into bands of whole tiles
 * (sgemmPart: bit-identical to one thread); x, W and dy are copied into shared memory for the workers,
 * which at batch 8 is ~1/8 of the multiply-adds' time. The small-batch loops stay on one thread: there
 * the copy of W alone costs about as much as the product.
 *
 * float64 exists for gradient checks only: it goes to the reference.
 */

/** The batch from which the products go to the packed GEMM (its micro-kernel's row count). */
const GEMM_MIN_BATCH = 4;

export const linearCpu: LinearOps = {
  linear(x, weight, options?: LinearOptions) {
    const { batch, inFeatures, outFeatures, bias } = linearGeometry('linear', x, weight, options);
    if (x.dtype === 'float64') return linearReference.linear(x, weight, options);
    const y = new Tensor(zeroedF32(batch * outFeatures), [batch, outFeatures]);
    const xData = x.data as Float32Array;
    const w = weight.data as Float32Array;
    const yData = y.data as Float32Array;
    if (bias) {
      for (let n = 0; n < batch; n++) yData.set(bias.data as Float32Array, n * outFeatures);
    }
    if (batch >= GEMM_MIN_BATCH) {
      const accumulate = bias !== undefined;
      const parts = partsFor(batch * inFeatures * outFeatures);
      if (parts === 1) {
        forwardPart(xData, w, yData, batch, inFeatures, outFeatures, accumulate, 0, 1);
      } else {
        sharedF32('linear.x', xData.length).set(xData);
        sharedF32('linear.weight', w.length).set(w);
        const shared = sharedF32('linear.y', yData.length);
        if (accumulate) shared.set(yData);
        writeJob(batch, inFeatures, outFeatures, accumulate);
        runParallel(forwardTask, parts);
        yData.set(shared.subarray(0, yData.length));
      }
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
    const dx = new Tensor(zeroedF32(x.size), x.shape, x.layout);
    const dweight = new Tensor(zeroedF32(weight.size), weight.shape);
    const xData = x.data as Float32Array;
    const w = weight.data as Float32Array;
    const dyData = dy.data as Float32Array;
    const dxData = dx.data as Float32Array;
    const dw = dweight.data as Float32Array;
    if (batch >= GEMM_MIN_BATCH) {
      const parts = partsFor(2 * batch * inFeatures * outFeatures);
      if (parts === 1) {
        backwardPart(dyData, xData, w, dxData, dw, batch, inFeatures, outFeatures, 0, 1);
      } else {
        sharedF32('linear.dy', dyData.length).set(dyData);
        sharedF32('linear.x', xData.length).set(xData);
        sharedF32('linear.weight', w.length).set(w);
        const sharedDx = sharedF32('linear.dx', dxData.length);
        const sharedDw = sharedF32('linear.dweight', dw.length);
        writeJob(batch, inFeatures, outFeatures, false);
        runParallel(backwardTask, parts);
        dxData.set(sharedDx.subarray(0, dxData.length));
        dw.set(sharedDw.subarray(0, dw.length));
      }
    } else {
      rowCombinations(dyData, w, dxData, batch, inFeatures, outFeatures);
      outerProducts(dyData, xData, dw, batch, inFeatures, outFeatures);
    }
    if (!bias) return { dx, dweight };
    const dbias = new Tensor(zeroedF32(bias.size), bias.shape);
    const db = dbias.data as Float32Array;
    for (let o = 0; o < outFeatures; o++) {
      let sum = 0;
      for (let n = 0; n < batch; n++) sum += dyData[n * outFeatures + o] as number;
      db[o] = sum;
    }
    return { dx, dweight, dbias };
  },
};

function forwardPart(
  x: Float32Array,
  w: Float32Array,
  y: Float32Array,
  batch: number,
  inFeatures: number,
  outFeatures: number,
  accumulate: boolean,
  part: number,
  parts: number,
): void {
  // y [N x out] (+)= x [N x in] * W^T [in x out]
  sgemmPart(part, parts, batch, outFeatures, inFeatures, x, 0, inFeatures, 1, w, 0, 1, inFeatures, y, 0, outFeatures, 1, accumulate);
}

function backwardPart(
  dy: Float32Array,
  x: Float32Array,
  w: Float32Array,
  dx: Float32Array,
  dw: Float32Array,
  batch: number,
  inFeatures: number,
  outFeatures: number,
  part: number,
  parts: number,
): void {
  // dx [N x in] = dy [N x out] * W [out x in]
  sgemmPart(part, parts, batch, inFeatures, outFeatures, dy, 0, outFeatures, 1, w, 0, inFeatures, 1, dx, 0, inFeatures, 1, false);
  // dW [out x in] = dy^T [out x N] * x [N x in]
  sgemmPart(part, parts, outFeatures, inFeatures, batch, dy, 0, 1, outFeatures, x, 0, inFeatures, 1, dw, 0, inFeatures, 1, false);
}

function writeJob(batch: number, inFeatures: number, outFeatures: number, accumulate: boolean): void {
  const args = jobArgs(4);
  args[0] = batch;
  args[1] = inFeatures;
  args[2] = outFeatures;
  args[3] = accumulate ? 1 : 0;
}

const forwardTask = defineTask('linear.forward', (args, part, parts) => {
  const [batch, inFeatures, outFeatures, accumulate] = args as unknown as [number, number, number, number];
  const [x, w, y] = [sharedSlot('linear.x'), sharedSlot('linear.weight'), sharedSlot('linear.y')];
  forwardPart(x, w, y, batch, inFeatures, outFeatures, accumulate === 1, part, parts);
});

const backwardTask = defineTask('linear.backward', (args, part, parts) => {
  const [batch, inFeatures, outFeatures] = args as unknown as [number, number, number];
  const [dy, x, w] = [sharedSlot('linear.dy'), sharedSlot('linear.x'), sharedSlot('linear.weight')];
  backwardPart(dy, x, w, sharedSlot('linear.dx'), sharedSlot('linear.dweight'), batch, inFeatures, outFeatures, part, parts);
});

/** The tasks a worker must serve for linear (gemm-worker.ts). */
export const linearTasks = [forwardTask, backwardTask];

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
