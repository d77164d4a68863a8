import { Tensor } from '@shuffle/core';
import { resultCopyF32, resultF32 } from '../common/arena.js';
import { addReference } from './reference.js';
import { type AddOps, checkAdd, checkAddBackward } from './spec.js';

/*
 * Elementwise over the flat data (a, b, dy and the results share one layout). The backward hands dy to
 * both operands, so it is two copies, which typed-array slice() does as block copies.
 * float64 (gradient checks only) goes to the reference.
 */
function addInto(a: Float32Array, b: Float32Array, y: Float32Array): void {
  const length = y.length;
  for (let i = 0; i < length; i++) y[i] = (a[i] as number) + (b[i] as number);
}

export const addCpu: AddOps = {
  add(a, b) {
    checkAdd(a, b);
    if (a.dtype === 'float64') return addReference.add(a, b);
    const y = resultF32(a.size);
    addInto(a.data as Float32Array, b.data as Float32Array, y);
    return new Tensor(y, a.shape, a.layout);
  },

  addBackward(dy, a, b) {
    checkAddBackward(dy, a, b);
    if (a.dtype === 'float64') return addReference.addBackward(dy, a, b);
    return { da: new Tensor(resultCopyF32(dy.data), a.shape, a.layout), db: new Tensor(resultCopyF32(dy.data), b.shape, b.layout) };
  },
};
