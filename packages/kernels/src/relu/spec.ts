import type { Tensor } from '@shuffle/core';
import { checkSameDType, checkSameLayout, checkShapeEquals, checkTensor } from '../common/args.js';

export interface ReluOps {
  /** y = max(x, 0), elementwise; any rank. */
  relu(x: Tensor): Tensor;
  reluBackward(dy: Tensor, x: Tensor): { dx: Tensor };
}

export function checkRelu(x: Tensor): void {
  checkTensor('relu', 'x', x);
}

export function checkReluBackward(dy: Tensor, x: Tensor): void {
  checkTensor('reluBackward', 'x', x);
  checkTensor('reluBackward', 'dy', dy);
  checkShapeEquals('reluBackward', 'dy', dy.shape, x.shape, "relu's output shape");
  checkSameLayout('reluBackward', { x, dy });
  checkSameDType('reluBackward', { x, dy });
}
