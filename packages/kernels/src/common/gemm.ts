import { scratchF32 } from './scratch.js';

/*
 * Single-precision matrix product for the fast CPU kernels, in the shape of BLIS / GotoBLAS:
 *
 *   for each block of KC terms of the sum (k0):
 *     pack B[k0.., :] into slivers of KC x NR, each sliver k-major (NR values per k, zero padded)
 *     for each block of MC rows of C (m0):
 *       pack A[m0.., k0..] into slivers of MR x KC, each sliver k-major (MR values per k)
 *       for each sliver of B (j0), for each sliver of A (i0):
 *         micro-kernel: the MR x NR tile of C, kept in MR*NR local variables for the whole KC-term sum
 *
 * JavaScript has no SIMD, so the micro-kernel is scalar: per term it loads MR + NR numbers and does
 * MR * NR multiply-adds on locals (doubles in registers), which is the ratio that decides speed once
 * every load hits L1. Measured on this machine's shared 2-core EPYC (CPU time, best of interleaved runs):
 *   - micro-kernel alone, KC = 256: 4x4 ~5.2 GFLOP/s, 4x8 ~5.0, 8x4 ~5.0, 6x4 ~5.2, 3x4 ~5.5, 2x4 ~3.6.
 *     Past 16 accumulators V8 spills to the stack; below ~12 the loads dominate.
 *   - whole sgemm, 4x8 against 4x4 at the conv shapes (K = 27..80): 15-25% slower (512^3: the same).
 *   - Float64Array panels (no float32 -> double conversion per load): within noise, so float32 (half
 *     the cache footprint); one call per column of tiles instead of per tile: within noise.
 * 4x4 divides every ShuffleNet size (channels per group 20, 40, 60, 80, 160; pixel counts 49, 196, 784,
 * 3136 up to a multiple of 4), so edge tiles stay rare. The whole sgemm reaches 4-5 GFLOP/s of CPU time
 * at the ShuffleNet shapes and 512^3 here (the machine's other tenants share its cores and caches). What
 * bounds it is V8's code per load (index arithmetic, a bounds check, a float32 -> double conversion:
 * ~8 instructions), about 6 instructions per multiply-add in all.
 *
 * Packing costs one pass over B per MC-row block and one over A per KC block, and buys three things:
 * every operand layout (row-major, transposed, strided sub-matrix of an NCHW or NHWC tensor) becomes the
 * same contiguous stream, edge tiles become full tiles (their padding lanes feed only accumulators that
 * are never stored; they are zeroed anyway, so that stale scratch cannot inject NaNs or slow denormals
 * into the arithmetic), and the sliver of B (KC * NR * 4 bytes = 4 KiB) stays in L1 while the MC x KC
 * block of A (64 KiB) streams from L2. At the 1x1 conv shapes packing takes ~9% of the product's time.
 *
 * Every matrix is (data, offset, rowStride, colStride): element (i, j) is data[offset + i * rowStride +
 * j * colStride]. So a transpose is a swap of the strides, and a group's channels inside an NHWC tensor
 * are a view with rowStride = C, no copy.
 */

const MR = 4;
const NR = 4;
/** Terms of the sum per packed block: the B sliver, KC * NR floats, must sit in L1. */
const KC = 256;
/** Rows of A per packed block: MC * KC floats (64 KiB) in L2. */
const MC = 64;
/** Columns of B per packed block: KC * NC floats (1 MiB) in L2/L3, so packing B needs no huge buffer. */
const NC = 1024;

/** The partial tile of an edge: the micro-kernel computes a full MR x NR tile, then stores only what fits. */
const edgeTile = new Float64Array(MR * NR);

/**
 * C = A B, or C += A B when `accumulate`; A is m x k, B is k x n, C is m x n, all float32. See the file
 * comment for the (data, offset, rowStride, colStride) convention. With k = 0, C is zeroed (or left as is
 * when accumulating). C must not overlap A or B.
 */
