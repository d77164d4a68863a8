import { Tensor } from '@shuffle/core';
import { resultCopyF32, resultF32, zeroedF32 } from '../common/arena.js';
import { scratchF32 } from '../common/scratch.js';
import { tapBegin, tapEnd } from '../common/window.js';
import { depthwiseConv2dReference } from './reference.js';
import {
  checkDepthwiseConv2dBackward,
  type DepthwiseConv2dGeometry,
  type DepthwiseConv2dOps,
  type DepthwiseConv2dOptions,
  depthwiseConv2dGeometry,
} from './spec.js';

/*
 * Fast depthwise convolution. The math is the reference's; what changes is how the loops meet memory.
 *
 * Interior and border. The output splits into five rectangles (see outputRects): the interior, where
 * every tap lands inside the input, and four border strips around it. The interior reads x directly,
 * with no bounds checks. For each border strip, the input window it reads is first copied into a small
 * zero-padded scratch buffer, so the same unchecked kernels run there too. (Measured: a checked tap loop
 * runs about 10x slower per output than the unrolled 3x3 expression, and at 7x7 half the outputs are
 * border; zero-padding the whole input instead costs one copy per input element, which at stride 2 is as
 * much as the convolution itself.)
 *
 * 3x3 kernels (every ShuffleNet depthwise layer). One kernel, conv3x3Rect, serves both layouts: it walks
 * a rectangle row by row and, within a row, channel by channel, with the channel's nine weights in locals,
 * along the row's pixels. NCHW calls it per plane (pixels 1 apart); NHWC per rectangle with all channels
 * (pixels C apart: three input rows of all channels stay in L1). At stride 1 the window slides along the
 * row: each output loads three new inputs and reuses six. (Measured on NHWC: 2.5x faster than
 * pixel-major order with channels innermost, which reloads nine weights for every output.)
 * Other kernel sizes use plain tap loops (NCHW) or per-tap channel loops (NHWC, also multiplier > 1).
 *
 * The backward follows the same plan. dweight[o, p, q] = sum over outputs of dy * x(tap) gathers in
 * local accumulators (sliding at stride 1), flushed into a float64 row; dx is scattered, each output
 * sending dy * w to the inputs its taps read (for a border strip into a zeroed scratch window, then added
 * back where it overlaps the input). At stride 1 an input column's three contributions from one tap row
 * are summed in registers carried along the row, so each output updates three dx values, not nine. Zero padding multiplies: a non-finite weight or gradient meeting the padding gives
 * NaN where the reference (which skips padding taps) would not, as in PyTorch, whose kernels pad too.
 * float64 inputs exist only for gradient checks and go to the reference kernel.
 */

/** The strides and dilations every kernel below reads from the geometry. */
interface Window {
  kernelHeight: number;
  kernelWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
}

// ---------------------------------------------------------------------------------------------------------
// Splitting the output into interior and border

/**
 * Fills rects with five [rowBegin, rowEnd, colBegin, colEnd] output rectangles that partition the output:
 * the interior first (every tap inside the input; possibly empty), then the top, bottom, left and right
 * strips around it. When copying the strips' windows costs about as much as zero-padding the whole input
 * (small planes at stride 1: a 7x7 output is half border), the whole output becomes one padded "strip".
 */
function outputRects(g: DepthwiseConv2dGeometry, rects: Int32Array): void {
  const { outHeight, outWidth } = g;
  const rowBegin = tapBegin(-g.pad.top, g.strideHeight, outHeight);
  // When the kernel overhangs the input on both sides no output is interior: the interior is then empty
  // (end = begin), and the top and left strips take everything.
  const rowEnd = Math.max(rowBegin, tapEnd((g.kernelHeight - 1) * g.dilationHeight - g.pad.top, g.strideHeight, g.inHeight, outHeight));
  const colBegin = tapBegin(-g.pad.left, g.strideWidth, outWidth);
  const colEnd = Math.max(colBegin, tapEnd((g.kernelWidth - 1) * g.dilationWidth - g.pad.left, g.strideWidth, g.inWidth, outWidth));
  setRect(rects, 0, rowBegin, rowEnd, colBegin, colEnd);
  setRect(rects, 1, 0, rowBegin, 0, outWidth);
  setRect(rects, 2, rowEnd, outHeight, 0, outWidth);
  setRect(rects, 3, rowBegin, rowEnd, 0, colBegin);
  setRect(rects, 4, rowBegin, rowEnd, colEnd, outWidth);
  // Cost of the strips, in input pixels copied, plus about 40 per strip for its calls and loop set-up
  // (fitted to timings at ShuffleNet's sizes), against copying the whole padded input once.
  let stripCost = 0;
  for (let r = 1; r < 5; r++) {
    const size = windowSize(g, rects, r);
    if (size > 0) stripCost += size + 40;
  }
  const wholeCost =
    windowExtent(outHeight, g.strideHeight, g.kernelHeight, g.dilationHeight) *
    windowExtent(outWidth, g.strideWidth, g.kernelWidth, g.dilationWidth);
  if (wholeCost <= stripCost) {
    setRect(rects, 0, 0, 0, 0, 0);
    setRect(rects, 1, 0, outHeight, 0, outWidth);
    for (let r = 2; r < 5; r++) setRect(rects, r, 0, 0, 0, 0);
  }
}
const rects = new Int32Array(20);

