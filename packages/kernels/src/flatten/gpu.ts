import { COPY, type GpuContext, type Strides4, strides4 } from '../gpu/context.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps, TensorArg } from '../gpu/types.js';
import { checkFlattenBackward, type FlattenOps, flattenShape } from './spec.js';

type Constants = Strides4<'x'> | 'features' | 'height' | 'width';

/*
 * y[n, (c*H + h)*W + w] = x[n, c, h, w] (see reference.ts). When x is stored in that order already (NCHW,
 * or any rank other than 4) both directions are a copy; an NHWC x is gathered into logical order and the
 * backward scatters back, one thread per element of the result in both cases.
 */
const FLATTEN_NHWC = defineKernel('flattenNhwc', function flattenNhwc(this: KernelThis<Constants>, x: any): number {
  const i = this.thread.x;
  const n = Math.floor(i / this.constants.features);
  const f = i - n * this.constants.features;
  const plane = this.constants.height * this.constants.width;
  const c = Math.floor(f / plane);
  const h = Math.floor(f / this.constants.width) % this.constants.height;
  const w = f % this.constants.width;
  return x[n * this.constants.xStrideN + c * this.constants.xStrideC + h * this.constants.xStrideH + w * this.constants.xStrideW];
});

/* dx[n, c, h, w] (flat index i in x's layout) = dy[n, (c*H + h)*W + w]. */
const UNFLATTEN_NHWC = defineKernel('unflattenNhwc', function unflattenNhwc(this: KernelThis<Constants | 'channels'>, dy: any): number {
  const i = this.thread.x;
  const n = Math.floor(i / this.constants.xStrideN);
  const c = Math.floor(i / this.constants.xStrideC) % this.constants.channels;
  const h = Math.floor(i / this.constants.xStrideH) % this.constants.height;
  const w = Math.floor(i / this.constants.xStrideW) % this.constants.width;
  return dy[n * this.constants.features + (c * this.constants.height + h) * this.constants.width + w];
});

function nhwcConstants(x: TensorArg) {
  const [, channels, height, width] = x.shape as [number, number, number, number];
  return { ...strides4('x', x), features: channels * height * width, channels, height, width };
}

export function flattenGpu(gpu: GpuContext): GpuOps<FlattenOps> {
  return {
    async flatten(x) {
      const shape = gpu.checkArgs('flatten', { x }, (host) => flattenShape('flatten', host.x));
      const output = { shape, layout: 'NCHW' as const };
      if (x.layout !== 'NHWC') return gpu.launch({ op: 'flatten', kernel: COPY, inputs: [x], output });
      return gpu.launch({ op: 'flatten', kernel: FLATTEN_NHWC, inputs: [x], output, constants: nhwcConstants(x) });
    },

    async flattenBackward(dy, x) {
      gpu.checkArgs('flattenBackward', { dy, x }, (host) => checkFlattenBackward(host.dy, host.x));
      const output = { shape: x.shape, layout: x.layout };
      const kernel = x.layout === 'NHWC' ? UNFLATTEN_NHWC : COPY;
      const dx = await gpu.launch({
        op: 'flattenBackward',
        kernel,
        inputs: [dy],
        output,
        constants: x.layout === 'NHWC' ? nhwcConstants(x) : {},
      });
      return { dx };
    },
  };
}
