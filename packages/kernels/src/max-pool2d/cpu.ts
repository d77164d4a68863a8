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
 * That is maxPool2dWithSaved's kernel; the plain maxPool2d, with no argmax to keep, has a separable one
 * (see "The plain forward" below). The backward scatters dy to the argmax (the forward's, or recomputed
 * into scratch).
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
// The plain forward (no argmax), separable, both layouts

/*
 * A window's taps inside the input are the grid of its rows inside times its columns inside, so its
 * maximum is the maximum over those rows of each row's maximum over those columns. Each input row's
 * column maxima are computed once and shared by the output rows whose windows read it (3x3 stride 2:
 * 6 comparisons per output instead of 8, over contiguous rows). The first maximum survives: the first
 * row holding the window's maximum, and the first maximum within that row, is the first maximum in
 * row-major window order.
 *
 * Values are compared as int32 keys through masks, branch-free (a compare feeding a branch or a ternary
 * is a mispredicted jump per tap on random or ReLU'd data, measured 3x slower):
 *   key = (bits ^ ((bits >> 31) & 0x7fffffff)) - 0x7fffff   (wrapping).
 * The xor turns sign and magnitude into two's complement (-0 just below +0); it puts the negative NaNs
 * below -Infinity, at the bottom 0x7fffff keys, and the subtraction wraps exactly those round to the
 * top: -Infinity < numbers < +Infinity < NaNs, -2^31 is -Infinity's key, and the key gives back the bits.
 * Keys differ where the reference ties: they rank -0 below +0, where the first zero of the window wins,
 * and NaNs by payload, where the first NaN wins. So a window whose maximum key is a NaN, or +0 when its
 * rows hold a -0 (which may come first), is pooled again by the reference's rule (windowMax); both are
 * rare. Padding never takes part; a running maximum starts at -2^31, below or equal to every key.
 */

const KEY_SHIFT = 0x7fffff;
const KEY_POS_ZERO = -KEY_SHIFT;
const KEY_POS_INF = 0x7f800000 - KEY_SHIFT;
const KEY_EMPTY = -0x80000000;

function key(bits: number): number {
  return ((bits ^ ((bits >> 31) & 0x7fffffff)) - KEY_SHIFT) | 0;
}

function unkey(k: number): number {
  const bits = (k + KEY_SHIFT) | 0;
  return bits ^ ((bits >> 31) & 0x7fffffff);
}

/** max(m, k) through a mask: the compare becomes a 0 or 1, not a jump. */
function maxKey(m: number, k: number): number {
  return m ^ ((m ^ k) & -+(k > m));
}

/** [begin, end) of the output columns whose every tap lands inside the input. */
const plainInterior = new Int32Array(2);
/** Which input row each slot of the ring of row maxima holds (-1: none yet). */
let ringRow = new Int32Array(4);
/** The ring slots of the current output row's window rows inside the input, top to bottom. */
let windowSlots = new Int32Array(4);

/** Output (i, j) of one plane (NCHW: lanes 1) or one channel of an NHWC image (lanes C), by the reference's rule. */
function windowMax(x: Float32Array, base: number, lanes: number, i: number, j: number, g: Pool2dGeometry): number {
  let m = Number.NaN;
  let found = false;
  for (let p = 0; p < g.kernelHeight; p++) {
    const h = i * g.strideHeight - g.pad.top + p * g.dilationHeight;
    if (h < 0 || h >= g.inHeight) continue;
    for (let q = 0; q < g.kernelWidth; q++) {
      const v = j * g.strideWidth - g.pad.left + q * g.dilationWidth;
      if (v < 0 || v >= g.inWidth) continue;
      const t = x[base + (h * g.inWidth + v) * lanes] as number;
      if (!found || t > m || (Number.isNaN(t) && !Number.isNaN(m))) {
        m = t;
        found = true;
      }
    }
  }
  return m;
}

/**
 * The keys of input row rowBase's column maxima into hKeys at `at`: outWidth * lanes of them, lane
 * innermost (lanes = C in NHWC, 1 for an NCHW plane). Three-tap windows' interior columns are unrolled;
 * the border, and other window widths, check each tap.
 */