function setRect(rects: Int32Array, index: number, rowBegin: number, rowEnd: number, colBegin: number, colEnd: number): void {
  rects[4 * index] = rowBegin;
  rects[4 * index + 1] = rowEnd;
  rects[4 * index + 2] = colBegin;
  rects[4 * index + 3] = colEnd;
}

/** The extent of input that `outputs` consecutive outputs read: (outputs - 1) * stride + span. */
function windowExtent(outputs: number, stride: number, kernel: number, dilation: number): number {
  return (outputs - 1) * stride + (kernel - 1) * dilation + 1;
}

/** The input pixels that rectangle r reads (0 when it is empty). */
function windowSize(g: DepthwiseConv2dGeometry, rects: Int32Array, r: number): number {
  const rows = (rects[4 * r + 1] as number) - (rects[4 * r] as number);
  const cols = (rects[4 * r + 3] as number) - (rects[4 * r + 2] as number);
  if (rows <= 0 || cols <= 0) return 0;
  return (
    windowExtent(rows, g.strideHeight, g.kernelHeight, g.dilationHeight) * windowExtent(cols, g.strideWidth, g.kernelWidth, g.dilationWidth)
  );
}

/** The largest input window (in floats, pixels of `depth` values) of the four border strips. */
function largestBorderWindow(g: DepthwiseConv2dGeometry, depth: number): number {
  let largest = 0;
  for (let r = 1; r < 5; r++) largest = Math.max(largest, windowSize(g, rects, r) * depth);
  return largest;
}

/**
 * Copies the input window of rows [top, top + rows) and columns [left, left + cols) of one image region
 * (inHeight x inWidth pixels of `depth` contiguous values from x[from]: an NCHW plane has depth 1, an NHWC
 * image depth C) into `window` (rows x cols pixels), with zeros where it lies outside the input.
 */
function copyWindow(
  x: Float32Array,
  from: number,
  inHeight: number,
  inWidth: number,
  depth: number,
  top: number,
  left: number,
  rows: number,
  cols: number,
  window: Float32Array,
): void {
  const rowLength = cols * depth;
  const insideBegin = Math.min(rowLength, Math.max(0, -left) * depth);
  const insideEnd = Math.max(insideBegin, Math.min(cols, inWidth - left) * depth);
  for (let r = 0; r < rows; r++) {
    const h = top + r;
    const target = r * rowLength;
    if (h < 0 || h >= inHeight) {
      for (let e = 0; e < rowLength; e++) window[target + e] = 0;
      continue;
    }
    const source = from + (h * inWidth + left) * depth;
    for (let e = 0; e < insideBegin; e++) window[target + e] = 0;
    for (let e = insideBegin; e < insideEnd; e++) window[target + e] = x[source + e] as number;
    for (let e = insideEnd; e < rowLength; e++) window[target + e] = 0;
  }
}

/** The inverse for gradients: adds the part of `window` that lies over the input into dx. */
function addWindow(
  window: Float32Array,
  dx: Float32Array,
  to: number,
  inHeight: number,
  inWidth: number,
  depth: number,
  top: number,
  left: number,
  rows: number,
  cols: number,
): void {
  const rowLength = cols * depth;
  const insideBegin = Math.min(rowLength, Math.max(0, -left) * depth);
  const insideEnd = Math.max(insideBegin, Math.min(cols, inWidth - left) * depth);
  for (let r = 0; r < rows; r++) {
    const h = top + r;
    if (h < 0 || h >= inHeight) continue;
    const source = r * rowLength;
    const target = to + (h * inWidth + left) * depth;
    for (let e = insideBegin; e < insideEnd; e++) dx[target + e] = (dx[target + e] as number) + (window[source + e] as number);
  }
}

