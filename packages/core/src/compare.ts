import { describe, fail } from './errors.js';
import type { Tensor } from './tensor.js';

export interface Tolerance {
  /** Absolute tolerance. */
  atol: number;
  /** Relative tolerance, against the expected value. */
  rtol: number;
}

export interface Comparison {
  ok: boolean;
  shapesMatch: boolean;
  maxAbsError: number;
  /** max |actual - expected| / |expected| over elements with expected != 0. */
  maxRelError: number;
  /** The first logical index (row-major order) where |actual - expected| > atol + rtol * |expected|. */
  firstMismatch: { index: number[]; actual: number; expected: number } | null;
  mismatches: number;
}

/**
 * Compares two tensors element by element at the same logical index, so their layouts and dtypes may
 * differ. An element passes when |actual - expected| <= atol + rtol * |expected| (numpy's `allclose`
 * rule); NaN matches only NaN and an infinity only the same infinity.
 */
export function compareTensors(actual: Tensor, expected: Tensor, { atol = 0, rtol = 0 }: Partial<Tolerance> = {}): Comparison {
  if (!(atol >= 0 && rtol >= 0)) fail('compareTensors', 'tolerance', 'atol >= 0 and rtol >= 0', `atol=${atol}, rtol=${rtol}`);
  const shapesMatch = actual.shape.length === expected.shape.length && actual.shape.every((d, i) => d === expected.shape[i]);
  const result: Comparison = { ok: shapesMatch, shapesMatch, maxAbsError: 0, maxRelError: 0, firstMismatch: null, mismatches: 0 };
  if (!shapesMatch) return result;
  const a = actual.toLayout('NCHW').data;
  const e = expected.toLayout('NCHW').data;
  for (let i = 0; i < e.length; i++) {
    const av = a[i] as number;
    const ev = e[i] as number;
    if (Object.is(av, ev) || av === ev || (Number.isNaN(av) && Number.isNaN(ev))) continue;
    // Past the equality test, a NaN or an infinity on either side is a mismatch whatever the tolerance
    // (rtol * |Infinity| would otherwise let any number match an infinity).
    const finite = Number.isFinite(av) && Number.isFinite(ev);
    const absError = finite ? Math.abs(av - ev) : Number.POSITIVE_INFINITY;
    result.maxAbsError = Math.max(result.maxAbsError, absError);
    if (ev !== 0) result.maxRelError = Math.max(result.maxRelError, finite ? absError / Math.abs(ev) : Number.POSITIVE_INFINITY);
    if (!(finite && absError <= atol + rtol * Math.abs(ev))) {
      result.mismatches++;
      result.ok = false;
      result.firstMismatch ??= { index: unravel(i, expected.shape), actual: av, expected: ev };
    }
  }
  return result;
}

/** Throws a readable report unless `actual` matches `expected` within the tolerance. */
export function assertClose(actual: Tensor, expected: Tensor, tolerance: Partial<Tolerance> = {}, label = 'tensors'): void {
  const c = compareTensors(actual, expected, tolerance);
  if (c.ok) return;
  if (!c.shapesMatch) throw new Error(`${label}: shape ${describe(actual.shape)} differs from expected ${describe(expected.shape)}`);
  const m = c.firstMismatch as NonNullable<Comparison['firstMismatch']>;
  throw new Error(
    `${label}: ${c.mismatches} of ${expected.size} elements differ beyond atol=${tolerance.atol ?? 0}, rtol=${tolerance.rtol ?? 0}; ` +
      `first at ${describe(m.index)}: got ${m.actual}, expected ${m.expected}; ` +
      `max abs error ${c.maxAbsError.toExponential(3)}, max rel error ${c.maxRelError.toExponential(3)}`,
  );
}

/** The logical index of row-major position `flat` in `shape`. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    const extent = shape[d] as number;
    index[d] = flat % extent;
    flat = Math.floor(flat / extent);
  }
  return index;
}