export function sgemm(
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  aOffset: number,
  aRowStride: number,
  aColStride: number,
  b: Float32Array,
  bOffset: number,
  bRowStride: number,
  bColStride: number,
  c: Float32Array,
  cOffset: number,
  cRowStride: number,
  cColStride: number,
  accumulate: boolean,
): void {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate) zeroMatrix(m, n, c, cOffset, cRowStride, cColStride);
    return;
  }
  // Equal K blocks (e.g. 320 = 2 x 160 rather than 256 + 64) so that no block is a short, overhead-heavy one.
  const kBlocks = Math.ceil(k / KC);
  const kcMax = Math.ceil(k / kBlocks);
  const ncMax = Math.min(n, NC);
  const mcMax = Math.min(m, MC);
  const packedB = scratchF32('gemm.packedB', Math.ceil(ncMax / NR) * NR * kcMax);
  const packedA = scratchF32('gemm.packedA', Math.ceil(mcMax / MR) * MR * kcMax);
  for (let n0 = 0; n0 < n; n0 += NC) {
    const nc = Math.min(NC, n - n0);
    for (let k0 = 0; k0 < k; k0 += kcMax) {
      const kc = Math.min(kcMax, k - k0);
      // The first K block writes C (unless accumulating); later ones add to it.
      const add = accumulate || k0 > 0;
      // B's sliver j holds columns n0 + j*NR.. as rows of the transposed view: rows step bColStride, terms bRowStride.
      packSlivers(packedB, b, bOffset + k0 * bRowStride + n0 * bColStride, bColStride, bRowStride, nc, kc, NR);
      for (let m0 = 0; m0 < m; m0 += MC) {
        const mc = Math.min(MC, m - m0);
        packSlivers(packedA, a, aOffset + m0 * aRowStride + k0 * aColStride, aRowStride, aColStride, mc, kc, MR);
        const cBlock = cOffset + m0 * cRowStride + n0 * cColStride;
        for (let j0 = 0; j0 < nc; j0 += NR) {
          const cols = Math.min(nc - j0, NR);
          const bStart = j0 * kc;
          for (let i0 = 0; i0 < mc; i0 += MR) {
            const rows = Math.min(mc - i0, MR);
            microKernel4x4(
              kc,
              packedA,
              i0 * kc,
              packedB,
              bStart,
              c,
              cBlock + i0 * cRowStride + j0 * cColStride,
              cRowStride,
              cColStride,
              rows,
              cols,
              add,
            );
          }
        }
      }
    }
  }
}

/**
 * The half-open range [begin, end) of part `part` of `parts` nearly equal bands of `length`, cut at
 * multiples of `unit` (the last band takes the remainder). Bands of consecutive parts are contiguous and
 * together cover [0, length) once; a part may be empty when there are more parts than units.
 */
export function band(length: number, part: number, parts: number, unit: number): [number, number] {
  const units = Math.ceil(length / unit);
  const begin = Math.min(length, Math.floor((units * part) / parts) * unit);
  const end = part === parts - 1 ? length : Math.min(length, Math.floor((units * (part + 1)) / parts) * unit);
  return [begin, end];
}

/**
 * Part `part` of `parts` of sgemm(...): the same product restricted to one band of C, cut along C's
 * longer side (rows when m >= n, else columns) at whole tiles, so that the parts can run on different
 * threads and write disjoint elements. Each element of C goes through exactly the operations it would
 * in one sgemm call: its sum runs over the same K blocks (their size depends on k alone) in the same
 * order, and only the tile it sits in changes, which the arithmetic does not see (an edge tile sums in
 * the same doubles and stores the same way). So the parts together are bit-identical to sgemm. The
 * operand along the cut is packed by its part only; the other one (the shorter side) by every part.
 * sgemmPart(0, 1, ...) is sgemm(...).
 */
