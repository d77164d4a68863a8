import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sgemm } from '../../packages/kernels/src/common/gemm.js';
import { releaseScratch, scratchF32 } from '../../packages/kernels/src/common/scratch.js';

/*
 * The packed GEMM against a plain triple loop in double precision. The conv2d and linear suites reach it
 * only through their own shapes; here every operand orientation (row-major, transposed), offsets,
 * gapped row strides, accumulation, edge tiles, and sizes that cross each cache block (MC = 64 rows,
 * KC = 256 terms, NC = 1024 columns) are checked directly.
 */

/** A matrix view as sgemm takes it: element (i, j) at data[offset + i * rowStride + j * colStride]. */
interface View {
  data: Float32Array;
  offset: number;
  rowStride: number;
  colStride: number;
}

/**
 * A rows x cols view inside a larger random buffer: row-major or transposed, with `gap` unused elements
 * after each row (or column) and `offset` unused elements in front, all filled with noise that must
 * neither be read into the product nor be overwritten.
 */
function view(rows: number, cols: number, transposed: boolean, gap: number, offset: number, seed: number): View {
  const lead = transposed ? rows + gap : cols + gap;
  const length = offset + lead * (transposed ? cols : rows);
  const data = new Float32Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 31 - 1;
  }
  return transposed ? { data, offset, rowStride: 1, colStride: lead } : { data, offset, rowStride: lead, colStride: 1 };
}

const at = (v: View, i: number, j: number) => v.data[v.offset + i * v.rowStride + j * v.colStride] as number;

/** Runs sgemm and checks every element of C (and that nothing outside C's view changed). */
function check(m: number, n: number, k: number, a: View, b: View, c: View, accumulate: boolean): void {
  const before = Float32Array.from(c.data);
  sgemm(
    m,
    n,
    k,
    a.data,
    a.offset,
    a.rowStride,
    a.colStride,
    b.data,
    b.offset,
    b.rowStride,
    b.colStride,
    c.data,
    c.offset,
    c.rowStride,
    c.colStride,
    accumulate,
  );
  const inView = new Uint8Array(c.data.length);
  let worst = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = accumulate ? (before[c.offset + i * c.rowStride + j * c.colStride] as number) : 0;
      for (let t = 0; t < k; t++) sum += at(a, i, t) * at(b, t, j);
      const index = c.offset + i * c.rowStride + j * c.colStride;
      inView[index] = 1;
      worst = Math.max(worst, Math.abs((c.data[index] as number) - sum) / (1 + Math.abs(sum)));
    }
  }
  expect(worst).toBeLessThan(1e-5);
  for (let index = 0; index < c.data.length; index++) {
    if (!inView[index]) expect(c.data[index]).toBe(before[index]);
  }
}

describe('sgemm', () => {
  it('matches the triple loop for every orientation, offset, gap and accumulation', () => {
    fc.assert(
      fc.property(
        fc.record({
          m: fc.integer({ min: 1, max: 19 }),
          n: fc.integer({ min: 1, max: 19 }),
          k: fc.integer({ min: 1, max: 23 }),
          aT: fc.boolean(),
          bT: fc.boolean(),
          cT: fc.boolean(),
          gaps: fc.tuple(fc.nat(3), fc.nat(3), fc.nat(3)),
          offsets: fc.tuple(fc.nat(5), fc.nat(5), fc.nat(5)),
          accumulate: fc.boolean(),
          seed: fc.nat(),
        }),
        ({ m, n, k, aT, bT, cT, gaps, offsets, accumulate, seed }) => {
          const a = view(m, k, aT, gaps[0], offsets[0], seed);
          const b = view(k, n, bT, gaps[1], offsets[1], seed + 1);
          const c = view(m, n, cT, gaps[2], offsets[2], seed + 2);
          check(m, n, k, a, b, c, accumulate);
        },
      ),
      { numRuns: 300 },
    );
  });

  it.each([
    // [m, n, k]: full 4x4 tiles only, then every block boundary crossed with ragged edges
    [64, 64, 64],
    [67, 9, 300],
    [130, 13, 7],
    [5, 1030, 3],
    [21, 1031, 513],
  ])('crosses the cache blocks at m=%i n=%i k=%i, in each orientation', (m, n, k) => {
    for (const [aT, bT] of [
      [false, false],
      [true, true],
    ] as const) {
      const a = view(m, k, aT, 1, 3, m);
      const b = view(k, n, bT, 2, 1, n);
      const c = view(m, n, false, 1, 2, k);
      check(m, n, k, a, b, c, false);
      check(m, n, k, a, b, c, true);
    }
  });

  it('zeroes C for k = 0, and leaves it when accumulating; does nothing for m or n = 0', () => {
    const c = view(3, 5, false, 1, 1, 7);
    const before = Float32Array.from(c.data);
    const empty = new Float32Array(0);
    sgemm(3, 5, 0, empty, 0, 0, 1, empty, 0, 5, 1, c.data, c.offset, c.rowStride, c.colStride, true);
    expect(c.data).toEqual(before);
    sgemm(0, 5, 4, empty, 0, 4, 1, empty, 0, 5, 1, c.data, c.offset, c.rowStride, c.colStride, false);
    expect(c.data).toEqual(before);
    sgemm(3, 5, 0, empty, 0, 0, 1, empty, 0, 5, 1, c.data, c.offset, c.rowStride, c.colStride, false);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) expect(at(c, i, j)).toBe(0);
    expect(c.data[0]).toBe(before[0]); // the offset element in front of the view
  });

  it('gives the same result after its scratch panels grew for a bigger product, or were released', () => {
    const small = () => {
      const a = view(6, 10, false, 0, 0, 1);
      const b = view(10, 7, true, 0, 0, 2);
      const c = view(6, 7, false, 0, 0, 3);
      sgemm(6, 7, 10, a.data, 0, a.rowStride, a.colStride, b.data, 0, b.rowStride, b.colStride, c.data, 0, c.rowStride, c.colStride, false);
      return c.data;
    };
    const first = small();
    check(70, 1100, 300, view(70, 300, false, 0, 0, 4), view(300, 1100, false, 0, 0, 5), view(70, 1100, false, 0, 0, 6), false);
    expect(small()).toEqual(first);
    releaseScratch();
    expect(small()).toEqual(first);
  });
});

describe('scratchF32', () => {
  it('reuses a slot while it is long enough, grows it otherwise, and keeps slots apart', () => {
    releaseScratch();
    const a = scratchF32('test.a', 100);
    expect(a.length).toBeGreaterThanOrEqual(100);
    expect(scratchF32('test.a', 50)).toBe(a);
    expect(scratchF32('test.a', 100)).toBe(a);
    const b = scratchF32('test.b', 10);
    expect(b).not.toBe(a);
    const grown = scratchF32('test.a', 101);
    expect(grown).not.toBe(a);
    expect(grown.length).toBeGreaterThanOrEqual(150); // grows by half again, so slow growth reallocates rarely
    expect(scratchF32('test.a', 120)).toBe(grown);
    releaseScratch();
    expect(scratchF32('test.a', 10)).not.toBe(grown);
  });
});
