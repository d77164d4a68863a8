import { type ConvCall, convKernels, convolve, convolveBackward } from '../conv2d/gpu.js';
import type { GpuContext } from '../gpu/context.js';
import type { GpuOps, TensorArg } from '../gpu/types.js';
import { checkDepthwiseConv2dBackward, type DepthwiseConv2dGeometry, type DepthwiseConv2dOps, depthwiseConv2dGeometry } from './spec.js';

const KERNELS = convKernels('depthwiseConv2d');

/*
 * depthwiseConv2d is conv2d with groups = C: group c holds the one input channel c and the m output
 * channels c*m .. c*m + m - 1, which read it (see reference.ts). So conv2d's kernels compute it: their
 * loop over a group's input channels runs once, and the gather for dx sums over the m output channels.
 */
function callFor(op: string, g: DepthwiseConv2dGeometry, x: TensorArg, weight: TensorArg): ConvCall {
  return {
    op,
    kernels: KERNELS,
    geometry: {
      ...g,
      inChannels: g.channels,
      groups: g.channels,
      inChannelsPerGroup: 1,
      outChannelsPerGroup: g.multiplier,
    },
    layout: x.layout,
    weightLayout: weight.layout,
  };
}

export function depthwiseConv2dGpu(gpu: GpuContext): GpuOps<DepthwiseConv2dOps> {
  return {
    async depthwiseConv2d(x, weight, options) {
      const op = 'depthwiseConv2d';
      const g = gpu.checkArgs(op, { x, weight, options }, (host) => depthwiseConv2dGeometry(op, host.x, host.weight, host.options));
      return convolve(gpu, callFor(op, g, x, weight), x, weight, options?.bias, {
        shape: [g.batch, g.outChannels, g.outHeight, g.outWidth],
        layout: x.layout,
      });
    },

    async depthwiseConv2dBackward(dy, x, weight, options) {
      const op = 'depthwiseConv2dBackward';
      const g = gpu.checkArgs(op, { dy, x, weight, options }, (host) =>
        checkDepthwiseConv2dBackward(host.dy, host.x, host.weight, host.options),
      );
      return convolveBackward(gpu, callFor(op, g, x, weight), dy, x, weight, options?.bias);
    },
  };
}
