import { describe, fail, type Tensor } from '@shuffle/core';
import { checkSameDType, checkShapeEquals, checkTensor } from '../common/args.js';

export interface LinearOptions {
  /** [out] */
  bias?: Tensor;
}

export interface LinearOps {
  /** x [N, in] or [N, in, 1, 1], weight [out, in] -> y [N, out], y = x W^T + b. */
  linear(x: Tensor, weight: Tensor, options?: LinearOptions): Tensor;
  /** dx in x's shape and layout; dbias only when options.bias was given. */
  linearBackward(dy: Tensor, x: Tensor, weight: Tensor, options?: LinearOptions): { dx: Tensor; dweight: Tensor; dbias?: Tensor };
}

/** The sizes of one linear call, checked. */
export interface LinearGeometry {
  batch: number;
  inFeatures: number;
  outFeatures: number;
  bias: Tensor | undefined;
}

/**
 * Checks x [N, in] or [N, in, 1, 1] (the output of a global average pool, in either layout), weight
 * [out, in] and bias [out], all of one dtype, and returns the sizes.
 */
export function linearGeometry(op: string, x: unknown, weight: unknown, options: unknown = {}): LinearGeometry {
  checkTensor(op, 'x', x, [2, 4]);
  if (x.rank === 4 && (x.shape[2] !== 1 || x.shape[3] !== 1)) {
    fail(op, 'x', '[N, in] or [N, in, 1, 1] (flatten or pool the spatial axes first)', `shape ${describe(x.shape)}`);
  }
  const [batch, inFeatures] = x.shape as [number, number];
  checkTensor(op, 'weight', weight, 2);
  const outFeatures = weight.shape[0] as number;
  checkShapeEquals(op, 'weight', weight.shape, [outFeatures, inFeatures], `[out, in] with in = x's ${inFeatures} features`);
  if (options === null || typeof options !== 'object') fail(op, 'options', 'an object like { bias }', options);
  const { bias } = options as LinearOptions;
  if (bias !== undefined) {
    checkTensor(op, 'options.bias', bias, 1);
    checkShapeEquals(op, 'options.bias', bias.shape, [outFeatures], 'one per output feature');
  }
  checkSameDType(op, bias === undefined ? { x, weight } : { x, weight, 'options.bias': bias });
  return { batch, inFeatures, outFeatures, bias };
}

export function checkLinearBackward(dy: unknown, x: unknown, weight: unknown, options?: unknown): LinearGeometry {
  const op = 'linearBackward';
  const geometry = linearGeometry(op, x, weight, options);
  checkTensor(op, 'dy', dy);
  checkShapeEquals(op, 'dy', dy.shape, [geometry.batch, geometry.outFeatures], "linear's output shape [N, out]");
  checkSameDType(op, { x: x as Tensor, dy });
  return geometry;
}
