/** Tensor construction, copies, reshape, dtype conversion and the plain creation helpers. */
import { type DType, full, ones, shapeSize, Tensor, tensor, zeros, zerosLike } from '@shuffle/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { anyShape, case4, dtypes, element, indices, layouts, memoryPosition, sameElements, shape4 } from './support.js';

const round = (dtype: DType, v: number) => (dtype === 'float32' ? Math.fround(v) : v);

describe('tensor()', () => {
  it('copies its data: changing the source afterwards leaves the tensor alone', () => {
    fc.assert(
      fc.property(case4, fc.constantFrom('array', 'float32', 'float64'), ({ shape, dtype, layout, values: v }, kind) => {
        const source = kind === 'array' ? [...v] : kind === 'float32' ? Float32Array.from(v) : Float64Array.from(v);
        const t = tensor(source, shape, layout, dtype);
        const before = Array.from(t.data);
        expect(t.data).not.toBe(source);
        for (let i = 0; i < source.length; i++) source[i] = 12345;
        expect(sameElements(t.data, before)).toBe(true);
      }),
    );
  });

  it('infers the dtype from the data: Float64Array gives float64, anything else float32', () => {
    expect(tensor(new Float64Array([1, 2]), [2]).dtype).toBe('float64');
    expect(tensor(new Float32Array([1, 2]), [2]).dtype).toBe('float32');
    expect(tensor([1, 2], [2]).dtype).toBe('float32');
    expect(tensor(new Int32Array([1, 2]), [2]).dtype).toBe('float32');
    expect(tensor(new Float64Array([1, 2]), [2]).data).toBeInstanceOf(Float64Array);
    expect(tensor([1, 2], [2]).data).toBeInstanceOf(Float32Array);
  });

  it('an explicit dtype wins, and the values are rounded to it', () => {
    fc.assert(
      fc.property(fc.array(fc.double(), { minLength: 1, maxLength: 12 }), dtypes, (v, dtype) => {
        const t = tensor(Float64Array.from(v), [v.length], 'NCHW', dtype);
        expect(t.dtype).toBe(dtype);
        expect(
          sameElements(
            t.data,
            v.map((x) => round(dtype, x)),
          ),
        ).toBe(true);
      }),
    );
  });

  it('takes data in the given layout: the element at [n, c, h, w] comes from its memory position', () => {
    fc.assert(
      fc.property(case4, ({ shape, dtype, layout, values: v }) => {
        const t = tensor(v, shape, layout, dtype);
        expect([t.layout, t.dtype, [...t.shape]]).toEqual([layout, dtype, shape]);
        for (const [index] of indices(shape)) {
          expect(Object.is(t.get(index), round(dtype, v[memoryPosition(shape, layout, index)] as number))).toBe(true);
        }
      }),
    );
  });

  it('defaults to NCHW, and reports rank and size; a scalar shape [] holds one element', () => {
    const t = tensor([1, 2, 3, 4, 5, 6], [1, 2, 3, 1]);
    expect([t.layout, t.rank, t.size]).toEqual(['NCHW', 4, 6]);
    const s = tensor([7], []);
    expect([s.rank, s.size, s.get([])]).toEqual([0, 1, 7]);
    expect(String(t)).toBe('Tensor([1, 2, 3, 1], NCHW, float32)');
  });

  it('keeps its own frozen copy of the shape', () => {
    const shape = [2, 3];
    const t = tensor([1, 2, 3, 4, 5, 6], shape);
    shape[0] = 99;
    expect(t.shape).toEqual([2, 3]);
    expect(Object.isFrozen(t.shape)).toBe(true);
    expect(Object.isFrozen(t.strides)).toBe(true);
  });

  it('the Tensor constructor takes ownership of its data (no copy)', () => {
    const data = new Float32Array([1, 2, 3]);
    const t = new Tensor(data, [3]);
    expect(t.data).toBe(data);
  });
});

describe('toArray', () => {
  it('lists the elements in logical row-major order, whatever the layout', () => {
    fc.assert(
      fc.property(case4, ({ shape, dtype, layout, values: v }) => {
        const t = tensor(v, shape, layout, dtype);
        const list = t.toArray();
        expect(Array.isArray(list)).toBe(true);
        expect(list).toHaveLength(t.size);
        for (const [index, flat] of indices(shape)) expect(Object.is(list[flat], t.get(index))).toBe(true);
      }),
    );
  });

  it('is a copy', () => {
    const t = tensor([1, 2], [2]);
    t.toArray()[0] = 5;
    expect(t.get([0])).toBe(1);
  });
});