function rowMaxima(bits: Int32Array, rowBase: number, lanes: number, hKeys: Int32Array, at: number, g: Pool2dGeometry): void {
  const { inWidth, outWidth, strideWidth, kernelWidth, dilationWidth } = g;
  const left = -g.pad.left;
  const unrolled = kernelWidth === 3;
  const jBegin = unrolled ? (plainInterior[0] as number) : outWidth;
  const jEnd = unrolled ? (plainInterior[1] as number) : outWidth;
  // The border columns: [0, jBegin) and [jEnd, outWidth).
  for (let j = 0; j < outWidth; j++) {
    if (j === jBegin) j = jEnd;
    if (j >= outWidth) break;
    for (let c = 0; c < lanes; c++) {
      let m = KEY_EMPTY;
      for (let q = 0; q < kernelWidth; q++) {
        const v = j * strideWidth + left + q * dilationWidth;
        if (v >= 0 && v < inWidth) m = maxKey(m, key(bits[rowBase + v * lanes + c] as number));
      }
      hKeys[at + j * lanes + c] = m;
    }
  }
  const d = dilationWidth * lanes;
  if (lanes === 1 && strideWidth === 2 * dilationWidth) {
    // A window's last tap is the next one's first (stride 2, dilation 1 for ShuffleNet): its key carries over.
    let src = rowBase + jBegin * strideWidth + left;
    let k2 = key(bits[src] as number);
    for (let j = jBegin; j < jEnd; j++, src += strideWidth) {
      const k0 = k2;
      const k1 = key(bits[src + d] as number);
      k2 = key(bits[src + 2 * d] as number);
      hKeys[at + j] = maxKey(maxKey(k0, k1), k2);
    }
  } else if (lanes === 1) {
    for (let j = jBegin, src = rowBase + jBegin * strideWidth + left; j < jEnd; j++, src += strideWidth) {
      hKeys[at + j] = maxKey(maxKey(key(bits[src] as number), key(bits[src + d] as number)), key(bits[src + 2 * d] as number));
    }
  } else {
    for (let j = jBegin; j < jEnd; j++) {
      const src = rowBase + (j * strideWidth + left) * lanes;
      const dst = at + j * lanes;
      for (let c = 0; c < lanes; c++) {
        const s = src + c;
        hKeys[dst + c] = maxKey(maxKey(key(bits[s] as number), key(bits[s + d] as number)), key(bits[s + 2 * d] as number));
      }
    }
  }
}

const MINUS_ZERO_BITS = -0x80000000;
/** Per ring slot: whether its input row holds a -0 (-1: not looked yet). */
let ringNegZero = new Int32Array(4);

/**
 * Whether the current output row's window rows hold a -0: 1 or 0, from a flag per input row found at
 * most once. Asked only when a window's maximum is +0, so inputs without zeros never scan.
 */
function windowRowsHoldNegZero(bits: Int32Array, xBase: number, lanes: number, rows: number, g: Pool2dGeometry): number {
  const rowLength = g.inWidth * lanes;
  let any = 0;
  for (let p = 0; p < rows; p++) {
    const slot = windowSlots[p] as number;
    if ((ringNegZero[slot] as number) < 0) {
      const from = xBase + (ringRow[slot] as number) * rowLength;
      let found = 0;
      for (let v = from; v < from + rowLength; v++) if (bits[v] === MINUS_ZERO_BITS) found = 1;
      ringNegZero[slot] = found;
    }
    any |= ringNegZero[slot] as number;
  }
  return any;
}

/**
 * Output row i's values: the maximum of three rows of keys (at a, b and c in `keys`; a row given twice
 * leaves the maximum as it is). A maximum of +0 is +0 unless the window's rows hold a -0 (ReLU'd inputs
 * give all-zero windows, -0 is rare); those windows and NaNs go to the reference's rule.
 */
function writeRow(
  x: Float32Array,
  bits: Int32Array,
  xBase: number,
  yBits: Int32Array,
  y: Float32Array,
  yRow: number,
  keys: Int32Array,
  a: number,
  b: number,
  c: number,
  size: number,
  lanes: number,
  i: number,
  rows: number,
  g: Pool2dGeometry,
): void {
  let negZero = -1;
  for (let e = 0; e < size; e++) {
    const k = maxKey(maxKey(keys[a + e] as number, keys[b + e] as number), keys[c + e] as number);
    if (k === KEY_POS_ZERO) {
      if (negZero < 0) negZero = windowRowsHoldNegZero(bits, xBase, lanes, rows, g);
      if (negZero === 0) {
        yBits[yRow + e] = 0;
        continue;
      }
    } else if (k <= KEY_POS_INF) {
      yBits[yRow + e] = unkey(k);
      continue;
    }
    const j = Math.floor(e / lanes);
    y[yRow + e] = windowMax(x, xBase + e - j * lanes, lanes, i, j, g);
  }
}

