import { type DType, type Layout, Rng, randomUniform, type Tensor } from '@shuffle/core';
import type { Output, Sample } from '../spec.js';

/** The sample with every tensor input in `dtype`, and every 4-D one stored in `layout`. */
export function convertSample<O>(sample: Sample<O>, layout: Layout, dtype: DType): Sample<O> {
  const inputs: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(sample.inputs)) {
    const typed = t.dtype === dtype ? t : t.astype(dtype);
    inputs[name] = t.rank === 4 ? typed.toLayout(layout) : typed;
  }
  return { inputs, options: sample.options };
}

export function outputs(o: Output): Tensor[] {
  return Array.isArray(o) ? o : [o];
}

/** A random dy for every output tensor, in that output's shape, layout and dtype. */
export function randomGradient(o: Output, seed: number): Output {
  const rng = new Rng(seed);
  const dys = outputs(o).map((y) =>
    randomUniform(y.shape, { seed: rng, low: -1, high: 1, dtype: y.dtype, layout: y.rank === 4 ? y.layout : 'NCHW' }),
  );
  return Array.isArray(o) ? dys : (dys[0] as Tensor);
}

/** A deep snapshot of the sample's tensor data, to show that a call left its inputs untouched. */
export function snapshot(sample: Sample<unknown>): Map<string, Float32Array | Float64Array> {
  return new Map(Object.entries(sample.inputs).map(([name, t]) => [name, t.data.slice()]));
}