describe('reshape', () => {
  /** The same small factors (a 0 among them now and then) grouped into dimensions in two random ways. */
  const factorsArb = fc.array(fc.constantFrom(0, 1, 2, 2, 3, 5), { maxLength: 6 });
  const grouping = (fs: number[]) =>
    fc
      .tuple(fc.integer({ min: fs.length ? 1 : 0, max: 4 }), fc.array(fc.nat(), { minLength: fs.length, maxLength: fs.length }))
      .map(([rank, slots]) => {
        const dims = new Array<number>(rank).fill(1);
        fs.forEach((f, i) => {
          const d = (slots[i] as number) % rank;
          dims[d] = (dims[d] as number) * f;
        });
        return dims;
      });
  const reshapeCase = factorsArb.chain((fs) => fc.record({ shape: grouping(fs), target: grouping(fs), dtype: dtypes }));

  it('keeps the elements in row-major order, copies, and stays NCHW', () => {
    fc.assert(
      fc.property(reshapeCase, ({ shape, target, dtype }) => {
        const size = shapeSize(shape);
        const t = tensor(
          Array.from({ length: size }, (_, i) => i),
          shape,
          'NCHW',
          dtype,
        );
        const r = t.reshape(target);
        expect([...r.shape]).toEqual(target);
        expect([r.layout, r.dtype]).toEqual(['NCHW', dtype]);
        expect(r.toArray()).toEqual(t.toArray());
        expect(r.data).not.toBe(t.data);
        if (size > 0) {
          r.data[0] = -1;
          expect(t.data[0]).toBe(0);
        }
      }),
    );
  });

  it('reshapes a 4-D NCHW tensor to [N, C*H*W] and back', () => {
    const t = tensor(
      Array.from({ length: 24 }, (_, i) => i),
      [2, 3, 2, 2],
    );
    const flat = t.reshape([2, 12]);
    expect(flat.get([1, 5])).toBe(t.get([1, 1, 0, 1]));
    expect(flat.reshape([2, 3, 2, 2]).toArray()).toEqual(t.toArray());
  });

  it('rejects an NHWC tensor, even when the new shape would fit', () => {
    fc.assert(
      fc.property(shape4, (shape) => {
        const t = zeros(shape, { layout: 'NHWC' });
        expect(() => t.reshape([shapeSize(shape)])).toThrow(
          /^Tensor\.reshape: this expects a tensor in NCHW .*toLayout\("NCHW"\).*, got an NHWC tensor$/,
        );
        expect(t.toLayout('NCHW').reshape([shapeSize(shape)]).size).toBe(shapeSize(shape));
      }),
      { numRuns: 20 },
    );
  });
});

describe('clone and astype', () => {
  it('clone is an independent copy with the same shape, layout, dtype and elements', () => {
    fc.assert(
      fc.property(case4, ({ shape, dtype, layout, values: v }) => {
        const t = tensor(v, shape, layout, dtype);
        const c = t.clone();
        expect([[...c.shape], c.layout, c.dtype]).toEqual([[...t.shape], t.layout, t.dtype]);
        expect(c.data).not.toBe(t.data);
        expect(sameElements(c.data, t.data)).toBe(true);
        if (c.size > 0) {
          c.data.fill(42);
          expect(sameElements(t.data, tensor(v, shape, layout, dtype).data)).toBe(true);
        }
      }),
    );
  });

  it('astype converts the element type (rounding to float32), keeps layout and shape, and copies', () => {
    fc.assert(
      fc.property(case4, dtypes, ({ shape, dtype, layout, values: v }, to) => {
        const t = tensor(v, shape, layout, dtype);
        const a = t.astype(to);
        expect([[...a.shape], a.layout, a.dtype]).toEqual([[...t.shape], layout, to]);
        expect(a.data).toBeInstanceOf(to === 'float64' ? Float64Array : Float32Array);
        expect(a.data).not.toBe(t.data);
        expect(
          sameElements(
            a.data,
            Array.from(t.data, (x) => round(to, x)),
          ),
        ).toBe(true);
      }),
    );
  });

  it('float32 -> float64 -> float32 is exact', () => {
    fc.assert(
      fc.property(fc.array(fc.float(), { maxLength: 20 }), (v) => {
        const t = tensor(v, [v.length]);
        return sameElements(t.astype('float64').astype('float32').data, t.data);
      }),
    );
  });
});

describe('zeros, ones, full, zerosLike', () => {
  const request = fc.record({ shape: shape4, layout: layouts, dtype: dtypes });

  it.each([
    ['zeros', (s: number[], o: object) => zeros(s, o), 0],
    ['ones', (s: number[], o: object) => ones(s, o), 1],
    ['full', (s: number[], o: object) => full(s, -2.5, o), -2.5],
  ] as const)('%s makes the shape, layout and dtype asked for, every element the value', (_name, make, value) => {
    fc.assert(
      fc.property(request, ({ shape, layout, dtype }) => {
        const t = make([...shape], { layout, dtype });
        expect([[...t.shape], t.layout, t.dtype]).toEqual([shape, layout, dtype]);
        expect(t.data).toBeInstanceOf(dtype === 'float64' ? Float64Array : Float32Array);
        expect(t.size).toBe(shapeSize(shape));
        expect(t.data.every((x) => x === value)).toBe(true);
      }),
    );
  });

  it('default to NCHW float32, for any rank', () => {
    fc.assert(
      fc.property(anyShape, (shape) => {
        for (const t of [zeros(shape), ones(shape), full(shape, 3)]) {
          expect([[...t.shape], t.layout, t.dtype]).toEqual([shape, 'NCHW', 'float32']);
        }
      }),
    );
  });

  it('full rounds the value to the dtype and accepts NaN and infinities', () => {
    fc.assert(
      fc.property(element('float64'), dtypes, (value, dtype) => {
        const t = full([2, 1], value, { dtype });
        return t.data.every((x) => Object.is(x, round(dtype, value)));
      }),
    );
  });

  it('zerosLike matches shape, layout and dtype, is all zeros and shares nothing', () => {
    fc.assert(
      fc.property(case4, ({ shape, dtype, layout, values: v }) => {
        const t = tensor(v, shape, layout, dtype);
        const z = zerosLike(t);
        expect([[...z.shape], z.layout, z.dtype]).toEqual([shape, layout, dtype]);
        expect(z.data).not.toBe(t.data);
        expect(z.data.every((x) => Object.is(x, 0))).toBe(true);
      }),
    );
  });
});
