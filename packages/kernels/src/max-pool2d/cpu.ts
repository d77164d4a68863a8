import { Tensor } from '@shuffle/core';
import { resultF32, resultI32, zeroedF32 } from '../common/arena.js';
import { scratchF32 } from '../common/scratch.js';
import { tapBegin, tapEnd } from '../common/window.js';
import { maxPool2dReference } from './reference.js';
import { checkMaxPool2dBackward, type MaxPool2dOps, type MaxPool2dSaved, maxPool2dGeometry, type Pool2dGeometry } from './spec.js';

/*
 * Fast max pooling, with the reference's rules exactly: the first maximum in row-major window order wins
 * (a later element must be strictly greater), a NaN beats every number and the first NaN beats later
 * ones, padding never takes part.
 *
 * The output splits into an interior, where every tap lands inside the input, and a border. The interior
 * of a 3x3 window (ShuffleNet's stem pool) is unrolled, unchecked and free of branches: a branch per tap on
 * which value is larger is mispredicted about twice per window (on uniform random and on ReLU'd inputs)
 * and costs more than all the rest: measured 2-3x slower. Each value becomes an integer key (see orderKey) ordered as
 * the reference compares, and a running maximum keeps the key and the tap number through masks computed
 * from the comparison, so a later tap takes over only when strictly greater. The winner's value is then
 * read from x (its exact bits: -0 stays -0, a NaN stays itself) and its position is the argmax, which costs
 * the plain forward one skipped store.
 * The border, and other window sizes, go through a general loop that checks each tap and compares floats.
 *
 * NCHW: one (image, channel) plane at a time. NHWC: one output pixel at a time, channels innermost, so the
 * nine taps are nine contiguous channel rows; a border pixel first lists its taps that are inside.
 * The backward scatters dy to the argmax (the forward's, or recomputed into scratch).
 * float64 inputs exist only for gradient checks and go to the reference kernel.
 */

/** [rowBegin, rowEnd, colBegin, colEnd]: the outputs whose every tap lands inside the input. */
const interior = new Int32Array(4);

function findInterior(g: Pool2dGeometry): void {
  interior[0] = tapBegin(-g.pad.top, g.strideHeight, g.outHeight);
  interior[1] = Math.max(interior[0], tapEnd((g.kernelHeight - 1) * g.dilationHeight - g.pad.top, g.strideHeight, g.inHeight, g.outHeight));
  interior[2] = tapBegin(-g.pad.left, g.strideWidth, g.outWidth);
  interior[3] = Math.max(interior[2], tapEnd((g.kernelWidth - 1) * g.dilationWidth - g.pad.left, g.strideWidth, g.inWidth, g.outWidth));
}

// ---------------------------------------------------------------------------------------------------------
// NCHW

/**
 * An int32 key per float32 value, from its bits, that orders values as the reference compares them: numbers
 * in numeric order with -0 and +0 tied (sign and magnitude turned two's complement), and every NaN on one
 * key above +Infinity, so NaNs tie and the first one stays.
 */
function orderKey(bits: number): number {
  const magnitude = bits & 0x7fffffff;
  const nan = (0x7f800000 - magnitude) >> 31; // -1 for a NaN, else 0
  const negative = (bits >> 31) & ~nan;
  const clamped = magnitude - ((magnitude - 0x7f800001) & nan); // every NaN -> 0x7f800001
  return (clamped ^ negative) - negative;
}

// The nine taps of a 3x3 window, row-major: offsets from the top-left tap in memory, and in the logical
// h * W + v index (the same in NCHW; NHWC memory offsets are C times larger). Set per call by setTaps.
const tapMemory = new Int32Array(9);
const tapLogical = new Int32Array(9);

function setTaps(g: Pool2dGeometry, channels: number): void {
  for (let p = 0; p < 3; p++) {
    for (let q = 0; q < 3; q++) {
      tapLogical[3 * p + q] = p * g.dilationHeight * g.inWidth + q * g.dilationWidth;
      tapMemory[3 * p + q] = (tapLogical[3 * p + q] as number) * channels;
    }
  }
}

