import { type GpuContext, type Strides4, strides4 } from '../gpu/context.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps } from '../gpu/types.js';
import { type AvgPool2dGeometry, type AvgPool2dOps, avgPool2dGeometry, checkAvgPool2dBackward } from './spec.js';

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
  | 'padTop'
  | 'padBottom'
  | 'padLeft'
  | 'padRight'
  | 'countIncludePad';

/*
 * Window (oh, ow)'s divisor, as avgWindow (spec.ts) computes it: the window [start, start + k) cut at the
 * end of the padded input, or with countIncludePad = 0 cut to the input itself, rows times columns.
 */
function avgPoolDivisor(
  startH: number,
  startW: number,
  kernelHeight: number,
  kernelWidth: number,
  inHeight: number,
  inWidth: number,
  padBottom: number,
  padRight: number,
  countIncludePad: number,
): number {
  const endH = Math.min(startH + kernelHeight, inHeight + padBottom);
  const endW = Math.min(startW + kernelWidth, inWidth + padRight);
  if (countIncludePad === 1) return (endH - startH) * (endW - startW);
  return (Math.min(endH, inHeight) - Math.max(startH, 0)) * (Math.min(endW, inWidth) - Math.max(startW, 0));
}

/*
 * One thread per output element in y's layout: the sum of the window's taps that fall inside the input
 * (the rows and columns avgWindow's [begin, end) holds), in the reference's row-major order, over the
 * divisor.
 */
const AVG_POOL = defineKernel(
  'avgPool2d',
  function avgPool2d(this: KernelThis<Strides4<'x'> | Strides4<'y'> | Window>, x: any): number {
    const i = this.thread.x;
    const n = Math.floor(i / this.constants.yStrideN);
    const c = Math.floor(i / this.constants.yStrideC) % this.constants.channels;
    const oh = Math.floor(i / this.constants.yStrideH) % this.constants.outHeight;
    const ow = Math.floor(i / this.constants.yStrideW) % this.constants.outWidth;
    const base = n * this.constants.xStrideN + c * this.constants.xStrideC;
    const startH = oh * this.constants.strideHeight - this.constants.padTop;
    const startW = ow * this.constants.strideWidth - this.constants.padLeft;
    let sum = 0;
    for (let kh = 0; kh < this.constants.kernelHeight; kh++) {
      const ih = startH + kh;
      if (ih >= 0 && ih < this.constants.inHeight) {
        for (let kw = 0; kw < this.constants.kernelWidth; kw++) {
          const iw = startW + kw;
          if (iw >= 0 && iw < this.constants.inWidth) sum += x[base + ih * this.constants.xStrideH + iw * this.constants.xStrideW];
        }
      }
    }
    return (
      sum /
      avgPoolDivisor(
        startH,
        startW,
        this.constants.kernelHeight,
        this.constants.kernelWidth,
        this.constants.inHeight,
        this.constants.inWidth,
        this.constants.padBottom,
        this.constants.padRight,
        this.constants.countIncludePad,
      )
    );
  },
  { functions: [avgPoolDivisor] },
);

/*
 * dx[n, c, ih, iw] = sum of dy_o / D_o over the windows o that read (ih, iw) (see reference.ts),
 * gathered per input element: window oh covers rows [oh * strideH - padTop, + kernelHeight), so row ih
 * lies in the `windowsHeight` = floor((kernelHeight - 1) / strideH) + 1 windows up to
 * floor((ih + padTop) / strideH) that start at most kernelHeight - 1 rows above it, and likewise for
 * columns. They are visited in ascending order, so the windows add up in the reference's order.
 */
const AVG_POOL_BACKWARD = defineKernel(
  'avgPool2dBackward',
  function avgPool2dBackward(
    this: KernelThis<Strides4<'x'> | Strides4<'dy'> | Window | 'windowsHeight' | 'windowsWidth'>,
    dy: any,
  ): number {
    const i = this.thread.x;
    const n = Math.floor(i / this.constants.xStrideN);
    const c = Math.floor(i / this.constants.xStrideC) % this.constants.channels;
    const ih = Math.floor(i / this.constants.xStrideH) % this.constants.inHeight;
    const iw = Math.floor(i / this.constants.xStrideW) % this.constants.inWidth;
    const base = n * this.constants.dyStrideN + c * this.constants.dyStrideC;
    const lastH = Math.floor((ih + this.constants.padTop) / this.constants.strideHeight);
    const lastW = Math.floor((iw + this.constants.padLeft) / this.constants.strideWidth);
    let sum = 0;
    for (let a = 0; a < this.constants.windowsHeight; a++) {
      const oh = lastH - this.constants.windowsHeight + 1 + a;
      const startH = oh * this.constants.strideHeight - this.constants.padTop;
      if (oh >= 0 && oh < this.constants.outHeight && ih - startH < this.constants.kernelHeight) {
        for (let b = 0; b < this.constants.windowsWidth; b++) {
          const ow = lastW - this.constants.windowsWidth + 1 + b;
          const startW = ow * this.constants.strideWidth - this.constants.padLeft;
          if (ow >= 0 && ow < this.constants.outWidth && iw - startW < this.constants.kernelWidth) {
            const divisor = avgPoolDivisor(
              startH,
              startW,
              this.constants.kernelHeight,
              this.constants.kernelWidth,
              this.constants.inHeight,
              this.constants.inWidth,
              this.constants.padBottom,
              this.constants.padRight,
              this.constants.countIncludePad,
            );
            sum += dy[base + oh * this.constants.dyStrideH + ow * this.constants.dyStrideW] / divisor;
          }
        }
      }
    }
    return sum;
  },
  { functions: [avgPoolDivisor] },
);

function windowConstants(g: AvgPool2dGeometry) {
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
    padTop: g.pad.top,
    padBottom: g.pad.bottom,
    padLeft: g.pad.left,
    padRight: g.pad.right,
    countIncludePad: g.countIncludePad ? 1 : 0,
  };
}

export function avgPool2dGpu(gpu: GpuContext): GpuOps<AvgPool2dOps> {
  return {
    async avgPool2d(x, options) {
      const g = gpu.checkArgs('avgPool2d', { x }, (host) => avgPool2dGeometry(host.x, options));
      const y = { shape: [g.batch, g.channels, g.outHeight, g.outWidth], layout: x.layout };
      return gpu.launch({
        op: 'avgPool2d',
        kernel: AVG_POOL,
        inputs: [x],
        output: y,
        constants: { ...strides4('x', x), ...strides4('y', y), ...windowConstants(g) },
      });
    },

    async avgPool2dBackward(dy, x, options) {
      const g = gpu.checkArgs('avgPool2dBackward', { dy, x }, (host) => checkAvgPool2dBackward(host.dy, host.x, options));
      const dx = await gpu.launch({
        op: 'avgPool2dBackward',
        kernel: AVG_POOL_BACKWARD,
        inputs: [dy],
        output: { shape: x.shape, layout: x.layout },
        constants: {
          ...strides4('x', x),
          ...strides4('dy', dy),
          ...windowConstants(g),
          windowsHeight: Math.floor((g.kernelHeight - 1) / g.strideHeight) + 1,
          windowsWidth: Math.floor((g.kernelWidth - 1) / g.strideWidth) + 1,
        },
      });
      return { dx };
    },
  };
}
