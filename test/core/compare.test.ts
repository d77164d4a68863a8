/** compareTensors and assertClose: the allclose rule, special values, the first mismatch, shape reports. */
import { assertClose, compareTensors, tensor, unravel, zeros } from '@shuffle/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { case4, indices, layouts, otherLayout, shape4 } from './support.js';

const scalar = (v: number) => tensor([v], [1], 'NCHW', 'float64');
const vector = (v: number[]) => tensor(v, [v.length], 'NCHW', 'float64');
const passes = (actual: number, expected: number, tolerance = {}) => compareTensors(scalar(actual), scalar(expected), tolerance).ok;

describe('compareTensors: the allclose rule', () => {
  it('an element passes exactly when |actual - expected| <= atol + rtol * |expected|', () => {
    const finite = fc.double({ min: -1e6, max: 1e6, noNaN: true });
    const tol = fc.double({ min: 0, max: 10, noNaN: true });
    fc.assert(
      fc.property(finite, finite, tol, tol, (actual, expected, atol, rtol) => {
        const ok = Math.abs(actual - expected) <= atol + rtol * Math.abs(expected);
        return passes(actual, expected, { atol, rtol }) === ok;
      }),
    );
  });

  it('is exact by default, and the boundary itself passes', () => {
    expect(passes(1, 1)).toBe(true);
    expect(passes(1, 1 + 2 ** -52)).toBe(false);
    expect(passes(1.5, 1, { atol: 0.5 })).toBe(true);
    expect(passes(1.5, 1, { atol: 0.25, rtol: 0.25 })).toBe(true);
    expect(passes(1.5, 1, { atol: 0.25, rtol: 0.24 })).toBe(false);
    expect(passes(-0, 0)).toBe(true);
  });

  it('rtol is relative to the expected value, not the actual one', () => {
    expect(passes(1, 2, { rtol: 0.6 })).toBe(true); // |1 - 2| <= 0.6 * 2
    expect(passes(2, 1, { rtol: 0.6 })).toBe(false); // |2 - 1| > 0.6 * 1
  });

  it('NaN matches NaN, and only NaN, whatever the tolerance', () => {
    expect(passes(Number.NaN, Number.NaN)).toBe(true);
    for (const tolerance of [{}, { atol: 1e9 }, { rtol: 1e9 }, { atol: 1, rtol: 1 }]) {
      expect(passes(Number.NaN, 1, tolerance)).toBe(false);
      expect(passes(1, Number.NaN, tolerance)).toBe(false);
      expect(passes(Number.NaN, Number.POSITIVE_INFINITY, tolerance)).toBe(false);
      expect(passes(Number.POSITIVE_INFINITY, Number.NaN, tolerance)).toBe(false);
    }
  });

  it('an infinity matches the same infinity, and nothing else, whatever the tolerance', () => {
    const inf = Number.POSITIVE_INFINITY;
    expect(passes(inf, inf)).toBe(true);
    expect(passes(-inf, -inf)).toBe(true);
    for (const tolerance of [{}, { atol: 1e9 }, { rtol: 0.1 }, { rtol: 1e9 }, { atol: 1, rtol: 1 }]) {
      expect(passes(-inf, inf, tolerance)).toBe(false);
      expect(passes(inf, -inf, tolerance)).toBe(false);
      expect(passes(5, inf, tolerance)).toBe(false);
      expect(passes(inf, 5, tolerance)).toBe(false);
      expect(passes(1e308, inf, tolerance)).toBe(false);
    }
  });

  it('reports the largest absolute and relative errors (infinite for a NaN or infinity mismatch)', () => {
    const c = compareTensors(vector([1, 2.5, 10, 0.5]), vector([1, 2, 8, 0]));
    expect(c.maxAbsError).toBe(2);
    expect(c.maxRelError).toBe(0.25); // 0.5 / 2 and 2 / 8; the expected 0 is left out of the relative error
    expect(c.mismatches).toBe(3);
    const special = compareTensors(vector([Number.NaN, 3]), vector([1, Number.POSITIVE_INFINITY]));
    expect(special.maxAbsError).toBe(Number.POSITIVE_INFINITY);
    expect(special.maxRelError).toBe(Number.POSITIVE_INFINITY);
    const same = compareTensors(vector([Number.NaN, Number.NEGATIVE_INFINITY]), vector([Number.NaN, Number.NEGATIVE_INFINITY]));
    expect([same.ok, same.maxAbsError, same.maxRelError, same.mismatches, same.firstMismatch]).toEqual([true, 0, 0, 0, null]);
  });

  it('a tensor always matches itself and its own copy in the other layout and dtype', () => {
    fc.assert(
      fc.property(case4, ({ shape, dtype, layout, values }) => {
        const t = tensor(values, shape, layout, dtype);
        expect(compareTensors(t, t).ok).toBe(true);
        expect(compareTensors(t.toLayout(otherLayout(layout)).astype('float64'), t).ok).toBe(true);
      }),
    );
  });
});

