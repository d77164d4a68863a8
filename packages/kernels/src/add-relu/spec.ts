import type { Tensor } from '@shuffle/core';
import { checkAdd, checkAddBackward } from '../add/spec.js';

/**
 * relu(a + b) as one op: a residual join and the activation after it (ShuffleNet's stride-1 units end
 * this way) in one pass over memory instead of two, and without the sum as an intermediate tensor.
 */
export interface AddReluOps {
  /** relu(a + b), elementwise; same shape, layout and dtype (no broadcasting); any rank. */
  addRelu(a: Tensor, b: Tensor): Tensor;
  /** da = db = dy where a + b > 0, else 0. */
  addReluBackward(dy: Tensor, a: Tensor, b: Tensor): { da: Tensor; db: Tensor };
}

export function checkAddRelu(a: Tensor, b: Tensor): void {
  checkAdd(a, b, 'addRelu');
}

export function checkAddReluBackward(dy: Tensor, a: Tensor, b: Tensor): void {
  checkAddBackward(dy, a, b, 'addReluBackward', 'addRelu');
}
