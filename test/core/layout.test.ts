/**
 * Layouts: a round trip through the other layout is exact, and logical indexing never depends on the
 * layout. Each property is a named predicate over an implementation, so the same predicate also runs
 * against deliberately broken implementations written here, to show that it really catches them.
 */
import { type Layout, stridesOf, Tensor, tensor } from '@shuffle/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { anyShape, type Case4, case4, indices, memoryPosition, otherLayout, sameElements, values } from './support.js';

/** What the layout properties exercise: converting between layouts, and the strides of a layout. */
interface LayoutImpl {
  toLayout(t: Tensor, layout: Layout): Tensor;
  stridesOf(shape: readonly number[], layout: Layout): readonly number[];
}

const core: LayoutImpl = { toLayout: (t, layout) => t.toLayout(layout), stridesOf };

/** Converting to the other layout and back gives the very same elements (NaN, -0 included), dtype and shape. */
function roundTripIsExact(impl: LayoutImpl, { shape, dtype, layout, values }: Case4): boolean {
  const t = tensor(values, shape, layout, dtype);
  const there = impl.toLayout(t, otherLayout(layout));
  const back = impl.toLayout(there, layout);
  return (
    there.layout === otherLayout(layout) &&
    there.data !== t.data &&
    back.layout === layout &&
    back.dtype === dtype &&
    back.shape.join() === shape.join() &&
    sameElements(back.data, t.data)
  );
}

/**
 * At every logical index: both layouts hold the same element, at the memory position the layout's
 * definition gives; `offset` is the dot product of the index with `strides`, which are the strides
 * `stridesOf` computes; and the offsets cover the data exactly once.
 */
function indexingIsLayoutIndependent(impl: LayoutImpl, { shape, dtype, layout, values }: Case4): boolean {
  const t = tensor(values, shape, layout, dtype);
  const u = impl.toLayout(t, otherLayout(layout));
  for (const x of [t, u]) {
    const strides = impl.stridesOf(shape, x.layout);
    if (x.strides.join() !== strides.join()) return false;
    const seen = new Set<number>();
    for (const [index] of indices(shape)) {
      const offset = x.offset(index);
      if (offset !== index.reduce((sum, i, d) => sum + i * (strides[d] as number), 0)) return false;
      if (offset !== memoryPosition(shape, x.layout, index)) return false;
      seen.add(offset);
    }
    if (seen.size !== x.size || [...seen].some((o) => o < 0 || o >= x.size)) return false;
  }
  for (const [index] of indices(shape)) {
    if (!Object.is(t.get(index), u.get(index))) return false;
    if (!Object.is(u.get(index), t.data[memoryPosition(shape, layout, index)])) return false;
  }
  return true;
}

// Broken implementations, each a plausible bug.

/** A layout conversion by logical loops, with optional bugs. */
function convert(t: Tensor, layout: Layout, bugs: { float32Only?: boolean; swapHW?: 'always' | 'toNchw' } = {}): Tensor {
  const [n, c, h, w] = t.shape as [number, number, number, number];
  const out = bugs.float32Only || t.dtype === 'float32' ? new Float32Array(t.size) : new Float64Array(t.size);
  const swap = bugs.swapHW === 'always' || (bugs.swapHW === 'toNchw' && layout === 'NCHW');
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          // The bug: the NHWC position computed as if it were NWHC.
          const nhwc = swap ? ((b * w + x) * h + y) * c + ch : ((b * h + y) * w + x) * c + ch;
          const nchw = ((b * c + ch) * h + y) * w + x;
          if (layout === 'NHWC') out[nhwc] = t.data[nchw] as number;
          else out[nchw] = t.data[nhwc] as number;
        }
      }
    }
  }
  return new Tensor(out, t.shape, layout);
}

const lossy: LayoutImpl = { toLayout: (t, layout) => convert(t, layout, { float32Only: true }), stridesOf };
const oneWayTransposed: LayoutImpl = { toLayout: (t, layout) => convert(t, layout, { swapHW: 'toNchw' }), stridesOf };
const transposed: LayoutImpl = { toLayout: (t, layout) => convert(t, layout, { swapHW: 'always' }), stridesOf };
const wrongStrides: LayoutImpl = {
  toLayout: core.toLayout,
  stridesOf: (shape, layout) => {
    if (layout === 'NCHW') return stridesOf(shape, layout);
    const [, c, h, w] = shape as [number, number, number, number];
    return [h * w * c, 1, c, h * c]; // NWHC: H and W exchanged
  },
};

