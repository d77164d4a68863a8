import { fail, Tensor } from '@shuffle/core';
import { type GpuContext, type Strides4, strides4 } from '../gpu/context.js';
import { type DeviceTensor, isDeviceTensor } from '../gpu/device-tensor.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuBackendOps, GpuMaxPool2dSaved, TensorArg } from '../gpu/types.js';
import { checkMaxPool2dBackward, type MaxPool2dOps, type MaxPool2dSaved, maxPool2dGeometry, type Pool2dGeometry } from './spec.js';

type Window =
  | 'channels'
  | 'inHeight'
  | 'inWidth'
  | 'outHeight'
  | 'outWidth'
  | 'kernelHeight'
  | 'kernelWidth'
  | 'strideHeight'
  | 'strideWidth'
  | 'dilationHeight'
  | 'dilationWidth'
  | 'padTop'
  | 'padLeft';

/*
 * One thread per output element (n, c, oh, ow), numbered by the strides of `o` (y's layout for the
 * values, NCHW for the argmax), scanning its window in row-major order as the reference does: taps in
 * the padding are skipped, a later element takes over only when strictly greater, and the first NaN
 * takes over from any number and keeps its place. NaN is tested as `v !== v`, which every mode compiles
 * (headlessgl and webgpu turn `v > best` with a NaN into false, and Math.max(NaN, v) into v).
 * Returns the winner's value, or with `index` = 1 its position h * W + w in the input plane.
 */
const MAX_POOL = defineKernel(
  'maxPool2d',
  function maxPool2d(this: KernelThis<Strides4<'x'> | Strides4<'o'> | Window | 'index'>, x: any): number {
    const i = this.thread.x;
    const n = Math.floor(i / this.constants.oStrideN);
    const c = Math.floor(i / this.constants.oStrideC) % this.constants.channels;
    const oh = Math.floor(i / this.constants.oStrideH) % this.constants.outHeight;
    const ow = Math.floor(i / this.constants.oStrideW) % this.constants.outWidth;
    const base = n * this.constants.xStrideN + c * this.constants.xStrideC;
    let best = 0;
    let bestIndex = -1;
    let bestIsNaN = 0;
    for (let kh = 0; kh < this.constants.kernelHeight; kh++) {
      const ih = oh * this.constants.strideHeight - this.constants.padTop + kh * this.constants.dilationHeight;
      if (ih >= 0 && ih < this.constants.inHeight) {
        for (let kw = 0; kw < this.constants.kernelWidth; kw++) {
          const iw = ow * this.constants.strideWidth - this.constants.padLeft + kw * this.constants.dilationWidth;
          if (iw >= 0 && iw < this.constants.inWidth) {
            const v = x[base + ih * this.constants.xStrideH + iw * this.constants.xStrideW];
            // A number, not a boolean: webgpu's WGSL gets every variable as f32.
            let vIsNaN = 0;
            // biome-ignore lint/suspicious/noSelfCompare: the NaN test that every mode compiles (gpu.js has no Number.isNaN)
            if (v !== v) vIsNaN = 1;
            if (bestIndex < 0 || (bestIsNaN === 0 && (vIsNaN === 1 || v > best))) {
              best = v;
              bestIndex = ih * this.constants.inWidth + iw;
              bestIsNaN = vIsNaN;
            }
          }
        }
      }
    }
    if (this.constants.index === 1) return bestIndex;
    return best;
  },
);

/* y[n, c, oh, ow] = x[n, c, argmax / W, argmax % W]: the values of maxPool2dWithSaved, read where its argmax points. */
const GATHER = defineKernel(
  'maxPool2dGather',
  function maxPool2dGather(this: KernelThis<Strides4<'x'> | Strides4<'y'> | Window>, x: any, argmax: any): number {
    const i = this.thread.x;
    const n = Math.floor(i / this.constants.yStrideN);
    const c = Math.floor(i / this.constants.yStrideC) % this.constants.channels;
    const oh = Math.floor(i / this.constants.yStrideH) % this.constants.outHeight;
    const ow = Math.floor(i / this.constants.yStrideW) % this.constants.outWidth;
    const a = argmax[((n * this.constants.channels + c) * this.constants.outHeight + oh) * this.constants.outWidth + ow];
    const ih = Math.floor(a / this.constants.inWidth);
    const iw = a - ih * this.constants.inWidth;
    return x[n * this.constants.xStrideN + c * this.constants.xStrideC + ih * this.constants.xStrideH + iw * this.constants.xStrideW];
  },
);

