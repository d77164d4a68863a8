import { Tensor } from '@shuffle/core';
import { resultF32, zeroedF32 } from '../common/arena.js';
import { tapBegin, tapEnd } from '../common/window.js';
import { avgPool2dReference } from './reference.js';
import { type AvgPool2dGeometry, type AvgPool2dOps, avgPool2dGeometry, avgWindow, checkAvgPool2dBackward } from './spec.js';

/*
 * Fast average pooling, with the reference's PyTorch divisors. A window's rows and columns are independent
 * (see avgWindow), so per call two small tables hold, for every output row and column, the input range it
 * sums and its share of the divisor (the padded or the clipped count): divisor = rowFactor * colFactor.
 * With the ranges clipped in advance, the general loop needs no bounds checks.
 *
 * The interior (windows wholly inside the input, divisor kH * kW) of a 3x3 window, ShuffleNet's shortcut
 * pool, runs unrolled. NCHW goes plane by plane; NHWC pixel by pixel with channels innermost, so each tap is
 * a contiguous channel row; its general path sums a pixel's channels into a float64 row.
 * Sums run in the reference's order (row-major taps, in float64) and divide, so values match it exactly.
 * The backward spreads dy / divisor over each window; float64 inputs go to the reference kernel.
 */

// Per output row (then column): first input index, one past the last, and the divisor factor.
let rowTable = new Int32Array(0);
let colTable = new Int32Array(0);
let channelRow = new Float64Array(0);

function tables(g: AvgPool2dGeometry): void {
  if (rowTable.length < 3 * g.outHeight) rowTable = new Int32Array(3 * g.outHeight);
  if (colTable.length < 3 * g.outWidth) colTable = new Int32Array(3 * g.outWidth);
  if (channelRow.length < g.channels) channelRow = new Float64Array(g.channels);
  fillTable(rowTable, g.outHeight, g.strideHeight, g.pad.top, g.pad.bottom, g.kernelHeight, g.inHeight, g.countIncludePad);
  fillTable(colTable, g.outWidth, g.strideWidth, g.pad.left, g.pad.right, g.kernelWidth, g.inWidth, g.countIncludePad);
}

function fillTable(
  table: Int32Array,
  outSize: number,
  stride: number,
  padBefore: number,
  padAfter: number,
  kernel: number,
  size: number,
  countIncludePad: boolean,
): void {
  for (let o = 0; o < outSize; o++) {
    const { begin, end, padded } = avgWindow(o, stride, padBefore, padAfter, kernel, size);
    table[3 * o] = begin;
    table[3 * o + 1] = end;
    table[3 * o + 2] = countIncludePad ? padded : end - begin;
  }
}

/** [rowBegin, rowEnd, colBegin, colEnd]: the outputs whose window lies wholly inside the input. */
const interior = new Int32Array(4);

function findInterior(g: AvgPool2dGeometry): void {
  interior[0] = tapBegin(-g.pad.top, g.strideHeight, g.outHeight);
  interior[1] = Math.max(interior[0], tapEnd(g.kernelHeight - 1 - g.pad.top, g.strideHeight, g.inHeight, g.outHeight));
  interior[2] = tapBegin(-g.pad.left, g.strideWidth, g.outWidth);
  interior[3] = Math.max(interior[2], tapEnd(g.kernelWidth - 1 - g.pad.left, g.strideWidth, g.inWidth, g.outWidth));
}

// ---------------------------------------------------------------------------------------------------------
// NCHW

function forwardNchw(x: Float32Array, y: Float32Array, g: AvgPool2dGeometry): void {
  const { batch, channels, inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth } = g;
  const rowBegin = interior[0] as number;
  const rowEnd = interior[1] as number;
  const colBegin = interior[2] as number;
  const colEnd = interior[3] as number;
  const is3x3 = g.kernelHeight === 3 && g.kernelWidth === 3;
  for (let plane = 0; plane < batch * channels; plane++) {
    const xPlane = plane * inHeight * inWidth;
    const yPlane = plane * outHeight * outWidth;
    for (let i = 0; i < outHeight; i++) {
      const yRow = yPlane + i * outWidth;
      const rowInside = is3x3 && i >= rowBegin && i < rowEnd;
      if (rowInside) {
        const r0 = xPlane + (i * strideHeight - g.pad.top) * inWidth - g.pad.left;
        const r1 = r0 + inWidth;
        const r2 = r1 + inWidth;
        for (let j = colBegin, v = colBegin * strideWidth; j < colEnd; j++, v += strideWidth) {
          // The leading 0 is the reference's starting sum (it turns an all -0 window into +0).
          const sum =
            0 +
            (x[r0 + v] as number) +
            (x[r0 + v + 1] as number) +
            (x[r0 + v + 2] as number) +
            (x[r1 + v] as number) +
            (x[r1 + v + 1] as number) +
            (x[r1 + v + 2] as number) +
            (x[r2 + v] as number) +
            (x[r2 + v + 1] as number) +
            (x[r2 + v + 2] as number);
          y[yRow + j] = sum / 9;
        }
      }
      const hBegin = rowTable[3 * i] as number;
      const hEnd = rowTable[3 * i + 1] as number;
      const rowFactor = rowTable[3 * i + 2] as number;
      for (let j = 0; j < outWidth; j++) {
        if (rowInside && j >= colBegin && j < colEnd) {
          j = colEnd - 1; // the interior's columns are done
          continue;
        }
        const vBegin = colTable[3 * j] as number;
        const vEnd = colTable[3 * j + 1] as number;
        let sum = 0;
        for (let h = hBegin; h < hEnd; h++) {
          const xRow = xPlane + h * inWidth;
          for (let v = vBegin; v < vEnd; v++) sum += x[xRow + v] as number;
        }
        y[yRow + j] = sum / (rowFactor * (colTable[3 * j + 2] as number));
      }
    }
  }
}

