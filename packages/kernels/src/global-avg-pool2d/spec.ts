import { describe, fail, type Tensor } from '@shuffle/core';
import { checkSameDType, checkSameLayout, checkShapeEquals, checkTensor } from '../common/args.js';

export interface GlobalAvgPool2dOps {
  /** Mean over height and width: [N, C, H, W] -> [N, C, 1, 1] in x's layout. */
  globalAvgPool2d(x: Tensor): Tensor;
  globalAvgPool2dBackward(dy: Tensor, x: Tensor): { dx: Tensor };
}

export function checkGlobalAvgPool2d(x: Tensor, op = 'globalAvgPool2d'): void {
  checkTensor(op, 'x', x, 4);
  // The mean of no elements would be a silent 0 / 0 = NaN.
  if (x.shape[2] === 0 || x.shape[3] === 0) fail(op, 'x', 'a non-empty H x W plane', `shape ${describe(x.shape)}`);
}

export function checkGlobalAvgPool2dBackward(dy: Tensor, x: Tensor): void {
  const op = 'globalAvgPool2dBackward';
  checkGlobalAvgPool2d(x, op);
  checkTensor(op, 'dy', dy);
  const [n, c] = x.shape as [number, number, number, number];
  checkShapeEquals(op, 'dy', dy.shape, [n, c, 1, 1], "globalAvgPool2d's output shape");
  checkSameLayout(op, { x, dy });
  checkSameDType(op, { x, dy });
}