export function sgemmPart(
  part: number,
  parts: number,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  aOffset: number,
  aRowStride: number,
  aColStride: number,
  b: Float32Array,
  bOffset: number,
  bRowStride: number,
  bColStride: number,
  c: Float32Array,
  cOffset: number,
  cRowStride: number,
  cColStride: number,
  accumulate: boolean,
): void {
  if (parts === 1) {
    sgemm(m, n, k, a, aOffset, aRowStride, aColStride, b, bOffset, bRowStride, bColStride, c, cOffset, cRowStride, cColStride, accumulate);
  } else if (m >= n) {
    const [begin, end] = band(m, part, parts, MR);
    const aStart = aOffset + begin * aRowStride;
    const cStart = cOffset + begin * cRowStride;
    sgemm(
      end - begin,
      n,
      k,
      a,
      aStart,
      aRowStride,
      aColStride,
      b,
      bOffset,
      bRowStride,
      bColStride,
      c,
      cStart,
      cRowStride,
      cColStride,
      accumulate,
    );
  } else {
    const [begin, end] = band(n, part, parts, NR);
    const bStart = bOffset + begin * bColStride;
    const cStart = cOffset + begin * cColStride;
    sgemm(
      m,
      end - begin,
      k,
      a,
      aOffset,
      aRowStride,
      aColStride,
      b,
      bStart,
      bRowStride,
      bColStride,
      c,
      cStart,
      cRowStride,
      cColStride,
      accumulate,
    );
  }
}

/**
 * Copies the rows x terms block of a matrix (element (r, t) at offset + r * rowStride + t * termStride)
 * into slivers of `width` rows: sliver s holds, for each term t, the `width` values of rows s*width..,
 * zero-padded past the last row. Both operands use it: A directly, B through its transposed view.
 */
function packSlivers(
  packed: Float32Array,
  source: Float32Array,
  offset: number,
  rowStride: number,
  termStride: number,
  rows: number,
  terms: number,
  width: number,
): void {
  let to = 0;
  for (let r0 = 0; r0 < rows; r0 += width) {
    const live = Math.min(rows - r0, width);
    const sliverStart = offset + r0 * rowStride;
    if (live === 4 && width === 4) {
      // The common case, unrolled: four rows read side by side.
      let from = sliverStart;
      const r1 = rowStride;
      const r2 = 2 * rowStride;
      const r3 = 3 * rowStride;
      for (let t = 0; t < terms; t++) {
        packed[to] = source[from] as number;
        packed[to + 1] = source[from + r1] as number;
        packed[to + 2] = source[from + r2] as number;
        packed[to + 3] = source[from + r3] as number;
        to += 4;
        from += termStride;
      }
    } else {
      for (let t = 0; t < terms; t++) {
        let from = sliverStart + t * termStride;
        let r = 0;
        for (; r < live; r++) {
          packed[to++] = source[from] as number;
          from += rowStride;
        }
        for (; r < width; r++) packed[to++] = 0;
      }
    }
  }
}

/**
 * The MR x NR = 4 x 4 tile of C at cStart from `terms` k-major steps of a packed A sliver (4 values per
 * step) and a packed B sliver (4 values per step). Stores `rows` x `cols` of it (an edge tile is partial),
 * adding to C when `add`.
 */
