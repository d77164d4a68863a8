import { type GpuContext, type Strides4, strides4 } from '../gpu/context.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps } from '../gpu/types.js';
import { checkGlobalAvgPool2d, checkGlobalAvgPool2dBackward, type GlobalAvgPool2dOps } from './spec.js';

type Constants = Strides4<'x'> | 'channels' | 'height' | 'width' | 'count';

/*
 * An [N, C, 1, 1] tensor has the same memory order in NCHW and NHWC (n*C + c), so thread i is (n, c) in
 * either layout and sums its channel's H x W plane of x, in float32, over loop bounds that are constants.
 */
const GLOBAL_AVG_POOL = defineKernel('globalAvgPool2d', function globalAvgPool2d(this: KernelThis<Constants>, x: any): number {
  const i = this.thread.x;
  const n = Math.floor(i / this.constants.channels);
  const c = i % this.constants.channels;
  const base = n * this.constants.xStrideN + c * this.constants.xStrideC;
  let sum = 0;
  for (let h = 0; h < this.constants.height; h++) {
    for (let w = 0; w < this.constants.width; w++) {
      sum += x[base + h * this.constants.xStrideH + w * this.constants.xStrideW];
    }
  }
  return sum / this.constants.count;
});

/* dx[n, c, h, w] = dy[n, c] / (H * W) (see reference.ts); thread i is dx's flat index in x's layout. */
const GLOBAL_AVG_POOL_BACKWARD = defineKernel(
  'globalAvgPool2dBackward',
  function globalAvgPool2dBackward(this: KernelThis<Constants>, dy: any): number {
    const i = this.thread.x;
    const n = Math.floor(i / this.constants.xStrideN);
    const c = Math.floor(i / this.constants.xStrideC) % this.constants.channels;
    return dy[n * this.constants.channels + c] / this.constants.count;
  },
);

function constants(x: { shape: readonly number[]; layout: 'NCHW' | 'NHWC' }) {
  const [, channels, height, width] = x.shape as [number, number, number, number];
  return { ...strides4('x', x), channels, height, width, count: height * width };
}

export function globalAvgPool2dGpu(gpu: GpuContext): GpuOps<GlobalAvgPool2dOps> {
  return {
    async globalAvgPool2d(x) {
      gpu.checkArgs('globalAvgPool2d', { x }, (host) => checkGlobalAvgPool2d(host.x));
      const [batch, channels] = x.shape as [number, number];
      return gpu.launch({
        op: 'globalAvgPool2d',
        kernel: GLOBAL_AVG_POOL,
        inputs: [x],
        output: { shape: [batch, channels, 1, 1], layout: x.layout },
        constants: constants(x),
      });
    },

    async globalAvgPool2dBackward(dy, x) {
      gpu.checkArgs('globalAvgPool2dBackward', { dy, x }, (host) => checkGlobalAvgPool2dBackward(host.dy, host.x));
      const dx = await gpu.launch({
        op: 'globalAvgPool2dBackward',
        kernel: GLOBAL_AVG_POOL_BACKWARD,
        inputs: [dy],
        output: { shape: x.shape, layout: x.layout },
        constants: constants(x),
      });
      return { dx };
    },
  };
}
