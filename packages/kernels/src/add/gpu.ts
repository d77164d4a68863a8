import { COPY, type GpuContext } from '../gpu/context.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps } from '../gpu/types.js';
import { type AddOps, checkAdd, checkAddBackward } from './spec.js';

/* a, b and y share one layout (checked), so element i is the same logical element in each. */
const ADD = defineKernel(
  'add',
  function add(this: KernelThis, a: any, b: any): number {
    return a[this.thread.x] + b[this.thread.x];
  },
  { anySize: true },
);

export function addGpu(gpu: GpuContext): GpuOps<AddOps> {
  return {
    async add(a, b) {
      gpu.checkArgs('add', { a, b }, (host) => checkAdd(host.a, host.b));
      return gpu.launch({ op: 'add', kernel: ADD, inputs: [a, b], output: { shape: a.shape, layout: a.layout } });
    },

    /* dL/da = dL/db = dy (see reference.ts): two device copies of dy, so each gradient can be disposed alone. */
    async addBackward(dy, a, b) {
      gpu.checkArgs('addBackward', { dy, a, b }, (host) => checkAddBackward(host.dy, host.a, host.b));
      const output = { shape: a.shape, layout: a.layout };
      return gpu.onDevice([dy], async ([dyOnDevice]) => {
        const da = await gpu.launch({ op: 'addBackward', kernel: COPY, inputs: [dyOnDevice as DeviceTensor], output });
        try {
          const db = await gpu.launch({ op: 'addBackward', kernel: COPY, inputs: [dyOnDevice as DeviceTensor], output });
          return { da, db };
        } catch (error) {
          da.dispose();
          throw error;
        }
      });
    },
  };
}