// ---------------------------------------------------------------------------------------------------------
// 3x3 kernels, both layouts

/**
 * A rows x cols rectangle of outputs for `channels` channels, 3x3. Channel cc of output (r, s) is stored
 * at y[yStart + r * yPitch + s * step + cc] and its top-left tap at src[base + r * strideHeight * pitch +
 * s * strideWidth * step + cc]; taps are dilation * pitch (rows) and dilation * step (columns) apart.
 * Channel cc's weights are weight[wOffset + 9 * cc ..], its bias bias[biasOffset + cc] (0 without bias).
 */
function conv3x3Rect(
  src: Float32Array,
  base: number,
  pitch: number,
  step: number,
  y: Float32Array,
  yStart: number,
  yPitch: number,
  rows: number,
  cols: number,
  channels: number,
  weight: Float32Array,
  wOffset: number,
  bias: Float32Array | undefined,
  biasOffset: number,
  g: Window,
): void {
  const rowStep = g.dilationHeight * pitch;
  const d1 = g.dilationWidth * step;
  const d2 = 2 * d1;
  const pixelStep = g.strideWidth * step;
  const sliding = g.strideWidth === 1 && g.dilationWidth === 1;
  for (let r = 0; r < rows; r++) {
    const rowBase = base + r * g.strideHeight * pitch;
    const yRow = yStart + r * yPitch;
    for (let cc = 0; cc < channels; cc++) {
      const wo = wOffset + 9 * cc;
      const w00 = weight[wo] as number;
      const w01 = weight[wo + 1] as number;
      const w02 = weight[wo + 2] as number;
      const w10 = weight[wo + 3] as number;
      const w11 = weight[wo + 4] as number;
      const w12 = weight[wo + 5] as number;
      const w20 = weight[wo + 6] as number;
      const w21 = weight[wo + 7] as number;
      const w22 = weight[wo + 8] as number;
      const b = bias === undefined ? 0 : (bias[biasOffset + cc] as number);
      const r0 = rowBase + cc;
      const r1 = r0 + rowStep;
      const r2 = r1 + rowStep;
      if (sliding) {
        // (a, b, c)0..2: the window's three columns in rows 0, 1, 2; each output shifts one column in.
        let a0 = src[r0] as number;
        let a1 = src[r0 + step] as number;
        let b0 = src[r1] as number;
        let b1 = src[r1 + step] as number;
        let c0 = src[r2] as number;
        let c1 = src[r2 + step] as number;
        for (let s = 0, v = 2 * step, yi = yRow + cc; s < cols; s++, v += step, yi += step) {
          const a2 = src[r0 + v] as number;
          const b2 = src[r1 + v] as number;
          const c2 = src[r2 + v] as number;
          y[yi] = b + w00 * a0 + w01 * a1 + w02 * a2 + w10 * b0 + w11 * b1 + w12 * b2 + w20 * c0 + w21 * c1 + w22 * c2;
          a0 = a1;
          a1 = a2;
          b0 = b1;
          b1 = b2;
          c0 = c1;
          c1 = c2;
        }
      } else {
        for (let s = 0, v = 0, yi = yRow + cc; s < cols; s++, v += pixelStep, yi += step) {
          y[yi] =
            b +
            w00 * (src[r0 + v] as number) +
            w01 * (src[r0 + v + d1] as number) +
            w02 * (src[r0 + v + d2] as number) +
            w10 * (src[r1 + v] as number) +
            w11 * (src[r1 + v + d1] as number) +
            w12 * (src[r1 + v + d2] as number) +
            w20 * (src[r2 + v] as number) +
            w21 * (src[r2 + v + d1] as number) +
            w22 * (src[r2 + v + d2] as number);
        }
      }
    }
  }
}

/**
 * The backward of conv3x3Rect over the same rectangle (dy laid out like y there): per row and channel,
 * nine weight-gradient accumulators (flushed into dweight, float64), then dy * w scattered into dst,
 * which is laid out like src.
 */