/*
 * One tap of the branch-free running maximum (m: key so far, t: its tap number): s is -1 when the tap's
 * key k is strictly greater, else 0, and selects k and its tap number by masking.
 *   k = orderKey(bits); s = -+(k > m); m ^= (m ^ k) & s; t ^= (t ^ tap) & s;
 * Written out nine times below (V8 does not unroll a loop over the taps, and the loop ran 2x slower).
 */

/** The interior of one plane, 3x3; argmax (laid out like the NCHW output) when given. */
function interior3x3Nchw(
  x: Float32Array,
  bits: Int32Array,
  xPlane: number,
  y: Float32Array,
  argmax: Int32Array | undefined,
  yPlane: number,
  g: Pool2dGeometry,
): void {
  const { inWidth, outWidth, strideHeight, strideWidth } = g;
  const o1 = tapMemory[1] as number;
  const o2 = tapMemory[2] as number;
  const o3 = tapMemory[3] as number;
  const o4 = tapMemory[4] as number;
  const o5 = tapMemory[5] as number;
  const o6 = tapMemory[6] as number;
  const o7 = tapMemory[7] as number;
  const o8 = tapMemory[8] as number;
  const rowEnd = interior[1] as number;
  const colBegin = interior[2] as number;
  const colEnd = interior[3] as number;
  for (let i = interior[0] as number; i < rowEnd; i++) {
    const rowStart = xPlane + (i * strideHeight - g.pad.top) * inWidth - g.pad.left;
    const yRow = yPlane + i * outWidth;
    for (let j = colBegin, at = rowStart + colBegin * strideWidth; j < colEnd; j++, at += strideWidth) {
      let m = orderKey(bits[at] as number);
      let t = 0;
      let k = orderKey(bits[at + o1] as number);
      let s = -+(k > m);
      m ^= (m ^ k) & s;
      t ^= (t ^ 1) & s;
      k = orderKey(bits[at + o2] as number);
      s = -+(k > m);
      m ^= (m ^ k) & s;
      t ^= (t ^ 2) & s;
      k = orderKey(bits[at + o3] as number);
      s = -+(k > m);
      m ^= (m ^ k) & s;
      t ^= (t ^ 3) & s;
      k = orderKey(bits[at + o4] as number);
      s = -+(k > m);
      m ^= (m ^ k) & s;
      t ^= (t ^ 4) & s;
      k = orderKey(bits[at + o5] as number);
      s = -+(k > m);
      m ^= (m ^ k) & s;
      t ^= (t ^ 5) & s;
      k = orderKey(bits[at + o6] as number);
      s = -+(k > m);
      m ^= (m ^ k) & s;
      t ^= (t ^ 6) & s;
      k = orderKey(bits[at + o7] as number);
      s = -+(k > m);
      m ^= (m ^ k) & s;
      t ^= (t ^ 7) & s;
      k = orderKey(bits[at + o8] as number);
      s = -+(k > m);
      t ^= (t ^ 8) & s;
      const winner = at + (tapMemory[t] as number);
      y[yRow + j] = x[winner] as number;
      if (argmax !== undefined) argmax[yRow + j] = winner - xPlane;
    }
  }
}