/**
 * One image (NHWC, lanes = C) or one plane (NCHW, lanes = 1) at xBase, into y at yBase. Row maxima live
 * in a ring of `span` slots (rows of one window are less than `span` apart, so never share a slot),
 * which consecutive output rows share; each output row is their elementwise maximum.
 */
function poolSeparable(
  x: Float32Array,
  bits: Int32Array,
  xBase: number,
  y: Float32Array,
  yBits: Int32Array,
  yBase: number,
  lanes: number,
  keys: Int32Array,
  g: Pool2dGeometry,
): void {
  const { inHeight, inWidth, outHeight, outWidth, kernelHeight, strideHeight, dilationHeight } = g;
  const rowSize = outWidth * lanes;
  const span = (kernelHeight - 1) * dilationHeight + 1;
  ringRow.fill(-1, 0, span);
  for (let i = 0; i < outHeight; i++) {
    const top = i * strideHeight - g.pad.top;
    let rows = 0;
    for (let p = 0; p < kernelHeight; p++) {
      const r = top + p * dilationHeight;
      if (r < 0 || r >= inHeight) continue;
      const slot = r % span;
      if (ringRow[slot] !== r) {
        rowMaxima(bits, xBase + r * inWidth * lanes, lanes, keys, slot * rowSize, g);
        ringRow[slot] = r;
        ringNegZero[slot] = -1;
      }
      windowSlots[rows++] = slot;
    }
    const yRow = yBase + i * rowSize;
    // The geometry check guarantees every window a row inside the input, so rows >= 1. One, two or
    // three rows (3x3: the common case) are folded while writing y; more first fold into acc.
    const a = (windowSlots[0] as number) * rowSize;
    const b = (windowSlots[rows > 1 ? 1 : 0] as number) * rowSize;
    if (rows <= 3) {
      const c = (windowSlots[rows - 1] as number) * rowSize;
      writeRow(x, bits, xBase, yBits, y, yRow, keys, a, b, c, rowSize, lanes, i, rows, g);
      continue;
    }
    const acc = span * rowSize;
    for (let e = 0; e < rowSize; e++) keys[acc + e] = maxKey(keys[a + e] as number, keys[b + e] as number);
    for (let p = 2; p < rows; p++) {
      const s = (windowSlots[p] as number) * rowSize;
      for (let e = 0; e < rowSize; e++) keys[acc + e] = maxKey(keys[acc + e] as number, keys[s + e] as number);
    }
    writeRow(x, bits, xBase, yBits, y, yRow, keys, acc, acc, acc, rowSize, lanes, i, rows, g);
  }
}

function poolPlain(x: Float32Array, nchw: boolean, y: Float32Array, g: Pool2dGeometry): void {
  const { batch, channels, inHeight, inWidth, outHeight, outWidth, kernelWidth, kernelHeight, dilationHeight } = g;
  plainInterior[0] = tapBegin(-g.pad.left, g.strideWidth, outWidth);
  plainInterior[1] = Math.max(
    plainInterior[0] as number,
    tapEnd((kernelWidth - 1) * g.dilationWidth - g.pad.left, g.strideWidth, inWidth, outWidth),
  );
  const span = (kernelHeight - 1) * dilationHeight + 1;
  if (ringRow.length < span) {
    ringRow = new Int32Array(span);
    ringNegZero = new Int32Array(span);
  }
  if (windowSlots.length < kernelHeight) windowSlots = new Int32Array(kernelHeight);
  const lanes = nchw ? 1 : channels;
  const rowSize = outWidth * lanes;
  // Float32 scratch read as int32 keys: the ring of row maxima, then a row for folding more than three.
  const scratch = scratchF32('maxPool2d.rowMaxima', (span + 1) * rowSize);
  const keys = new Int32Array(scratch.buffer, scratch.byteOffset, (span + 1) * rowSize);
  const bits = new Int32Array(x.buffer, x.byteOffset, x.length);
  const yBits = new Int32Array(y.buffer, y.byteOffset, y.length);
  const images = nchw ? batch * channels : batch;
  const xImage = inHeight * inWidth * lanes;
  const yImage = outHeight * outWidth * lanes;
  for (let n = 0; n < images; n++) poolSeparable(x, bits, n * xImage, y, yBits, n * yImage, lanes, keys, g);
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
    poolPlain(x.data as Float32Array, x.layout === 'NCHW', y, g);
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