function microKernel4x4(
  terms: number,
  packedA: Float32Array,
  aStart: number,
  packedB: Float32Array,
  bStart: number,
  c: Float32Array,
  cStart: number,
  cRowStride: number,
  cColStride: number,
  rows: number,
  cols: number,
  add: boolean,
): void {
  // The tile, row i column j, in locals: V8 keeps most of them in registers for the whole loop.
  let c00 = 0;
  let c01 = 0;
  let c02 = 0;
  let c03 = 0;
  let c10 = 0;
  let c11 = 0;
  let c12 = 0;
  let c13 = 0;
  let c20 = 0;
  let c21 = 0;
  let c22 = 0;
  let c23 = 0;
  let c30 = 0;
  let c31 = 0;
  let c32 = 0;
  let c33 = 0;
  let ia = aStart;
  let ib = bStart;
  const aEnd = aStart + terms * MR;
  // `| 0` keeps the index arithmetic in int32 without overflow checks: measured 2-5% faster.
  for (; ia < aEnd; ia = (ia + MR) | 0, ib = (ib + NR) | 0) {
    const a0 = packedA[ia] as number;
    const a1 = packedA[(ia + 1) | 0] as number;
    const a2 = packedA[(ia + 2) | 0] as number;
    const a3 = packedA[(ia + 3) | 0] as number;
    let bj = packedB[ib] as number;
    c00 += a0 * bj;
    c10 += a1 * bj;
    c20 += a2 * bj;
    c30 += a3 * bj;
    bj = packedB[(ib + 1) | 0] as number;
    c01 += a0 * bj;
    c11 += a1 * bj;
    c21 += a2 * bj;
    c31 += a3 * bj;
    bj = packedB[(ib + 2) | 0] as number;
    c02 += a0 * bj;
    c12 += a1 * bj;
    c22 += a2 * bj;
    c32 += a3 * bj;
    bj = packedB[(ib + 3) | 0] as number;
    c03 += a0 * bj;
    c13 += a1 * bj;
    c23 += a2 * bj;
    c33 += a3 * bj;
  }
  if (rows === MR && cols === NR) {
    const r0 = cStart;
    const r1 = cStart + cRowStride;
    const r2 = r1 + cRowStride;
    const r3 = r2 + cRowStride;
    const j1 = cColStride;
    const j2 = 2 * cColStride;
    const j3 = 3 * cColStride;
    if (add) {
      c00 += c[r0] as number;
      c01 += c[r0 + j1] as number;
      c02 += c[r0 + j2] as number;
      c03 += c[r0 + j3] as number;
      c10 += c[r1] as number;
      c11 += c[r1 + j1] as number;
      c12 += c[r1 + j2] as number;
      c13 += c[r1 + j3] as number;
      c20 += c[r2] as number;
      c21 += c[r2 + j1] as number;
      c22 += c[r2 + j2] as number;
      c23 += c[r2 + j3] as number;
      c30 += c[r3] as number;
      c31 += c[r3 + j1] as number;
      c32 += c[r3 + j2] as number;
      c33 += c[r3 + j3] as number;
    }
    c[r0] = c00;
    c[r0 + j1] = c01;
    c[r0 + j2] = c02;
    c[r0 + j3] = c03;
    c[r1] = c10;
    c[r1 + j1] = c11;
    c[r1 + j2] = c12;
    c[r1 + j3] = c13;
    c[r2] = c20;
    c[r2 + j1] = c21;
    c[r2 + j2] = c22;
    c[r2 + j3] = c23;
    c[r3] = c30;
    c[r3 + j1] = c31;
    c[r3 + j2] = c32;
    c[r3 + j3] = c33;
    return;
  }
  const t = edgeTile;
  t[0] = c00;
  t[1] = c01;
  t[2] = c02;
  t[3] = c03;
  t[4] = c10;
  t[5] = c11;
  t[6] = c12;
  t[7] = c13;
  t[8] = c20;
  t[9] = c21;
  t[10] = c22;
  t[11] = c23;
  t[12] = c30;
  t[13] = c31;
  t[14] = c32;
  t[15] = c33;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const at = cStart + i * cRowStride + j * cColStride;
      const value = t[i * NR + j] as number;
      c[at] = add ? (c[at] as number) + value : value;
    }
  }
}

function zeroMatrix(m: number, n: number, c: Float32Array, offset: number, rowStride: number, colStride: number): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) c[offset + i * rowStride + j * colStride] = 0;
  }
}