function grad3x3Rect(
  dy: Float32Array,
  dyStart: number,
  dyPitch: number,
  src: Float32Array,
  dst: Float32Array,
  base: number,
  pitch: number,
  step: number,
  rows: number,
  cols: number,
  channels: number,
  weight: Float32Array,
  dweight: Float64Array,
  wOffset: number,
  g: Window,
): void {
  const rowStep = g.dilationHeight * pitch;
  const d1 = g.dilationWidth * step;
  const d2 = 2 * d1;
  const pixelStep = g.strideWidth * step;
  const sliding = g.strideWidth === 1 && g.dilationWidth === 1;
  for (let r = 0; r < rows; r++) {
    const rowBase = base + r * g.strideHeight * pitch;
    const dyRow = dyStart + r * dyPitch;
    for (let cc = 0; cc < channels; cc++) {
      const r0 = rowBase + cc;
      const r1 = r0 + rowStep;
      const r2 = r1 + rowStep;
      let g00 = 0;
      let g01 = 0;
      let g02 = 0;
      let g10 = 0;
      let g11 = 0;
      let g12 = 0;
      let g20 = 0;
      let g21 = 0;
      let g22 = 0;
      if (sliding) {
        // As in conv3x3Rect: the window's columns slide along, each output loading three new inputs.
        let a0 = src[r0] as number;
        let a1 = src[r0 + step] as number;
        let b0 = src[r1] as number;
        let b1 = src[r1 + step] as number;
        let c0 = src[r2] as number;
        let c1 = src[r2 + step] as number;
        for (let s = 0, v = 2 * step, di = dyRow + cc; s < cols; s++, v += step, di += step) {
          const grad = dy[di] as number;
          const a2 = src[r0 + v] as number;
          const b2 = src[r1 + v] as number;
          const c2 = src[r2 + v] as number;
          g00 += grad * a0;
          g01 += grad * a1;
          g02 += grad * a2;
          g10 += grad * b0;
          g11 += grad * b1;
          g12 += grad * b2;
          g20 += grad * c0;
          g21 += grad * c1;
          g22 += grad * c2;
          a0 = a1;
          a1 = a2;
          b0 = b1;
          b1 = b2;
          c0 = c1;
          c1 = c2;
        }
      } else {
        for (let s = 0, v = 0, di = dyRow + cc; s < cols; s++, v += pixelStep, di += step) {
          const grad = dy[di] as number;
          g00 += grad * (src[r0 + v] as number);
          g01 += grad * (src[r0 + v + d1] as number);
          g02 += grad * (src[r0 + v + d2] as number);
          g10 += grad * (src[r1 + v] as number);
          g11 += grad * (src[r1 + v + d1] as number);
          g12 += grad * (src[r1 + v + d2] as number);
          g20 += grad * (src[r2 + v] as number);
          g21 += grad * (src[r2 + v + d1] as number);
          g22 += grad * (src[r2 + v + d2] as number);
        }
      }
      const wo = wOffset + 9 * cc;
      dweight[wo] = (dweight[wo] as number) + g00;
      dweight[wo + 1] = (dweight[wo + 1] as number) + g01;
      dweight[wo + 2] = (dweight[wo + 2] as number) + g02;
      dweight[wo + 3] = (dweight[wo + 3] as number) + g10;
      dweight[wo + 4] = (dweight[wo + 4] as number) + g11;
      dweight[wo + 5] = (dweight[wo + 5] as number) + g12;
      dweight[wo + 6] = (dweight[wo + 6] as number) + g20;
      dweight[wo + 7] = (dweight[wo + 7] as number) + g21;
      dweight[wo + 8] = (dweight[wo + 8] as number) + g22;
      const w00 = weight[wo] as number;
      const w01 = weight[wo + 1] as number;
      const w02 = weight[wo + 2] as number;
      const w10 = weight[wo + 3] as number;
      const w11 = weight[wo + 4] as number;
      const w12 = weight[wo + 5] as number;
      const w20 = weight[wo + 6] as number;
      const w21 = weight[wo + 7] as number;
      const w22 = weight[wo + 8] as number;
      if (sliding) {
        // Input column u of tap row p gets dy[u] w[p,0] + dy[u-1] w[p,1] + dy[u-2] w[p,2]: at output s, column s
        // is complete once dy[s] w[p,0] joins the carried e_p; the carries then move one column on.
        let e0 = 0;
        let f0 = 0;
        let e1 = 0;
        let f1 = 0;
        let e2 = 0;
        let f2 = 0;
        let v = 0;
        for (let s = 0, di = dyRow + cc; s < cols; s++, v += step, di += step) {
          const grad = dy[di] as number;
          dst[r0 + v] = (dst[r0 + v] as number) + (e0 + grad * w00);
          e0 = f0 + grad * w01;
          f0 = grad * w02;
          dst[r1 + v] = (dst[r1 + v] as number) + (e1 + grad * w10);
          e1 = f1 + grad * w11;
          f1 = grad * w12;
          dst[r2 + v] = (dst[r2 + v] as number) + (e2 + grad * w20);
          e2 = f2 + grad * w21;
          f2 = grad * w22;
        }
        dst[r0 + v] = (dst[r0 + v] as number) + e0;
        dst[r0 + v + step] = (dst[r0 + v + step] as number) + f0;
        dst[r1 + v] = (dst[r1 + v] as number) + e1;
        dst[r1 + v + step] = (dst[r1 + v + step] as number) + f1;
        dst[r2 + v] = (dst[r2 + v] as number) + e2;
        dst[r2 + v + step] = (dst[r2 + v + step] as number) + f2;
      } else {
        for (let s = 0, v = 0, di = dyRow + cc; s < cols; s++, v += pixelStep, di += step) {
          const grad = dy[di] as number;
          dst[r0 + v] = (dst[r0 + v] as number) + grad * w00;
          dst[r0 + v + d1] = (dst[r0 + v + d1] as number) + grad * w01;
          dst[r0 + v + d2] = (dst[r0 + v + d2] as number) + grad * w02;
          dst[r1 + v] = (dst[r1 + v] as number) + grad * w10;
          dst[r1 + v + d1] = (dst[r1 + v + d1] as number) + grad * w11;
          dst[r1 + v + d2] = (dst[r1 + v + d2] as number) + grad * w12;
          dst[r2 + v] = (dst[r2 + v] as number) + grad * w20;
          dst[r2 + v + d1] = (dst[r2 + v + d1] as number) + grad * w21;
          dst[r2 + v + d2] = (dst[r2 + v + d2] as number) + grad * w22;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Any kernel size

/** conv3x3Rect for one NCHW plane (pixels 1 apart) and any kernel: taps in row-major order, as the reference sums them. */
function convRectNchw(
  src: Float32Array,
  base: number,
  pitch: number,
  y: Float32Array,
  yStart: number,
  yPitch: number,
  rows: number,
  cols: number,
  weight: Float32Array,
  wOffset: number,
  bias: number,
  g: Window,
): void {
  const { kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = g;
  for (let r = 0; r < rows; r++) {
    for (let s = 0; s < cols; s++) {
      const corner = base + r * strideHeight * pitch + s * strideWidth;
      let sum = bias;
      for (let p = 0; p < kernelHeight; p++) {
        const row = corner + p * dilationHeight * pitch;
        const wRow = wOffset + p * kernelWidth;
        for (let q = 0; q < kernelWidth; q++) sum += (weight[wRow + q] as number) * (src[row + q * dilationWidth] as number);
      }
      y[yStart + r * yPitch + s] = sum;
    }
  }
}

/** Both gradients of convRectNchw, one tap at a time (its weight gradient in a local). */
function gradRectNchw(
  dy: Float32Array,
  dyStart: number,
  dyPitch: number,
  src: Float32Array,
  dst: Float32Array,
  base: number,
  pitch: number,
  rows: number,
  cols: number,
  weight: Float32Array,
  dweight: Float64Array,
  wOffset: number,
  g: Window,
): void {
  const { kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = g;
  for (let p = 0; p < kernelHeight; p++) {
    for (let q = 0; q < kernelWidth; q++) {
      const t = wOffset + p * kernelWidth + q;
      const wv = weight[t] as number;
      const tapBase = base + p * dilationHeight * pitch + q * dilationWidth;
      let acc = 0;
      for (let r = 0; r < rows; r++) {
        const dyRow = dyStart + r * dyPitch;
        for (let s = 0, v = tapBase + r * strideHeight * pitch; s < cols; s++, v += strideWidth) {
          const grad = dy[dyRow + s] as number;
          acc += grad * (src[v] as number);
          dst[v] = (dst[v] as number) + grad * wv;
        }
      }
      dweight[t] = (dweight[t] as number) + acc;
    }
  }
}

/**
 * A rectangle of NHWC outputs for any kernel and multiplier (output channel o = c * m + k reads input
 * channel c): per pixel, the output row starts at the bias and each tap adds in one channel loop.
 */
function convRectNhwc(
  src: Float32Array,
  base: number,
  pitch: number,
  y: Float32Array,
  yStart: number,
  yPitch: number,
  rows: number,
  cols: number,
  channels: number,
  multiplier: number,
  weight: Float32Array,
  bias: Float32Array | undefined,
  g: Window,
): void {
  const { kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = g;
  const taps = kernelHeight * kernelWidth;
  const outChannels = channels * multiplier;
  for (let r = 0; r < rows; r++) {
    for (let s = 0; s < cols; s++) {
      const yBase = yStart + r * yPitch + s * outChannels;
      const corner = base + r * strideHeight * pitch + s * strideWidth * channels;
      for (let o = 0; o < outChannels; o++) y[yBase + o] = bias === undefined ? 0 : (bias[o] as number);
      for (let p = 0; p < kernelHeight; p++) {
        for (let q = 0; q < kernelWidth; q++) {
          const xBase = corner + p * dilationHeight * pitch + q * dilationWidth * channels;
          const t = p * kernelWidth + q;
          for (let c = 0, o = 0; c < channels; c++) {
            const xv = src[xBase + c] as number;
            for (let k = 0; k < multiplier; k++, o++) y[yBase + o] = (y[yBase + o] as number) + (weight[o * taps + t] as number) * xv;
          }
        }
      }
    }
  }
}

/** Both gradients of convRectNhwc: per pixel and tap, one channel loop. */
function gradRectNhwc(
  dy: Float32Array,
  dyStart: number,
  dyPitch: number,
  src: Float32Array,
  dst: Float32Array,
  base: number,
  pitch: number,
  rows: number,
  cols: number,
  channels: number,
  multiplier: number,
  weight: Float32Array,
  dweight: Float64Array,
  g: Window,
): void {
  const { kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = g;
  const taps = kernelHeight * kernelWidth;
  const outChannels = channels * multiplier;
  for (let r = 0; r < rows; r++) {
    for (let s = 0; s < cols; s++) {
      const dyBase = dyStart + r * dyPitch + s * outChannels;
      const corner = base + r * strideHeight * pitch + s * strideWidth * channels;
      for (let p = 0; p < kernelHeight; p++) {
        for (let q = 0; q < kernelWidth; q++) {
          const xBase = corner + p * dilationHeight * pitch + q * dilationWidth * channels;
          const t = p * kernelWidth + q;
          for (let c = 0, o = 0; c < channels; c++) {
            const xv = src[xBase + c] as number;
            let back = 0;
            for (let k = 0; k < multiplier; k++, o++) {
              const grad = dy[dyBase + o] as number;
              const wi = o * taps + t;
              dweight[wi] = (dweight[wi] as number) + grad * xv;
              back += grad * (weight[wi] as number);
            }
            dst[xBase + c] = (dst[xBase + c] as number) + back;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Drivers: per image (NHWC) or plane (NCHW), the five rectangles

function forward(
  x: Float32Array,
  weight: Float32Array,
  bias: Float32Array | undefined,
  y: Float32Array,
  g: DepthwiseConv2dGeometry,
  nhwc: boolean,
): void {
  const { batch, channels, multiplier, outChannels, inHeight, inWidth, outHeight, outWidth, kernelHeight, kernelWidth } = g;
  const taps = kernelHeight * kernelWidth;
  const is3x3 = kernelHeight === 3 && kernelWidth === 3;
  const depth = nhwc ? channels : 1;
  outputRects(g, rects);
  const window = scratchF32('depthwiseConv2d.window', largestBorderWindow(g, depth));
  // NCHW: one plane per input channel, m output planes each; NHWC: the whole image at once.
  const regions = nhwc ? batch : batch * channels;
  for (let region = 0; region < regions; region++) {
    const from = region * inHeight * inWidth * depth;
    for (let part = 0; part < 5; part++) {
      const i0 = rects[4 * part] as number;
      const rows = (rects[4 * part + 1] as number) - i0;
      const j0 = rects[4 * part + 2] as number;
      const cols = (rects[4 * part + 3] as number) - j0;
      if (rows <= 0 || cols <= 0) continue;
      const top = i0 * g.strideHeight - g.pad.top;
      const left = j0 * g.strideWidth - g.pad.left;
      let src = x;
      let base = from + (top * inWidth + left) * depth;
      let pitch = inWidth * depth;
      if (part > 0) {
        const windowRows = windowExtent(rows, g.strideHeight, kernelHeight, g.dilationHeight);
        const windowCols = windowExtent(cols, g.strideWidth, kernelWidth, g.dilationWidth);
        copyWindow(x, from, inHeight, inWidth, depth, top, left, windowRows, windowCols, window);
        src = window;
        base = 0;
        pitch = windowCols * depth;
      }
      if (nhwc) {
        const yStart = ((region * outHeight + i0) * outWidth + j0) * outChannels;
        const yPitch = outWidth * outChannels;
        if (is3x3 && multiplier === 1)
          conv3x3Rect(src, base, pitch, channels, y, yStart, yPitch, rows, cols, channels, weight, 0, bias, 0, g);
        else convRectNhwc(src, base, pitch, y, yStart, yPitch, rows, cols, channels, multiplier, weight, bias, g);
        continue;
      }
      const n = Math.floor(region / channels);
      const c = region - n * channels;
      for (let k = 0; k < multiplier; k++) {
        const o = c * multiplier + k;
        const yStart = ((n * outChannels + o) * outHeight + i0) * outWidth + j0;
        if (is3x3) conv3x3Rect(src, base, pitch, 1, y, yStart, outWidth, rows, cols, 1, weight, o * taps, bias, o, g);
        else
          convRectNchw(
            src,
            base,
            pitch,
            y,
            yStart,
            outWidth,
            rows,
            cols,
            weight,
            o * taps,
            bias === undefined ? 0 : (bias[o] as number),
            g,
          );
      }
    }
  }
}

/*
 * The reference derives dx, dweight and dbias (see reference.ts): every output (i, j) and tap (p, q) adds
 *   dweight[o, p, q] += dy[i, j] * x[h, v]   and   dx[h, v] += dy[i, j] * w[o, p, q]
 * for the input (h, v) that tap read; taps in the padding read a constant and add nothing (here: they
 * read a zero, and what they scatter lands in the window's padding, which is never added back).
 */
function backward(
  dy: Float32Array,
  x: Float32Array,
  weight: Float32Array,
  dx: Float32Array,
  dweight: Float64Array,
  dbias: Float64Array,
  g: DepthwiseConv2dGeometry,
  nhwc: boolean,
): void {
  const { batch, channels, multiplier, outChannels, inHeight, inWidth, outHeight, outWidth, kernelHeight, kernelWidth } = g;
  const taps = kernelHeight * kernelWidth;
  const is3x3 = kernelHeight === 3 && kernelWidth === 3;
  const depth = nhwc ? channels : 1;
  outputRects(g, rects);
  const windowSize = largestBorderWindow(g, depth);
  const window = scratchF32('depthwiseConv2d.window', windowSize);
  const windowGrad = scratchF32('depthwiseConv2d.windowGrad', windowSize);
  const regions = nhwc ? batch : batch * channels;
  for (let region = 0; region < regions; region++) {
    const from = region * inHeight * inWidth * depth;
    for (let part = 0; part < 5; part++) {
      const i0 = rects[4 * part] as number;
      const rows = (rects[4 * part + 1] as number) - i0;
      const j0 = rects[4 * part + 2] as number;
      const cols = (rects[4 * part + 3] as number) - j0;
      if (rows <= 0 || cols <= 0) continue;
      const top = i0 * g.strideHeight - g.pad.top;
      const left = j0 * g.strideWidth - g.pad.left;
      const windowRows = windowExtent(rows, g.strideHeight, kernelHeight, g.dilationHeight);
      const windowCols = windowExtent(cols, g.strideWidth, kernelWidth, g.dilationWidth);
      let src = x;
      let dst = dx;
      let base = from + (top * inWidth + left) * depth;
      let pitch = inWidth * depth;
      if (part > 0) {
        copyWindow(x, from, inHeight, inWidth, depth, top, left, windowRows, windowCols, window);
        windowGrad.fill(0, 0, windowRows * windowCols * depth);
        src = window;
        dst = windowGrad;
        base = 0;
        pitch = windowCols * depth;
      }
      if (nhwc) {
        const dyStart = ((region * outHeight + i0) * outWidth + j0) * outChannels;
        const dyPitch = outWidth * outChannels;
        if (is3x3 && multiplier === 1)
          grad3x3Rect(dy, dyStart, dyPitch, src, dst, base, pitch, channels, rows, cols, channels, weight, dweight, 0, g);
        else gradRectNhwc(dy, dyStart, dyPitch, src, dst, base, pitch, rows, cols, channels, multiplier, weight, dweight, g);
      } else {
        const n = Math.floor(region / channels);
        const c = region - n * channels;
        for (let k = 0; k < multiplier; k++) {
          const o = c * multiplier + k;
          const dyStart = ((n * outChannels + o) * outHeight + i0) * outWidth + j0;
          if (is3x3) grad3x3Rect(dy, dyStart, outWidth, src, dst, base, pitch, 1, rows, cols, 1, weight, dweight, o * taps, g);
          else gradRectNchw(dy, dyStart, outWidth, src, dst, base, pitch, rows, cols, weight, dweight, o * taps, g);
        }
      }
      if (part > 0) addWindow(windowGrad, dx, from, inHeight, inWidth, depth, top, left, windowRows, windowCols);
    }
  }
  // dbias[o] = sum of dy over its plane (NCHW) or over every pixel's channel o (NHWC).
  const outPlane = outHeight * outWidth;
  if (nhwc) {
    for (let e = 0, pixel = 0; pixel < batch * outPlane; pixel++) {
      for (let o = 0; o < outChannels; o++, e++) dbias[o] = (dbias[o] as number) + (dy[e] as number);
    }
  } else {
    for (let plane = 0; plane < batch * outChannels; plane++) {
      let sum = 0;
      for (let e = plane * outPlane; e < (plane + 1) * outPlane; e++) sum += dy[e] as number;
      const o = plane % outChannels;
      dbias[o] = (dbias[o] as number) + sum;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------

// Float64 sums of the weight and bias gradients, grown to the largest size seen.
let weightGradSums = new Float64Array(0);
let biasGradSums = new Float64Array(0);

export const depthwiseConv2dCpu: DepthwiseConv2dOps = {
  depthwiseConv2d(x, weight, options?: DepthwiseConv2dOptions) {
    const g = depthwiseConv2dGeometry('depthwiseConv2d', x, weight, options);
    if (x.dtype === 'float64') return depthwiseConv2dReference.depthwiseConv2d(x, weight, options);
    // weight [C*m, 1, kH, kW] has one memory order in both layouts (its channel axis is 1): o*kH*kW + p*kW + q.
    const y = resultF32(g.batch * g.outChannels * g.outHeight * g.outWidth);
    forward(x.data as Float32Array, weight.data as Float32Array, g.bias?.data as Float32Array | undefined, y, g, x.layout === 'NHWC');
    return new Tensor(y, [g.batch, g.outChannels, g.outHeight, g.outWidth], x.layout);
  },

  depthwiseConv2dBackward(dy, x, weight, options?: DepthwiseConv2dOptions) {
    const g = checkDepthwiseConv2dBackward(dy, x, weight, options);
    if (x.dtype === 'float64') return depthwiseConv2dReference.depthwiseConv2dBackward(dy, x, weight, options);
    if (weightGradSums.length < weight.size) weightGradSums = new Float64Array(weight.size);
    if (biasGradSums.length < g.outChannels) biasGradSums = new Float64Array(g.outChannels);
    const dweightSums = weightGradSums.subarray(0, weight.size).fill(0);
    const dbiasSums = biasGradSums.subarray(0, g.outChannels).fill(0);
    const dx = zeroedF32(x.size);
    const nhwc = x.layout === 'NHWC';
    backward(dy.data as Float32Array, x.data as Float32Array, weight.data as Float32Array, dx, dweightSums, dbiasSums, g, nhwc);
    const dweight = new Tensor(resultCopyF32(dweightSums), weight.shape, weight.layout);
    const grads = { dx: new Tensor(dx, x.shape, x.layout), dweight };
    if (g.bias === undefined) return grads;
    return { ...grads, dbias: new Tensor(resultCopyF32(dbiasSums), g.bias.shape) };
  },
};
