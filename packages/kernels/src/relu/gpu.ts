import type { GpuContext } from '../gpu/context.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps } from '../gpu/types.js';
import { checkRelu, checkReluBackward, type ReluOps } from './spec.js';

/*
 * Elementwise over the flat memory index: x, dy and the results share one layout, so element i is the
 * same logical element in all of them. NaN passes through the forward as in the reference; the test is
 * `v !== v` because headlessgl and webgpu compile `v <= 0 ? 0 : v` (and Math.max) to 0 for NaN.
 */
const RELU = defineKernel(
  'relu',
  function relu(this: KernelThis, x: any): number {
    const v = x[this.thread.x];
    // biome-ignore lint/suspicious/noSelfCompare: the NaN test that every mode compiles (gpu.js has no Number.isNaN)
    if (v > 0 || v !== v) return v;
    return 0;
  },
  { anySize: true },
);

/* dx = dy where x > 0, else 0 (x = 0 and NaN included, as in the reference). */
const RELU_BACKWARD = defineKernel(
  'reluBackward',
  function reluBackward(this: KernelThis, dy: any, x: any): number {
    if (x[this.thread.x] > 0) return dy[this.thread.x];
    return 0;
  },
  { anySize: true },
);

export function reluGpu(gpu: GpuContext): GpuOps<ReluOps> {
  return {
    async relu(x) {
      gpu.checkArgs('relu', { x }, (host) => checkRelu(host.x));
      return gpu.launch({ op: 'relu', kernel: RELU, inputs: [x], output: { shape: x.shape, layout: x.layout } });
    },

    async reluBackward(dy, x) {
      gpu.checkArgs('reluBackward', { dy, x }, (host) => checkReluBackward(host.dy, host.x));
      const dx = await gpu.launch({
        op: 'reluBackward',
        kernel: RELU_BACKWARD,
        inputs: [dy, x],
        output: { shape: x.shape, layout: x.layout },
      });
      return { dx };
    },
  };
}
