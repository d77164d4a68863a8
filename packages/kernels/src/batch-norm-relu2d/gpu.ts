import { batchNormGpuBackward, batchNormGpuForward } from '../batch-norm2d/gpu.js';
import type { GpuContext } from '../gpu/context.js';
import type { GpuBackendOps, GpuBatchNorm2dSaved } from '../gpu/types.js';
import type { BatchNormRelu2dOps } from './spec.js';
import { checkBatchNormRelu2dBackward } from './spec.js';

/*
 * Batch norm's kernels with the ReLU folded into the normalising launch (NORMALIZE's `relu` constant),
 * and for the backward a mask launch (RELU_MASK) ahead of batch norm's backward: see batch-norm2d/gpu.ts.
 */
export function batchNormRelu2dGpu(gpu: GpuContext): Pick<GpuBackendOps, keyof BatchNormRelu2dOps> {
  return {
    async batchNormRelu2d(x, gamma, beta, runningMean, runningVar, options) {
      return (await batchNormGpuForward(gpu, 'batchNormRelu2d', { x, gamma, beta, runningMean, runningVar }, options, false, true)).y;
    },

    async batchNormRelu2dWithSaved(x, gamma, beta, runningMean, runningVar, options) {
      const args = { x, gamma, beta, runningMean, runningVar };
      const { y, saved } = await batchNormGpuForward(gpu, 'batchNormRelu2dWithSaved', args, options, true, true);
      return { y, saved: saved as GpuBatchNorm2dSaved };
    },

    async batchNormRelu2dBackward(dy, x, gamma, beta, saved, options) {
      const op = 'batchNormRelu2dBackward';
      // beta's presence first: batch norm's backward (which does the remaining checks) treats a missing one as "no ReLU".
      if (beta === undefined) gpu.checkArgs(op, { beta }, () => checkBatchNormRelu2dBackward(dy, x, gamma, beta, saved, options));
      return batchNormGpuBackward(gpu, op, dy, x, gamma, beta, saved, options);
    },
  };
}