/*
 * dx[n, c, ih, iw] = sum of dy over the windows that (ih, iw) won (see reference.ts), gathered per input
 * element rather than scattered per window. Window oh reads rows oh * strideH - padTop + kh * dilationH,
 * so row ih is its tap kh when t = ih + padTop - oh * strideH is kh * dilationH for a kh in [0, k): a
 * multiple of dilationH in [0, (k - 1) dilationH]. Those windows lie among the `windowsHeight` =
 * floor((k - 1) dilationH / strideH) + 1 last ones up to floor((ih + padTop) / strideH) (2 for a 3x3
 * stride-2 pool, instead of trying all 3 taps), and likewise for columns. They are visited in ascending
 * order, so the windows add up in the reference's order.
 */
const MAX_POOL_BACKWARD = defineKernel(
  'maxPool2dBackward',
  function maxPool2dBackward(
    this: KernelThis<Strides4<'x'> | Strides4<'dy'> | Window | 'windowsHeight' | 'windowsWidth'>,
    dy: any,
    argmax: any,
  ): number {
    const i = this.thread.x;
    const n = Math.floor(i / this.constants.xStrideN);
    const c = Math.floor(i / this.constants.xStrideC) % this.constants.channels;
    const ih = Math.floor(i / this.constants.xStrideH) % this.constants.inHeight;
    const iw = Math.floor(i / this.constants.xStrideW) % this.constants.inWidth;
    const me = ih * this.constants.inWidth + iw;
    const plane = (n * this.constants.channels + c) * this.constants.outHeight;
    const lastH = Math.floor((ih + this.constants.padTop) / this.constants.strideHeight);
    const lastW = Math.floor((iw + this.constants.padLeft) / this.constants.strideWidth);
    let sum = 0;
    for (let a = 0; a < this.constants.windowsHeight; a++) {
      const oh = lastH - this.constants.windowsHeight + 1 + a;
      const th = ih + this.constants.padTop - oh * this.constants.strideHeight;
      if (
        oh >= 0 &&
        oh < this.constants.outHeight &&
        th <= (this.constants.kernelHeight - 1) * this.constants.dilationHeight &&
        th % this.constants.dilationHeight === 0
      ) {
        for (let b = 0; b < this.constants.windowsWidth; b++) {
          const ow = lastW - this.constants.windowsWidth + 1 + b;
          const tw = iw + this.constants.padLeft - ow * this.constants.strideWidth;
          if (
            ow >= 0 &&
            ow < this.constants.outWidth &&
            tw <= (this.constants.kernelWidth - 1) * this.constants.dilationWidth &&
            tw % this.constants.dilationWidth === 0
          ) {
            if (argmax[(plane + oh) * this.constants.outWidth + ow] === me) {
              sum +=
                dy[
                  n * this.constants.dyStrideN +
                    c * this.constants.dyStrideC +
                    oh * this.constants.dyStrideH +
                    ow * this.constants.dyStrideW
                ];
            }
          }
        }
      }
    }
    return sum;
  },
);

function windowConstants(g: Pool2dGeometry) {
  return {
    channels: g.channels,
    inHeight: g.inHeight,
    inWidth: g.inWidth,
    outHeight: g.outHeight,
    outWidth: g.outWidth,
    kernelHeight: g.kernelHeight,
    kernelWidth: g.kernelWidth,
    strideHeight: g.strideHeight,
    strideWidth: g.strideWidth,
    dilationHeight: g.dilationHeight,
    dilationWidth: g.dilationWidth,
    padTop: g.pad.top,
    padLeft: g.pad.left,
  };
}

const outShape = (g: Pool2dGeometry) => [g.batch, g.channels, g.outHeight, g.outWidth];

/** The argmax of every window as a device tensor [N, C, outH, outW] in NCHW (see GpuMaxPool2dSaved). */
function argmaxOf(gpu: GpuContext, op: string, x: TensorArg, g: Pool2dGeometry): Promise<DeviceTensor> {
  const argmax = { shape: outShape(g), layout: 'NCHW' as const };
  return gpu.launch({
    op,
    kernel: MAX_POOL,
    inputs: [x],
    output: argmax,
    constants: { ...strides4('x', x), ...strides4('o', argmax), ...windowConstants(g), index: 1 },
  });
}

