import type { Tensor } from '@shuffle/core';
import { allocLike } from '../common/indexing.js';
import { type AddOps, checkAdd, checkAddBackward } from './spec.js';

/*
 * Elementwise ops do not care about the layout: a, b and y share one layout (checked), so element i
 * of a, of b and of y are the same logical element in any order.
 */
export const addReference: AddOps = {
  add(a: Tensor, b: Tensor) {
    checkAdd(a, b);
    const y = allocLike(a, a.shape);
    for (let i = 0; i < y.size; i++) y.data[i] = (a.data[i] as number) + (b.data[i] as number);
    return y;
  },

  /*
   * y_i = a_i + b_i, so dy_i/da_i = dy_i/db_i = 1 and y_i depends on no other element. The chain rule
   *   dL/da_i = dL/dy_i * dy_i/da_i = dL/dy_i, and likewise dL/db_i = dL/dy_i:
   * the sum passes its gradient unchanged to both operands (each gets its own copy, so a caller may
   * accumulate into one without touching the other).
   */
  addBackward(dy: Tensor, a: Tensor, b: Tensor) {
    checkAddBackward(dy, a, b);
    const da = allocLike(a, a.shape);
    const db = allocLike(b, b.shape);
    for (let i = 0; i < dy.size; i++) {
      da.data[i] = dy.data[i] as number;
      db.data[i] = dy.data[i] as number;
    }
    return { da, db };
  },
};
