import type { Tensor } from '@shuffle/core';
import { allocLike } from '../common/indexing.js';
import { checkRelu, checkReluBackward, type ReluOps } from './spec.js';

/*
 * y = max(x, 0). Its derivative is 1 where x > 0 and 0 where x < 0; at x = 0 we take 0 (as PyTorch
 * does), so dx = dy where x > 0, else 0. NaN passes through the forward (NaN > 0 is false, but we keep
 * NaN rather than turn it into 0, so a broken input stays visible).
 * Elementwise ops do not care about the layout: element i of x maps to element i of y in any order,
 * as long as y is stored in x's layout.
 */
export const reluReference: ReluOps = {
  relu(x) {
    checkRelu(x);
    const y = allocLike(x, x.shape);
    for (let i = 0; i < x.size; i++) {
      const v = x.data[i] as number;
      y.data[i] = v > 0 || Number.isNaN(v) ? v : 0;
    }
    return y;
  },

  reluBackward(dy: Tensor, x: Tensor) {
    checkReluBackward(dy, x);
    const dx = allocLike(x, x.shape);
    for (let i = 0; i < x.size; i++) {
      dx.data[i] = (x.data[i] as number) > 0 ? (dy.data[i] as number) : 0;
    }
    return { dx };
  },
};
