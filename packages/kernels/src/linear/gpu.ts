import { type ConvCall, convKernels, convolve, convolveBackward } from '../conv2d/gpu.js';
import type { GpuContext } from '../gpu/context.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps } from '../gpu/types.js';
import { checkLinearBackward, type LinearGeometry, type LinearOps, linearGeometry } from './spec.js';

/*
 * y[n, o] = sum_i x[n, i] W[o, i] + b[o] is a 1x1 conv2d of x as an [N, in, 1, 1] image with the weight
 * as [out, in, 1, 1], so conv2d's kernels compute it and, as that conv's gradients (see reference.ts), dx
 * (the gather over the outputs) and db (the reduction over the batch, in chunks when the batch is large).
 * x [N, in] and x [N, in, 1, 1] in either layout hold sample n's feature i at n*in + i, and the weight
 * [out, in] and y [N, out] are row-major: exactly the NCHW strides of those 1x1 shapes.
 *
 * dW[o, i] = sum_n dy[n, o] x[n, i] has its own kernel: one thread per weight element (out * in of them,
 * 960,000 for ShuffleNet's classifier), each summing the batch. conv2d's chunked reduction would spend
 * more on locating its cell than on its one term per sample.
 */
const LINEAR_BACKWARD_WEIGHT = defineKernel(
  'linearBackwardWeight',
  function linearBackwardWeight(this: KernelThis<'inChannels' | 'outChannels' | 'rows'>, dy: any, x: any): number {
    const o = Math.floor(this.thread.x / this.constants.inChannels);
    const i = this.thread.x - o * this.constants.inChannels;
    let sum = 0;
    for (let n = 0; n < this.constants.rows; n++) sum += dy[n * this.constants.outChannels + o] * x[n * this.constants.inChannels + i];
    return sum;
  },
);

const KERNELS = { ...convKernels('linear'), backwardWeight: LINEAR_BACKWARD_WEIGHT, weightInOnePass: true };

function callFor(op: string, { batch, inFeatures, outFeatures }: LinearGeometry): ConvCall {
  const one = { kernelHeight: 1, kernelWidth: 1, strideHeight: 1, strideWidth: 1, dilationHeight: 1, dilationWidth: 1 };
  return {
    op,
    kernels: KERNELS,
    geometry: {
      ...one,
      batch,
      inChannels: inFeatures,
      inHeight: 1,
      inWidth: 1,
      outChannels: outFeatures,
      outHeight: 1,
      outWidth: 1,
      groups: 1,
      inChannelsPerGroup: inFeatures,
      outChannelsPerGroup: outFeatures,
      pad: { top: 0, bottom: 0, left: 0, right: 0 },
    },
    layout: 'NCHW',
    weightLayout: 'NCHW',
  };
}

export function linearGpu(gpu: GpuContext): GpuOps<LinearOps> {
  return {
    async linear(x, weight, options) {
      const g = gpu.checkArgs('linear', { x, weight, options }, (host) => linearGeometry('linear', host.x, host.weight, host.options));
      return convolve(gpu, callFor('linear', g), x, weight, options?.bias, { shape: [g.batch, g.outFeatures], layout: 'NCHW' });
    },

    async linearBackward(dy, x, weight, options) {
      const g = gpu.checkArgs('linearBackward', { dy, x, weight, options }, (host) =>
        checkLinearBackward(host.dy, host.x, host.weight, host.options),
      );
      return convolveBackward(gpu, callFor('linearBackward', g), dy, x, weight, options?.bias);
    },
  };
}
