import { Tensor } from '@shuffle/core';
import type { Tensor as TfTensor } from '@tensorflow/tfjs-core';
import type { HostOutput } from '../method/validate.js';
import type { Tf } from './tfjs-setup.js';

/**
 * Moving data between our logical NCHW / OIHW tensors and TensorFlow.js's channels-last NHWC / HWIO
 * ones (its CPU and WASM convolutions take NHWC only). Conversions happen outside the timed runs.
 */

/** Our 4-D tensor -> a tfjs NHWC tensor. */
export function toNhwc(tf: Tf, t: Tensor): TfTensor {
  const [n, c, h, w] = t.shape as [number, number, number, number];
  return tf.tensor4d(Float32Array.from(t.toLayout('NHWC').data), [n, h, w, c]);
}

/** A tfjs NHWC tensor -> host output in logical NCHW order. */
export function fromNhwc(t: TfTensor): HostOutput {
  const [n, h, w, c] = t.shape as [number, number, number, number];
  const data = Float32Array.from(t.dataSync() as Float32Array);
  const nchw = new Tensor(data, [n, c, h, w], 'NHWC').toLayout('NCHW');
  return { shape: [n, c, h, w], data: nchw.data };
}

/** A tfjs tensor whose layout already is logical (2-D, [N, C] or [out, in]). */
export function fromPlain(t: TfTensor): HostOutput {
  return { shape: [...t.shape], data: Float32Array.from(t.dataSync() as Float32Array) };
}

/**
 * Conv weights OIHW [Cout, Cin/g, kH, kW] -> HWIO [kH, kW, Cin/g, Cout/g] of group `group` (TensorFlow
 * filters are [height, width, in, out]).
 */
export function hwioOfGroup(w: Tensor, groups: number, group: number): Float32Array {
  const [cout, cinPerGroup, kh, kw] = w.shape as [number, number, number, number];
  const outPerGroup = cout / groups;
  const out = new Float32Array(kh * kw * cinPerGroup * outPerGroup);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cinPerGroup; i++)
        for (let o = 0; o < outPerGroup; o++) {
          out[((y * kw + x) * cinPerGroup + i) * outPerGroup + o] = w.get([group * outPerGroup + o, i, y, x]);
        }
  return out;
}

/**
 * The block-diagonal dense filter HWIO [kH, kW, Cin, Cout] equal to a grouped conv: input channel
 * g*Cin/G + i feeds output g*Cout/G + o through w[g*Cout/G + o, i], every other pair through 0.
 */
export function hwioBlockDiagonal(w: Tensor, groups: number): Float32Array {
  const [cout, cinPerGroup, kh, kw] = w.shape as [number, number, number, number];
  const cin = cinPerGroup * groups;
  const outPerGroup = cout / groups;
  const out = new Float32Array(kh * kw * cin * cout);
  for (let g = 0; g < groups; g++)
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let i = 0; i < cinPerGroup; i++)
          for (let o = 0; o < outPerGroup; o++) {
            const oc = g * outPerGroup + o;
            out[((y * kw + x) * cin + g * cinPerGroup + i) * cout + oc] = w.get([oc, i, y, x]);
          }
  return out;
}

/** 1 where a block-diagonal [Cin, Cout] filter may be nonzero, 0 elsewhere. */
export function blockDiagonalMask(cinPerGroup: number, cout: number, groups: number): Float32Array {
  const cin = cinPerGroup * groups;
  const outPerGroup = cout / groups;
  const out = new Float32Array(cin * cout);
  for (let i = 0; i < cin; i++) {
    const g = Math.floor(i / cinPerGroup);
    out.fill(1, i * cout + g * outPerGroup, i * cout + (g + 1) * outPerGroup);
  }
  return out;
}

/** Grouped filter gradient HWIO [kH, kW, Cin/g, Cout] (groups side by side along out) -> OIHW host output. */
export function oihwFromGroupedHwio(t: TfTensor): HostOutput {
  const [kh, kw, cinPerGroup, cout] = t.shape as [number, number, number, number];
  const src = t.dataSync() as Float32Array;
  const out = new Float32Array(src.length);
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cinPerGroup; i++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++)
          out[((o * cinPerGroup + i) * kh + y) * kw + x] = src[((y * kw + x) * cinPerGroup + i) * cout + o] as number;
  return { shape: [cout, cinPerGroup, kh, kw], data: out };
}

/** Depthwise weights [C, 1, kH, kW] -> tfjs [kH, kW, C, 1]. */
export function depthwiseFilter(w: Tensor): Float32Array {
  const [c, , kh, kw] = w.shape as [number, number, number, number];
  const out = new Float32Array(kh * kw * c);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++) for (let ch = 0; ch < c; ch++) out[(y * kw + x) * c + ch] = w.get([ch, 0, y, x]);
  return out;
}

/** tfjs depthwise filter gradient [kH, kW, C, 1] -> [C, 1, kH, kW] host output. */
export function depthwiseFromTf(t: TfTensor): HostOutput {
  const [kh, kw, c] = t.shape as [number, number, number, number];
  const src = t.dataSync() as Float32Array;
  const out = new Float32Array(src.length);
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) out[(ch * kh + y) * kw + x] = src[(y * kw + x) * c + ch] as number;
  return { shape: [c, 1, kh, kw], data: out };
}
