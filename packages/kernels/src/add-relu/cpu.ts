import { Tensor } from '@shuffle/core';
import { resultF32 } from '../common/arena.js';
import { addReluReference } from './reference.js';
import { type AddReluOps, checkAddRelu, checkAddReluBackward } from './spec.js';

/*
 * One flat loop over the shared layout. Math.max(v, 0) is branch-free and is relu exactly (NaN stays NaN,
 * -0 becomes +0). The backward's mask is the forward's sum rounded to float32 (what the forward stored
 * before the max), so both agree on every element, ties at 0 included.
 * float64 (gradient checks only) goes to the reference.
 */
export const addReluCpu: AddReluOps = {
  addRelu(a, b) {
    checkAddRelu(a, b);
    if (a.dtype === 'float64') return addReluReference.addRelu(a, b);
    const as = a.data as Float32Array;
    const bs = b.data as Float32Array;
    const y = resultF32(a.size);
    for (let i = 0; i < y.length; i++) y[i] = Math.max((as[i] as number) + (bs[i] as number), 0);
    return new Tensor(y, a.shape, a.layout);
  },

  addReluBackward(dy, a, b) {
    checkAddReluBackward(dy, a, b);
    if (a.dtype === 'float64') return addReluReference.addReluBackward(dy, a, b);
    const as = a.data as Float32Array;
    const bs = b.data as Float32Array;
    const dys = dy.data as Float32Array;
    const da = resultF32(a.size);
    for (let i = 0; i < da.length; i++) da[i] = Math.fround((as[i] as number) + (bs[i] as number)) > 0 ? (dys[i] as number) : 0;
    const db = resultF32(b.size);
    db.set(da);
    return { da: new Tensor(da, a.shape, a.layout), db: new Tensor(db, b.shape, b.layout) };
  },
};