/** A deterministic check that fast-check finds a counterexample (the broken code fails the property). */
function findsCounterexample(predicate: (impl: LayoutImpl, c: Case4) => boolean, impl: LayoutImpl): boolean {
  return fc.check(
    fc.property(case4, (c) => predicate(impl, c)),
    { seed: 20240601, numRuns: 300 },
  ).failed;
}

const edgeShapes = [
  [1, 1, 1, 1],
  [2, 3, 1, 1],
  [1, 1, 5, 7],
  [3, 5, 2, 4],
  [0, 3, 2, 2],
  [2, 0, 1, 1],
  [2, 3, 0, 4],
  [0, 0, 0, 0],
];

describe('layout round trip', () => {
  it('NCHW -> NHWC -> NCHW and NHWC -> NCHW -> NHWC are exact, bit for bit', () => {
    fc.assert(fc.property(case4, (c) => roundTripIsExact(core, c)));
  });

  it.each(edgeShapes)('is exact for the edge shape [%i, %i, %i, %i]', (...shape) => {
    for (const dtype of ['float32', 'float64'] as const) {
      for (const layout of ['NCHW', 'NHWC'] as const) {
        fc.assert(
          fc.property(values(shape, dtype), (v) => roundTripIsExact(core, { shape, dtype, layout, values: v })),
          { numRuns: 10 },
        );
      }
    }
  });

  it('the predicate fails for a conversion that loses float64 precision', () => {
    expect(findsCounterexample(roundTripIsExact, lossy)).toBe(true);
  });

  it('the predicate fails for a conversion whose way back transposes H and W', () => {
    expect(findsCounterexample(roundTripIsExact, oneWayTransposed)).toBe(true);
  });

  it('toLayout to the layout a tensor already has returns the tensor itself', () => {
    fc.assert(
      fc.property(case4, ({ shape, dtype, layout, values: v }) => {
        const t = tensor(v, shape, layout, dtype);
        return t.toLayout(layout) === t;
      }),
    );
  });
});

describe('logical indexing', () => {
  it('does not depend on the layout; strides agree with offset()', () => {
    fc.assert(fc.property(case4, (c) => indexingIsLayoutIndependent(core, c)));
  });

  it.each(edgeShapes)('holds for the edge shape [%i, %i, %i, %i]', (...shape) => {
    for (const layout of ['NCHW', 'NHWC'] as const) {
      const v = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i);
      expect(indexingIsLayoutIndependent(core, { shape, dtype: 'float64', layout, values: v })).toBe(true);
    }
  });

  it('the predicate fails for wrong NHWC strides', () => {
    expect(findsCounterexample(indexingIsLayoutIndependent, wrongStrides)).toBe(true);
  });

  it('the predicate fails for a conversion that transposes H and W both ways (which the round trip misses)', () => {
    expect(findsCounterexample(indexingIsLayoutIndependent, transposed)).toBe(true);
    expect(findsCounterexample(roundTripIsExact, transposed)).toBe(false);
  });

  it('any other rank is row-major NCHW, with offsets covering the data once', () => {
    fc.assert(
      fc.property(anyShape, (shape) => {
        const size = shape.reduce((a, b) => a * b, 1);
        const t = tensor(
          Array.from({ length: size }, (_, i) => i),
          shape,
        );
        expect(t.layout).toBe('NCHW');
        expect(t.rank).toBe(shape.length);
        for (const [index, flat] of indices(shape)) {
          expect(t.offset(index)).toBe(flat);
          expect(t.get(index)).toBe(flat);
        }
      }),
    );
  });

  it('set writes the element get reads, and only that one, in either layout', () => {
    fc.assert(
      fc.property(case4, ({ shape, dtype, layout, values: v }) => {
        const t = tensor(v, shape, layout, dtype);
        for (const [index, flat] of indices(shape)) {
          t.set(index, flat + 0.5);
          expect(t.get(index)).toBe(flat + 0.5);
        }
        expect(t.toArray()).toEqual(Array.from({ length: t.size }, (_, flat) => flat + 0.5));
      }),
    );
  });
});