/** Output row i, columns [colBegin, colEnd) of one plane, any window, each tap checked. */
function rowNchw(
  x: Float32Array,
  xPlane: number,
  y: Float32Array,
  argmax: Int32Array | undefined,
  yPlane: number,
  i: number,
  colBegin: number,
  colEnd: number,
  g: Pool2dGeometry,
): void {
  const { inHeight, inWidth, kernelHeight, kernelWidth, strideWidth, dilationHeight, dilationWidth } = g;
  const top = i * g.strideHeight - g.pad.top;
  const yRow = yPlane + i * g.outWidth;
  for (let j = colBegin; j < colEnd; j++) {
    const left = j * strideWidth - g.pad.left;
    let m = Number.NaN;
    let at = -1;
    for (let p = 0; p < kernelHeight; p++) {
      const h = top + p * dilationHeight;
      if (h < 0 || h >= inHeight) continue;
      for (let q = 0; q < kernelWidth; q++) {
        const v = left + q * dilationWidth;
        if (v < 0 || v >= inWidth) continue;
        const t = x[xPlane + h * inWidth + v] as number;
        if (at < 0 || t > m || (Number.isNaN(t) && !Number.isNaN(m))) {
          m = t;
          at = h * inWidth + v;
        }
      }
    }
    // The geometry check guarantees every window holds an input element, so at >= 0.
    y[yRow + j] = m;
    if (argmax) argmax[yRow + j] = at;
  }
}

