import { describe, fail, type Layout, type Tensor } from '@shuffle/core';
import { checkSameDType, checkSameLayout, checkShapeEquals, checkTensor } from '../common/args.js';

export interface ConcatOps {
  /** Joins 4-D tensors along channels (same N, H, W, layout and dtype) -> [N, sum of C, H, W] in their layout. */
  concat(xs: readonly Tensor[]): Tensor;
  /** One gradient per input, in order. */
  concatBackward(dy: Tensor, xs: readonly Tensor[]): { dxs: Tensor[] };
}

/** A checked call: the shared N, H, W and where each input's channels start in the output. */
export interface ConcatGeometry {
  batch: number;
  height: number;
  width: number;
  layout: Layout;
  /** Channels of each input. */
  channels: number[];
  /** offsets[i]: the output channel where input i's channel 0 lands (the sum of the channels before it). */
  offsets: number[];
  totalChannels: number;
}

/** Validates concat's inputs (`op` names the caller, so the backward reports as itself). */
export function concatGeometry(xs: readonly Tensor[], op: 'concat' | 'concatBackward' = 'concat'): ConcatGeometry {
  if (!Array.isArray(xs) || xs.length === 0) fail(op, 'xs', 'a non-empty array of tensors', xs);
  for (const [i, x] of xs.entries()) checkTensor(op, `xs[${i}]`, x, 4);
  const [first] = xs as [Tensor];
  const [batch, , height, width] = first.shape as [number, number, number, number];
  xs.forEach((x, i) => {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    if (n !== batch || h !== height || w !== width) {
      fail(
        op,
        `xs[${i}]`,
        `shape ${describe([batch, c, height, width])} (N, H and W of xs[0]; only channels may differ)`,
        describe(x.shape),
      );
    }
  });
  const named = Object.fromEntries(xs.map((x, i) => [`xs[${i}]`, x]));
  const layout = checkSameLayout(op, named);
  checkSameDType(op, named);
  const channels = xs.map((x) => x.shape[1] as number);
  const offsets: number[] = [];
  let totalChannels = 0;
  for (const c of channels) {
    offsets.push(totalChannels);
    totalChannels += c;
  }
  return { batch, height, width, layout, channels, offsets, totalChannels };
}

/** Validates a concatBackward call: the inputs as for concat, and dy shaped like concat's output. */
export function concatBackwardGeometry(dy: Tensor, xs: readonly Tensor[]): ConcatGeometry {
  const op = 'concatBackward';
  const geometry = concatGeometry(xs, op);
  checkTensor(op, 'dy', dy, 4);
  const { batch, totalChannels, height, width } = geometry;
  checkShapeEquals(op, 'dy', dy.shape, [batch, totalChannels, height, width], "concat's output shape");
  checkSameLayout(op, { 'xs[0]': xs[0] as Tensor, dy });
  checkSameDType(op, { 'xs[0]': xs[0] as Tensor, dy });
  return geometry;
}
