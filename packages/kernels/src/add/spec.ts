import type { Tensor } from '@shuffle/core';
import { checkSameDType, checkSameLayout, checkShapeEquals, checkTensor } from '../common/args.js';

export interface AddOps {
  /** Elementwise a + b; same shape, layout and dtype (no broadcasting); any rank. */
  add(a: Tensor, b: Tensor): Tensor;
  addBackward(dy: Tensor, a: Tensor, b: Tensor): { da: Tensor; db: Tensor };
}

export function checkAdd(a: Tensor, b: Tensor): void {
  checkTensor('add', 'a', a);
  checkTensor('add', 'b', b);
  checkShapeEquals('add', 'b', b.shape, a.shape, "a's shape; add does not broadcast");
  checkSameLayout('add', { a, b });
  checkSameDType('add', { a, b });
}

export function checkAddBackward(dy: Tensor, a: Tensor, b: Tensor): void {
  const op = 'addBackward';
  checkTensor(op, 'a', a);
  checkTensor(op, 'b', b);
  checkTensor(op, 'dy', dy);
  checkShapeEquals(op, 'b', b.shape, a.shape, "a's shape");
  checkShapeEquals(op, 'dy', dy.shape, a.shape, "add's output shape");
  checkSameLayout(op, { a, b, dy });
  checkSameDType(op, { a, b, dy });
}
