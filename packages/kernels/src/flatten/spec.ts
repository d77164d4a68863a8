import { describe, fail, type Tensor } from '@shuffle/core';
import { checkSameDType, checkSameLayout, checkShapeEquals, checkTensor } from '../common/args.js';

export interface FlattenOps {
  /** [N, ...rest] -> [N, prod(rest)] in logical (C, H, W) order, as PyTorch's flatten(1). */
  flatten(x: Tensor): Tensor;
  /** dx in x's shape and layout. */
  flattenBackward(dy: Tensor, x: Tensor): { dx: Tensor };
}

/** The output shape [N, prod(rest)] of flattening x (rank >= 2) after its first axis. */
export function flattenShape(op: string, x: unknown): [number, number] {
  checkTensor(op, 'x', x);
  if (x.rank < 2) fail(op, 'x', 'a tensor of rank >= 2 ([N, ...features])', `shape ${describe(x.shape)}`);
  const [batch, ...rest] = x.shape as [number, ...number[]];
  return [batch, rest.reduce((a, b) => a * b, 1)];
}

export function checkFlattenBackward(dy: unknown, x: unknown): [number, number] {
  const op = 'flattenBackward';
  const outShape = flattenShape(op, x);
  checkTensor(op, 'dy', dy);
  checkShapeEquals(op, 'dy', dy.shape, outShape, "flatten's output shape");
  checkSameLayout(op, { x: x as Tensor, dy });
  checkSameDType(op, { x: x as Tensor, dy });
  return outShape;
}
