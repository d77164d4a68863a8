import { COPY, type GpuContext } from '../gpu/context.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps } from '../gpu/types.js';
import { type AddReluOps, checkAddRelu, checkAddReluBackward } from './spec.js';

/* a, b and y share one layout (checked), so element i is the same logical element in each. NaN passes, as in relu's kernel. */
const ADD_RELU = defineKernel(
  'addRelu',
  function addRelu(this: KernelThis, a: any, b: any): number {
    const v = a[this.thread.x] + b[this.thread.x];
    // biome-ignore lint/suspicious/noSelfCompare: the NaN test that every mode compiles (gpu.js has no Number.isNaN)
    if (v > 0 || v !== v) return v;
    return 0;
  },
  { anySize: true },
);

/* dy where the forward's sum a + b > 0, else 0. */
const ADD_RELU_BACKWARD = defineKernel(
  'addReluBackward',
  function addReluBackward(this: KernelThis, dy: any, a: any, b: any): number {
    if (a[this.thread.x] + b[this.thread.x] > 0) return dy[this.thread.x];
    return 0;
  },
  { anySize: true },
);

export function addReluGpu(gpu: GpuContext): GpuOps<AddReluOps> {
  return {
    async addRelu(a, b) {
      gpu.checkArgs('addRelu', { a, b }, (host) => checkAddRelu(host.a, host.b));
      return gpu.launch({ op: 'addRelu', kernel: ADD_RELU, inputs: [a, b], output: { shape: a.shape, layout: a.layout } });
    },

    /* da = db = the masked dy: one mask launch, then a device copy, so each gradient can be disposed alone. */
    async addReluBackward(dy, a, b) {
      const op = 'addReluBackward';
      gpu.checkArgs(op, { dy, a, b }, (host) => checkAddReluBackward(host.dy, host.a, host.b));
      const output = { shape: a.shape, layout: a.layout };
      const da = await gpu.launch({ op, kernel: ADD_RELU_BACKWARD, inputs: [dy, a, b], output });
      try {
        return { da, db: await gpu.launch({ op, kernel: COPY, inputs: [da], output }) };
      } catch (error) {
        da.dispose();
        throw error;
      }
    },
  };
}
