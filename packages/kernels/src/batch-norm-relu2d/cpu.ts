import type { Tensor } from '@shuffle/core';
import { batchNormBackwardKernel, batchNormKernel } from '../batch-norm2d/cpu.js';
import type { BatchNorm2dSaved } from '../batch-norm2d/spec.js';
import { scratchF32 } from '../common/scratch.js';
import { batchNormRelu2dReference } from './reference.js';
import { type BatchNormRelu2dOps, batchNormRelu2dGeometry, checkBatchNormRelu2dBackward } from './spec.js';

/*
 * The forward is batch norm's kernel with the ReLU applied as each value is stored (see affineRun in
 * batch-norm2d/cpu.ts): one read of x and one write of y, where batch norm then relu read and write
 * twice. Measured on the ShuffleNet g3 1.0x shapes (benchmarks/dev/elementwise.ts): about the time of
 * batch norm alone, i.e. the ReLU pass is saved whole.
 *
 * The backward first masks dy where the forward's pre-activation was not positive, recomputing it from x
 * and the saved statistics by the forward's own arithmetic (the same float64 scale and shift per channel,
 * rounded to float32 as the forward stored it), so the mask is the forward's exactly; then batch norm's
 * backward runs on the masked dy. float64 (gradient checks only) goes to the reference.
 */

/** dz = dy where fround(x * s[c] + t[c]) > 0, else +0, in x's layout; s and t as the forward computed them. */
function maskedGradient(dy: Float32Array, x: Tensor, gamma: Tensor, beta: Tensor, saved: BatchNorm2dSaved): Float32Array {
  const [batch, channels, height, width] = x.shape as [number, number, number, number];
  const xs = x.data as Float32Array;
  const gammas = gamma.data as Float32Array;
  const betas = beta.data as Float32Array;
  const dz = scratchF32('batchNormRelu2d.dz', xs.length);
  const dyBits = new Int32Array(dy.buffer, dy.byteOffset, xs.length);
  const dzBits = new Int32Array(dz.buffer, dz.byteOffset, xs.length);
  const plane = height * width;
  const nchw = x.layout === 'NCHW';
  for (let c = 0; c < channels; c++) {
    const s = (gammas[c] as number) * (saved.invStd[c] as number);
    const t = (betas[c] as number) - (saved.mean[c] as number) * s;
    for (let n = 0; n < batch; n++) {
      // NCHW: the channel's plane, contiguous; NHWC: every C-th value from the channel's first.
      const start = nchw ? (n * channels + c) * plane : n * plane * channels + c;
      const step = nchw ? 1 : channels;
      const end = start + plane * step;
      // dy's bits under an all-ones / all-zeros mask: no data-dependent branch (see add-relu/cpu.ts).
      for (let i = start; i < end; i += step) dzBits[i] = (dyBits[i] as number) & -+(Math.fround((xs[i] as number) * s + t) > 0);
    }
  }
  return dz;
}

export const batchNormRelu2dCpu: BatchNormRelu2dOps = {
  batchNormRelu2d(x, gamma, beta, runningMean, runningVar, options) {
    const geometry = batchNormRelu2dGeometry('batchNormRelu2d', x, gamma, beta, runningMean, runningVar, options);
    if (x.dtype === 'float64') return batchNormRelu2dReference.batchNormRelu2d(x, gamma, beta, runningMean, runningVar, options);
    return batchNormKernel(x, gamma, beta, runningMean, runningVar, geometry, false, true).y;
  },

  batchNormRelu2dWithSaved(x, gamma, beta, runningMean, runningVar, options) {
    const geometry = batchNormRelu2dGeometry('batchNormRelu2dWithSaved', x, gamma, beta, runningMean, runningVar, options);
    if (x.dtype === 'float64') return batchNormRelu2dReference.batchNormRelu2dWithSaved(x, gamma, beta, runningMean, runningVar, options);
    const { y, saved } = batchNormKernel(x, gamma, beta, runningMean, runningVar, geometry, true, true);
    return { y, saved: saved as BatchNorm2dSaved };
  },

  batchNormRelu2dBackward(dy, x, gamma, beta, saved, options) {
    const geometry = checkBatchNormRelu2dBackward(dy, x, gamma, beta, saved, options);
    if (x.dtype === 'float64') return batchNormRelu2dReference.batchNormRelu2dBackward(dy, x, gamma, beta, saved, options);
    const dz = maskedGradient(dy.data as Float32Array, x, gamma, beta, saved);
    return batchNormBackwardKernel(dz, x, gamma, saved, geometry);
  },
};