/* The reference derives it: each window spreads dy / divisor evenly over the input elements it read. */
function backwardNchw(dy: Float32Array, dx: Float32Array, g: AvgPool2dGeometry): void {
  const { batch, channels, inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth } = g;
  const rowBegin = interior[0] as number;
  const rowEnd = interior[1] as number;
  const colBegin = interior[2] as number;
  const colEnd = interior[3] as number;
  const is3x3 = g.kernelHeight === 3 && g.kernelWidth === 3;
  for (let plane = 0; plane < batch * channels; plane++) {
    const xPlane = plane * inHeight * inWidth;
    const yPlane = plane * outHeight * outWidth;
    for (let i = 0; i < outHeight; i++) {
      const yRow = yPlane + i * outWidth;
      const rowInside = is3x3 && i >= rowBegin && i < rowEnd;
      const hBegin = rowTable[3 * i] as number;
      const hEnd = rowTable[3 * i + 1] as number;
      const rowFactor = rowTable[3 * i + 2] as number;
      const r0 = xPlane + (i * strideHeight - g.pad.top) * inWidth - g.pad.left;
      const r1 = r0 + inWidth;
      const r2 = r1 + inWidth;
      // In output order, as the reference, so each dx element gathers its shares in the same order.
      for (let j = 0; j < outWidth; j++) {
        if (rowInside && j >= colBegin && j < colEnd) {
          const share = (dy[yRow + j] as number) / 9;
          const v = j * strideWidth;
          dx[r0 + v] = (dx[r0 + v] as number) + share;
          dx[r0 + v + 1] = (dx[r0 + v + 1] as number) + share;
          dx[r0 + v + 2] = (dx[r0 + v + 2] as number) + share;
          dx[r1 + v] = (dx[r1 + v] as number) + share;
          dx[r1 + v + 1] = (dx[r1 + v + 1] as number) + share;
          dx[r1 + v + 2] = (dx[r1 + v + 2] as number) + share;
          dx[r2 + v] = (dx[r2 + v] as number) + share;
          dx[r2 + v + 1] = (dx[r2 + v + 1] as number) + share;
          dx[r2 + v + 2] = (dx[r2 + v + 2] as number) + share;
          continue;
        }
        const vBegin = colTable[3 * j] as number;
        const vEnd = colTable[3 * j + 1] as number;
        const share = (dy[yRow + j] as number) / (rowFactor * (colTable[3 * j + 2] as number));
        for (let h = hBegin; h < hEnd; h++) {
          const xRow = xPlane + h * inWidth;
          for (let v = vBegin; v < vEnd; v++) dx[xRow + v] = (dx[xRow + v] as number) + share;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// NHWC

function forwardNhwc(x: Float32Array, y: Float32Array, g: AvgPool2dGeometry): void {
  const { batch, channels, inHeight, inWidth, outHeight, outWidth } = g;
  const C = channels;
  const rowBegin = interior[0] as number;
  const rowEnd = interior[1] as number;
  const colBegin = interior[2] as number;
  const colEnd = interior[3] as number;
  const is3x3 = g.kernelHeight === 3 && g.kernelWidth === 3;
  const rowStep = inWidth * C;
  const sums = channelRow;
  for (let n = 0; n < batch; n++) {
    for (let i = 0; i < outHeight; i++) {
      const rowInside = is3x3 && i >= rowBegin && i < rowEnd;
      const hBegin = rowTable[3 * i] as number;
      const hEnd = rowTable[3 * i + 1] as number;
      const rowFactor = rowTable[3 * i + 2] as number;
      for (let j = 0; j < outWidth; j++) {
        const yBase = ((n * outHeight + i) * outWidth + j) * C;
        const vBegin = colTable[3 * j] as number;
        const vEnd = colTable[3 * j + 1] as number;
        if (rowInside && j >= colBegin && j < colEnd) {
          // Interior: the window is rows hBegin .. hBegin + 2, columns vBegin .. vBegin + 2.
          const r0 = ((n * inHeight + hBegin) * inWidth + vBegin) * C;
          const r1 = r0 + rowStep;
          const r2 = r1 + rowStep;
          for (let c = 0; c < C; c++) {
            const sum =
              0 +
              (x[r0 + c] as number) +
              (x[r0 + C + c] as number) +
              (x[r0 + 2 * C + c] as number) +
              (x[r1 + c] as number) +
              (x[r1 + C + c] as number) +
              (x[r1 + 2 * C + c] as number) +
              (x[r2 + c] as number) +
              (x[r2 + C + c] as number) +
              (x[r2 + 2 * C + c] as number);
            y[yBase + c] = sum / 9;
          }
          continue;
        }
        for (let c = 0; c < C; c++) sums[c] = 0;
        for (let h = hBegin; h < hEnd; h++) {
          for (let v = vBegin; v < vEnd; v++) {
            const xBase = ((n * inHeight + h) * inWidth + v) * C;
            for (let c = 0; c < C; c++) sums[c] = (sums[c] as number) + (x[xBase + c] as number);
          }
        }
        const divisor = rowFactor * (colTable[3 * j + 2] as number);
        for (let c = 0; c < C; c++) y[yBase + c] = (sums[c] as number) / divisor;
      }
    }
  }
}

function backwardNhwc(dy: Float32Array, dx: Float32Array, g: AvgPool2dGeometry): void {
  const { batch, channels, inHeight, inWidth, outHeight, outWidth } = g;
  const C = channels;
  const rowBegin = interior[0] as number;
  const rowEnd = interior[1] as number;
  const colBegin = interior[2] as number;
  const colEnd = interior[3] as number;
  const is3x3 = g.kernelHeight === 3 && g.kernelWidth === 3;
  const rowStep = inWidth * C;
  const shares = channelRow;
  for (let n = 0; n < batch; n++) {
    for (let i = 0; i < outHeight; i++) {
      const rowInside = is3x3 && i >= rowBegin && i < rowEnd;
      const hBegin = rowTable[3 * i] as number;
      const hEnd = rowTable[3 * i + 1] as number;
      const rowFactor = rowTable[3 * i + 2] as number;
      for (let j = 0; j < outWidth; j++) {
        const yBase = ((n * outHeight + i) * outWidth + j) * C;
        const vBegin = colTable[3 * j] as number;
        const vEnd = colTable[3 * j + 1] as number;
        if (rowInside && j >= colBegin && j < colEnd) {
          const r0 = ((n * inHeight + hBegin) * inWidth + vBegin) * C;
          const r1 = r0 + rowStep;
          const r2 = r1 + rowStep;
          for (let c = 0; c < C; c++) {
            const share = (dy[yBase + c] as number) / 9;
            dx[r0 + c] = (dx[r0 + c] as number) + share;
            dx[r0 + C + c] = (dx[r0 + C + c] as number) + share;
            dx[r0 + 2 * C + c] = (dx[r0 + 2 * C + c] as number) + share;
            dx[r1 + c] = (dx[r1 + c] as number) + share;
            dx[r1 + C + c] = (dx[r1 + C + c] as number) + share;
            dx[r1 + 2 * C + c] = (dx[r1 + 2 * C + c] as number) + share;
            dx[r2 + c] = (dx[r2 + c] as number) + share;
            dx[r2 + C + c] = (dx[r2 + C + c] as number) + share;
            dx[r2 + 2 * C + c] = (dx[r2 + 2 * C + c] as number) + share;
          }
          continue;
        }
        const divisor = rowFactor * (colTable[3 * j + 2] as number);
        for (let c = 0; c < C; c++) shares[c] = (dy[yBase + c] as number) / divisor;
        for (let h = hBegin; h < hEnd; h++) {
          for (let v = vBegin; v < vEnd; v++) {
            const xBase = ((n * inHeight + h) * inWidth + v) * C;
            for (let c = 0; c < C; c++) dx[xBase + c] = (dx[xBase + c] as number) + (shares[c] as number);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------

export const avgPool2dCpu: AvgPool2dOps = {
  avgPool2d(x, options) {
    const g = avgPool2dGeometry(x, options);
    if (x.dtype === 'float64') return avgPool2dReference.avgPool2d(x, options);
    tables(g);
    findInterior(g);
    const y = resultF32(g.batch * g.channels * g.outHeight * g.outWidth);
    if (x.layout === 'NCHW') forwardNchw(x.data as Float32Array, y, g);
    else forwardNhwc(x.data as Float32Array, y, g);
    return new Tensor(y, [g.batch, g.channels, g.outHeight, g.outWidth], x.layout);
  },

  avgPool2dBackward(dy, x, options) {
    const g = checkAvgPool2dBackward(dy, x, options);
    if (x.dtype === 'float64') return avgPool2dReference.avgPool2dBackward(dy, x, options);
    tables(g);
    findInterior(g);
    const dx = zeroedF32(x.size);
    if (x.layout === 'NCHW') backwardNchw(dy.data as Float32Array, dx, g);
    else backwardNhwc(dy.data as Float32Array, dx, g);
    return { dx: new Tensor(dx, x.shape, x.layout) };
  },
};
