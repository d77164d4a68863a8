import type { Tensor } from '@shuffle/core';
import { checkSameDType, checkSameLayout, checkShapeEquals, checkTensor } from '../common/args.js';

export interface AddOps {
  /** Elementwise a + b; same shape, layout and dtype (no broadcasting); any rank. */
  add(a: Tensor, b: Tensor): Tensor;
  addBackward(dy: Tensor, a: Tensor, b: Tensor): { da: Tensor; db: Tensor };
}

/** add's checks; addRelu shares them under its own name. */
export function checkAdd(a: Tensor, b: Tensor, op = 'add'): void {
  checkTensor(op, 'a', a);
  checkTensor(op, 'b', b);
  checkShapeEquals(op, 'b', b.shape, a.shape, `a's shape; ${op} does not broadcast`);
  checkSameLayout(op, { a, b });
  checkSameDType(op, { a, b });
}

export function checkAddBackward(dy: Tensor, a: Tensor, b: Tensor, op = 'addBackward', forward = 'add'): void {
  checkTensor(op, 'a', a);
  checkTensor(op, 'b', b);
  checkTensor(op, 'dy', dy);
  checkShapeEquals(op, 'b', b.shape, a.shape, "a's shape");
  checkShapeEquals(op, 'dy', dy.shape, a.shape, `${forward}'s output shape`);
  checkSameLayout(op, { a, b, dy });
  checkSameDType(op, { a, b, dy });
}