describe('compareTensors: the first mismatch', () => {
  /** A 4-D tensor with a nonempty set of perturbed row-major positions. */
  const perturbed = shape4
    .filter((s) => s.every((d) => d > 0))
    .chain((shape) => {
      const size = shape.reduce((a, b) => a * b, 1);
      return fc.record({
        shape: fc.constant([...shape]),
        positions: fc.uniqueArray(fc.integer({ min: 0, max: size - 1 }), { minLength: 1, maxLength: size }),
        actualLayout: layouts,
        expectedLayout: layouts,
      });
    });

  it('is the first logical (row-major) index, whatever the two layouts, with both values', () => {
    fc.assert(
      fc.property(perturbed, ({ shape, positions, actualLayout, expectedLayout }) => {
        const size = shape.reduce((a, b) => a * b, 1);
        const logical = Array.from({ length: size }, (_, i) => i);
        const changed = logical.map((v, i) => (positions.includes(i) ? v + 0.5 : v));
        const actual = tensor(changed, shape).toLayout(actualLayout);
        const expected = tensor(logical, shape).toLayout(expectedLayout);
        const c = compareTensors(actual, expected, { atol: 0.25 });
        const first = Math.min(...positions);
        expect(c.ok).toBe(false);
        expect(c.shapesMatch).toBe(true);
        expect(c.mismatches).toBe(positions.length);
        expect(c.firstMismatch).toEqual({ index: [...indices(shape)][first]?.[0], actual: first + 0.5, expected: first });
        expect(compareTensors(actual, expected, { atol: 0.5 }).ok).toBe(true);
      }),
    );
  });

  it('unravel is the inverse of row-major order', () => {
    fc.assert(
      fc.property(shape4, (shape) => {
        for (const [index, flat] of indices(shape)) expect(unravel(flat, shape)).toEqual(index);
      }),
    );
  });
});

describe('shape mismatches', () => {
  it('a different shape is reported as such, even with the same number of elements', () => {
    for (const [a, b] of [
      [
        [2, 3],
        [3, 2],
      ],
      [[6], [2, 3]],
      [
        [1, 2, 3, 1],
        [1, 2, 3],
      ],
      [[], [1]],
    ]) {
      const c = compareTensors(zeros(a as number[]), zeros(b as number[]));
      expect([c.ok, c.shapesMatch, c.firstMismatch, c.mismatches]).toEqual([false, false, null, 0]);
    }
  });

  it('assertClose names both shapes', () => {
    expect(() => assertClose(tensor([1, 2, 3, 4, 5, 6], [2, 3]), tensor([1, 2, 3, 4, 5, 6], [3, 2]), {}, 'y')).toThrow(
      /^y: shape \[2, 3\] differs from expected \[3, 2\]$/,
    );
  });
});

describe('assertClose', () => {
  it('passes silently when the tensors match', () => {
    expect(() => assertClose(vector([1, 2]), vector([1.05, 2]), { atol: 0.1 })).not.toThrow();
  });

  it('reports the label, how many differ, the tolerance, the first mismatch and the largest errors', () => {
    const actual = tensor([0, 1, 2, 3, 4, 5, 6, 7.5], [1, 2, 2, 2]).toLayout('NHWC');
    const expected = tensor([0, 1, 2, 3, 4, 5.5, 6, 7], [1, 2, 2, 2]);
    expect(() => assertClose(actual, expected, { atol: 0.1, rtol: 0.01 }, 'dx')).toThrow(
      /^dx: 2 of 8 elements differ beyond atol=0\.1, rtol=0\.01; first at \[0, 1, 0, 1\]: got 5, expected 5\.5; max abs error 5\.000e-1, max rel error 9\.091e-2$/,
    );
  });

  it('uses "tensors" as the default label and zero tolerances by default', () => {
    expect(() => assertClose(scalar(1), scalar(1 + 1e-12))).toThrow(
      /^tensors: 1 of 1 elements differ beyond atol=0, rtol=0; first at \[0\]/,
    );
  });
});
