import { assertClose, LAYOUTS, randomUniform, zerosLike } from '@shuffle/core';
import { add, addBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** Two random tensors of one shape (any rank 0..4; 4-D in either layout) and a third for dy. */
const operands = fc
  .record({
    shape: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 }),
    layout: fc.constantFrom(...LAYOUTS),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  })
  .map(({ shape, layout, seed }) => {
    const options = { low: -1, high: 1, layout: shape.length === 4 ? layout : 'NCHW' } as const;
    return {
      a: randomUniform(shape, { ...options, seed }),
      b: randomUniform(shape, { ...options, seed: seed + 1 }),
      dy: randomUniform(shape, { ...options, seed: seed + 2 }),
    };
  });

describe('add', () => {
  it('adds the elements at each logical index, in the operands layout', () => {
    fc.assert(
      fc.property(operands, ({ a, b }) => {
        const y = add(a, b);
        expect(y.layout).toBe(a.layout);
        expect(y.shape).toEqual(a.shape);
        const sums = a.toArray().map((v, i) => Math.fround(v + (b.toArray()[i] as number)));
        expect(y.toArray()).toEqual(sums);
      }),
    );
  });

  it('is commutative and has zero as identity', () => {
    fc.assert(
      fc.property(operands, ({ a, b }) => {
        assertClose(add(a, b), add(b, a));
        assertClose(add(a, zerosLike(a)), a);
      }),
    );
  });

  it('backward hands dy to both operands as separate fresh copies', () => {
    fc.assert(
      fc.property(operands, ({ a, b, dy }) => {
        const before = dy.data.slice();
        const { da, db } = addBackward(dy, a, b);
        assertClose(da, dy, {}, 'da');
        assertClose(db, dy, {}, 'db');
        expect(da.layout).toBe(a.layout);
        da.data.fill(7);
        expect(db.data, 'db shares memory with da').toEqual(before);
        expect(dy.data, 'dy shares memory with da').toEqual(before);
      }),
    );
  });
});