function poolNchw(x: Float32Array, bits: Int32Array, y: Float32Array, argmax: Int32Array | undefined, g: Pool2dGeometry): void {
  const { batch, channels, inHeight, inWidth, outHeight, outWidth } = g;
  findInterior(g);
  setTaps(g, 1);
  const rowBegin = interior[0] as number;
  const rowEnd = interior[1] as number;
  const colBegin = interior[2] as number;
  const colEnd = interior[3] as number;
  const is3x3 = g.kernelHeight === 3 && g.kernelWidth === 3;
  for (let plane = 0; plane < batch * channels; plane++) {
    const xPlane = plane * inHeight * inWidth;
    const yPlane = plane * outHeight * outWidth;
    if (is3x3) interior3x3Nchw(x, bits, xPlane, y, argmax, yPlane, g);
    // The border: whole rows above and below the interior, and its rows' left and right ends.
    for (let i = 0; i < outHeight; i++) {
      if (is3x3 && i >= rowBegin && i < rowEnd) {
        rowNchw(x, xPlane, y, argmax, yPlane, i, 0, colBegin, g);
        rowNchw(x, xPlane, y, argmax, yPlane, i, colEnd, outWidth, g);
      } else {
        rowNchw(x, xPlane, y, argmax, yPlane, i, 0, outWidth, g);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// NHWC

/**
 * Interior pixel (n, i, j), 3x3: nine channel rows, the channel loop innermost, each channel's maximum
 * branch-free as in interior3x3Nchw. argmax is in logical [N, C, outH, outW] order: channel c's entry
 * for this pixel is outH * outW after channel c - 1's.
 */
function pixel3x3Nhwc(
  x: Float32Array,
  bits: Int32Array,
  y: Float32Array,
  argmax: Int32Array | undefined,
  n: number,
  i: number,
  j: number,
  g: Pool2dGeometry,
): void {
  const C = g.channels;
  const topLeft = (i * g.strideHeight - g.pad.top) * g.inWidth + j * g.strideWidth - g.pad.left; // logical h * W + v
  const base = (n * g.inHeight * g.inWidth + topLeft) * C;
  const o1 = tapMemory[1] as number;
  const o2 = tapMemory[2] as number;
  const o3 = tapMemory[3] as number;
  const o4 = tapMemory[4] as number;
  const o5 = tapMemory[5] as number;
  const o6 = tapMemory[6] as number;
  const o7 = tapMemory[7] as number;
  const o8 = tapMemory[8] as number;
  const yBase = ((n * g.outHeight + i) * g.outWidth + j) * C;
  const outPlane = g.outHeight * g.outWidth;
  const argmaxBase = n * C * outPlane + i * g.outWidth + j;
  for (let c = 0; c < C; c++) {
    const at = base + c;
    let m = orderKey(bits[at] as number);
    let t = 0;
    let k = orderKey(bits[at + o1] as number);
    let s = -+(k > m);
    m ^= (m ^ k) & s;
    t ^= (t ^ 1) & s;
    k = orderKey(bits[at + o2] as number);
    s = -+(k > m);
    m ^= (m ^ k) & s;
    t ^= (t ^ 2) & s;
    k = orderKey(bits[at + o3] as number);
    s = -+(k > m);
    m ^= (m ^ k) & s;
    t ^= (t ^ 3) & s;
    k = orderKey(bits[at + o4] as number);
    s = -+(k > m);
    m ^= (m ^ k) & s;
    t ^= (t ^ 4) & s;
    k = orderKey(bits[at + o5] as number);
    s = -+(k > m);
    m ^= (m ^ k) & s;
    t ^= (t ^ 5) & s;
    k = orderKey(bits[at + o6] as number);
    s = -+(k > m);
    m ^= (m ^ k) & s;
    t ^= (t ^ 6) & s;
    k = orderKey(bits[at + o7] as number);
    s = -+(k > m);
    m ^= (m ^ k) & s;
    t ^= (t ^ 7) & s;
    k = orderKey(bits[at + o8] as number);
    s = -+(k > m);
    t ^= (t ^ 8) & s;
    y[yBase + c] = x[at + (tapMemory[t] as number)] as number;
    if (argmax !== undefined) argmax[argmaxBase + c * outPlane] = topLeft + (tapLogical[t] as number);
  }
}

// Per border pixel: the memory offsets (channel 0) and logical indices h * W + v of its taps inside the input.
let tapOffsets = new Int32Array(16);
let tapIndices = new Int32Array(16);

/**
 * Any pixel, any window, values and (when given) argmax: its taps inside the input are listed first, then
 * each channel runs down the list. argmax is in logical [N, C, outH, outW] order: channel c's entry for
 * this pixel is C-strided by outH * outW.
 */
function pixelNhwc(
  x: Float32Array,
  y: Float32Array,
  argmax: Int32Array | undefined,
  n: number,
  i: number,
  j: number,
  g: Pool2dGeometry,
): void {
  const { channels, inHeight, inWidth, outHeight, outWidth, kernelHeight, kernelWidth } = g;
  if (tapOffsets.length < kernelHeight * kernelWidth) {
    tapOffsets = new Int32Array(kernelHeight * kernelWidth);
    tapIndices = new Int32Array(kernelHeight * kernelWidth);
  }
  const top = i * g.strideHeight - g.pad.top;
  const left = j * g.strideWidth - g.pad.left;
  let taps = 0;
  for (let p = 0; p < kernelHeight; p++) {
    const h = top + p * g.dilationHeight;
    if (h < 0 || h >= inHeight) continue;
    for (let q = 0; q < kernelWidth; q++) {
      const v = left + q * g.dilationWidth;
      if (v < 0 || v >= inWidth) continue;
      tapOffsets[taps] = ((n * inHeight + h) * inWidth + v) * channels;
      tapIndices[taps] = h * inWidth + v;
      taps++;
    }
  }
  const yBase = ((n * outHeight + i) * outWidth + j) * channels;
  const outPlane = outHeight * outWidth;
  const argmaxBase = n * channels * outPlane + i * outWidth + j;
  for (let c = 0; c < channels; c++) {
    let m = x[(tapOffsets[0] as number) + c] as number;
    let best = 0;
    for (let k = 1; k < taps; k++) {
      const t = x[(tapOffsets[k] as number) + c] as number;
      if (t > m || (Number.isNaN(t) && !Number.isNaN(m))) {
        m = t;
        best = k;
      }
    }
    y[yBase + c] = m;
    if (argmax) argmax[argmaxBase + c * outPlane] = tapIndices[best] as number;
  }
}

function poolNhwc(x: Float32Array, bits: Int32Array, y: Float32Array, argmax: Int32Array | undefined, g: Pool2dGeometry): void {
  const { batch, outHeight, outWidth } = g;
  findInterior(g);
  setTaps(g, g.channels);
  const rowBegin = interior[0] as number;
  const rowEnd = interior[1] as number;
  const colBegin = interior[2] as number;
  const colEnd = interior[3] as number;
  const fast = g.kernelHeight === 3 && g.kernelWidth === 3;
  for (let n = 0; n < batch; n++) {
    for (let i = 0; i < outHeight; i++) {
      const rowInside = fast && i >= rowBegin && i < rowEnd;
      for (let j = 0; j < outWidth; j++) {
        if (rowInside && j >= colBegin && j < colEnd) pixel3x3Nhwc(x, bits, y, argmax, n, i, j, g);
        else pixelNhwc(x, y, argmax, n, i, j, g);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------

function pool(x: Tensor, g: Pool2dGeometry, argmax: Int32Array | undefined, y: Float32Array): void {
  const data = x.data as Float32Array;
  // The same memory read as integers, for orderKey.
  const bits = new Int32Array(data.buffer, data.byteOffset, data.length);
  if (x.layout === 'NCHW') poolNchw(data, bits, y, argmax, g);
  else poolNhwc(data, bits, y, argmax, g);
}

let argmaxScratch = new Int32Array(0);

export const maxPool2dCpu: MaxPool2dOps = {
  maxPool2d(x, options) {
    const g = maxPool2dGeometry(x, options);
    if (x.dtype === 'float64') return maxPool2dReference.maxPool2d(x, options);
    const shape = [g.batch, g.channels, g.outHeight, g.outWidth];
    const y = resultF32(g.batch * g.channels * g.outHeight * g.outWidth);
    pool(x, g, undefined, y);
    return new Tensor(y, shape, x.layout);
  },

  maxPool2dWithSaved(x, options) {
    const g = maxPool2dGeometry(x, options, 'maxPool2dWithSaved');
    if (x.dtype === 'float64') return maxPool2dReference.maxPool2dWithSaved(x, options);
    const shape = [g.batch, g.channels, g.outHeight, g.outWidth];
    const y = resultF32(g.batch * g.channels * g.outHeight * g.outWidth);
    const argmax = resultI32(y.length);
    pool(x, g, argmax, y);
    return { y: new Tensor(y, shape, x.layout), saved: { argmax } };
  },

  /* The reference derives it: each output's dy goes, whole, to the input element that won its window. */
  maxPool2dBackward(dy, x, options, saved?: MaxPool2dSaved) {
    const g = checkMaxPool2dBackward(dy, x, options, saved);
    if (x.dtype === 'float64') return maxPool2dReference.maxPool2dBackward(dy, x, options, saved);
    const outputs = g.batch * g.channels * g.outHeight * g.outWidth;
    let argmax = saved?.argmax;
    if (argmax === undefined) {
      if (argmaxScratch.length < outputs) argmaxScratch = new Int32Array(outputs);
      argmax = argmaxScratch;
      pool(x, g, argmax, scratchF32('maxPool2d.y', outputs));
    }
    const dx = zeroedF32(x.size);
    const dyData = dy.data as Float32Array;
    const inPlane = g.inHeight * g.inWidth;
    const outPlane = g.outHeight * g.outWidth;
    if (x.layout === 'NCHW') {
      for (let plane = 0, o = 0; plane < g.batch * g.channels; plane++) {
        const xPlane = plane * inPlane;
        for (let e = 0; e < outPlane; e++, o++) {
          const at = xPlane + (argmax[o] as number);
          dx[at] = (dx[at] as number) + (dyData[o] as number);
        }
      }
    } else {
      // dy is [N, outH, outW, C]; argmax stays in logical order, so it is read C-strided by outH * outW.
      const C = g.channels;
      for (let n = 0, e = 0; n < g.batch; n++) {
        for (let pixel = 0; pixel < outPlane; pixel++) {
          const argmaxBase = n * C * outPlane + pixel;
          for (let c = 0; c < C; c++, e++) {
            const at = (n * inPlane + (argmax[argmaxBase + c * outPlane] as number)) * C + c;
            dx[at] = (dx[at] as number) + (dyData[e] as number);
          }
        }
      }
    }
    return { dx: new Tensor(dx, x.shape, x.layout) };
  },
};