function isDeviceSaved(saved: unknown): saved is GpuMaxPool2dSaved {
  return typeof saved === 'object' && saved !== null && isDeviceTensor((saved as { argmax?: unknown }).argmax);
}

export function maxPool2dGpu(gpu: GpuContext): Pick<GpuBackendOps, keyof MaxPool2dOps> {
  return {
    async maxPool2d(x, options) {
      const g = gpu.checkArgs('maxPool2d', { x }, (host) => maxPool2dGeometry(host.x, options));
      const y = { shape: outShape(g), layout: x.layout };
      return gpu.launch({
        op: 'maxPool2d',
        kernel: MAX_POOL,
        inputs: [x],
        output: y,
        constants: { ...strides4('x', x), ...strides4('o', y), ...windowConstants(g), index: 0 },
      });
    },

    /* The argmax first, then y read from x where it points, so y and saved agree by construction. */
    async maxPool2dWithSaved(x, options) {
      const op = 'maxPool2dWithSaved';
      const g = gpu.checkArgs(op, { x }, (host) => maxPool2dGeometry(host.x, options, op));
      const y = { shape: outShape(g), layout: x.layout };
      gpu.checkFits(op, 'output', y.shape);
      return gpu.onDevice([x], async ([xOnDevice]) => {
        const argmax = await argmaxOf(gpu, op, xOnDevice as DeviceTensor, g);
        try {
          const values = await gpu.launch({
            op,
            kernel: GATHER,
            inputs: [xOnDevice as DeviceTensor, argmax],
            output: y,
            constants: { ...strides4('x', x), ...strides4('y', y), ...windowConstants(g) },
          });
          return { y: values, saved: { argmax } };
        } catch (error) {
          argmax.dispose();
          throw error;
        }
      });
    },

    /*
     * `saved` from the gpu's maxPool2dWithSaved holds a device argmax, which is checked for its shape and
     * layout; its values are this backend's own and are not read back to be range-checked. A host
     * MaxPool2dSaved is checked as the reference checks it and uploaded.
     */
    async maxPool2dBackward(dy, x, options, saved) {
      const op = 'maxPool2dBackward';
      const onDeviceSaved = isDeviceSaved(saved) ? saved : undefined;
      const g = gpu.checkArgs(op, { dy, x, saved }, (host) =>
        checkMaxPool2dBackward(host.dy, host.x, options, onDeviceSaved ? undefined : (host.saved as MaxPool2dSaved | undefined)),
      );
      if (onDeviceSaved) {
        const { argmax } = onDeviceSaved;
        const shape = outShape(g);
        if (argmax.layout !== 'NCHW' || argmax.shape.length !== 4 || argmax.shape.some((d, i) => d !== shape[i])) {
          fail(op, 'saved.argmax', `the device tensor [${shape.join(', ')}] in NCHW from maxPool2dWithSaved`, `${argmax}`);
        }
      }
      const hostArgmax = (saved as MaxPool2dSaved | undefined)?.argmax;
      const constants = {
        ...strides4('x', x),
        ...strides4('dy', dy),
        ...windowConstants(g),
        windowsHeight: Math.floor(((g.kernelHeight - 1) * g.dilationHeight) / g.strideHeight) + 1,
        windowsWidth: Math.floor(((g.kernelWidth - 1) * g.dilationWidth) / g.strideWidth) + 1,
      };
      const backward = (argmax: TensorArg) =>
        gpu.launch({ op, kernel: MAX_POOL_BACKWARD, inputs: [dy, argmax], output: { shape: x.shape, layout: x.layout }, constants });
      if (onDeviceSaved) return { dx: await backward(onDeviceSaved.argmax) };
      if (hostArgmax) return { dx: await backward(new Tensor(Float32Array.from(hostArgmax), outShape(g))) };
      gpu.checkFits(op, 'output', x.shape);
      const argmax = await argmaxOf(gpu, op, x, g);
      try {
        return { dx: await backward(argmax) };
      } finally {
        argmax.dispose();
      }
    },
  };
}
