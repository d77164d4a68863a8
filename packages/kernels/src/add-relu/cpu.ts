import { Tensor } from '@shuffle/core';
import { resultF32 } from '../common/arena.js';
import { reluOf } from '../relu/cpu.js';
import { addReluReference } from './reference.js';
import { type AddReluOps, checkAddRelu, checkAddReluBackward } from './spec.js';

/*
 * One flat loop over the shared layout, relu without a data-dependent branch (see reluOf). The backward
 * passes dy's bits where a + b > 0 and +0 elsewhere, through an all-ones / all-zeros 32-bit mask as relu's
 * backward does (a compare-and-branch would mispredict half the time). The sum of two float32 values is
 * positive exactly when its float32 rounding is, so the mask is the forward's on every element.
 * float64 (gradient checks only) goes to the reference.
 */
export const addReluCpu: AddReluOps = {
  addRelu(a, b) {
    checkAddRelu(a, b);
    if (a.dtype === 'float64') return addReluReference.addRelu(a, b);
    const as = a.data as Float32Array;
    const bs = b.data as Float32Array;
    const y = resultF32(a.size);
    for (let i = 0; i < y.length; i++) y[i] = reluOf((as[i] as number) + (bs[i] as number));
    return new Tensor(y, a.shape, a.layout);
  },

  addReluBackward(dy, a, b) {
    checkAddReluBackward(dy, a, b);
    if (a.dtype === 'float64') return addReluReference.addReluBackward(dy, a, b);
    const as = a.data as Float32Array;
    const bs = b.data as Float32Array;
    const dyBits = new Int32Array(dy.data.buffer, dy.data.byteOffset, dy.size);
    const da = resultF32(a.size);
    const daBits = new Int32Array(da.buffer, da.byteOffset, da.length);
    for (let i = 0; i < da.length; i++) daBits[i] = (dyBits[i] as number) & -+((as[i] as number) + (bs[i] as number) > 0);
    const db = resultF32(b.size);
    db.set(da);
    return { da: new Tensor(da, a.shape, a.layout), db: new Tensor(db, b.shape, b.layout) };
  },
};
