import type { Layout } from '@shuffle/core';
import { COPY, type GpuContext, type Strides4, strides4 } from '../gpu/context.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps, TensorArg } from '../gpu/types.js';
import { type ConcatOps, concatBackwardGeometry, concatGeometry } from './spec.js';

type Extents = 'channels' | 'height' | 'width';

/*
 * Two inputs per kernel: output channel c < aChannels reads a's channel c, the rest read b's channel
 * c - aChannels. Only the taken branch reads, so neither input is read out of its range. More inputs are
 * joined left to right, one kernel per extra input (ShuffleNet concatenates two).
 */
const CONCAT2 = defineKernel(
  'concat2',
  function concat2(this: KernelThis<Strides4<'y'> | Strides4<'a'> | Strides4<'b'> | Extents | 'aChannels'>, a: any, b: any): number {
    const i = this.thread.x;
    const n = Math.floor(i / this.constants.yStrideN);
    const c = Math.floor(i / this.constants.yStrideC) % this.constants.channels;
    const h = Math.floor(i / this.constants.yStrideH) % this.constants.height;
    const w = Math.floor(i / this.constants.yStrideW) % this.constants.width;
    if (c < this.constants.aChannels) {
      return a[n * this.constants.aStrideN + c * this.constants.aStrideC + h * this.constants.aStrideH + w * this.constants.aStrideW];
    }
    const cb = c - this.constants.aChannels;
    return b[n * this.constants.bStrideN + cb * this.constants.bStrideC + h * this.constants.bStrideH + w * this.constants.bStrideW];
  },
);

/* Channels [offset, offset + channels) of x, as a tensor of their own: concat's backward and split's forward. */
const SLICE_CHANNELS = defineKernel(
  'sliceChannels',
  function sliceChannels(this: KernelThis<Strides4<'y'> | Strides4<'x'> | Extents | 'offset'>, x: any): number {
    const i = this.thread.x;
    const n = Math.floor(i / this.constants.yStrideN);
    const c = Math.floor(i / this.constants.yStrideC) % this.constants.channels;
    const h = Math.floor(i / this.constants.yStrideH) % this.constants.height;
    const w = Math.floor(i / this.constants.yStrideW) % this.constants.width;
    return x[
      n * this.constants.xStrideN +
        (c + this.constants.offset) * this.constants.xStrideC +
        h * this.constants.xStrideH +
        w * this.constants.xStrideW
    ];
  },
);

/** The 4-D tensors `xs` (checked: same N, H, W and layout) joined along channels. */
export async function concatChannels(gpu: GpuContext, op: string, xs: readonly TensorArg[]): Promise<DeviceTensor> {
  const [first, ...rest] = xs as [TensorArg, ...TensorArg[]];
  const [batch, , height, width] = first.shape as [number, number, number, number];
  const layout = first.layout;
  const totalChannels = xs.reduce((sum, x) => sum + (x.shape[1] as number), 0);
  gpu.checkFits(op, 'output', [batch, totalChannels, height, width]);
  if (rest.length === 0) return gpu.launch({ op, kernel: COPY, inputs: [first], output: { shape: first.shape, layout } });
  let joined: TensorArg = first;
  try {
    for (const next of rest) {
      const aChannels = joined.shape[1] as number;
      const y = { shape: [batch, aChannels + (next.shape[1] as number), height, width], layout };
      const step: DeviceTensor = await gpu.launch({
        op,
        kernel: CONCAT2,
        inputs: [joined, next],
        output: y,
        constants: {
          ...strides4('y', y),
          ...strides4('a', joined),
          ...strides4('b', next),
          channels: y.shape[1] as number,
          height,
          width,
          aChannels,
        },
      });
      if (joined !== first) (joined as DeviceTensor).dispose();
      joined = step;
    }
  } catch (error) {
    if (joined !== first) (joined as DeviceTensor).dispose();
    throw error;
  }
  return joined as DeviceTensor;
}

/** Channels [offset, offset + channels) of the 4-D tensor x, in x's layout. */
export function sliceChannels(gpu: GpuContext, op: string, x: TensorArg, offset: number, channels: number): Promise<DeviceTensor> {
  const [batch, , height, width] = x.shape as [number, number, number, number];
  const y: { shape: number[]; layout: Layout } = { shape: [batch, channels, height, width], layout: x.layout };
  return gpu.launch({
    op,
    kernel: SLICE_CHANNELS,
    inputs: [x],
    output: y,
    constants: { ...strides4('y', y), ...strides4('x', x), channels, height, width, offset },
  });
}

export function concatGpu(gpu: GpuContext): GpuOps<ConcatOps> {
  return {
    async concat(xs) {
      gpu.checkArgs('concat', { xs }, (host) => concatGeometry(host.xs));
      return gpu.onDevice(xs, (devices) => concatChannels(gpu, 'concat', devices));
    },

    /* dx_i is the slice of dy at input i's channels (see reference.ts): concat's backward is a split. */
    async concatBackward(dy, xs) {
      const { channels, offsets } = gpu.checkArgs('concatBackward', { dy, xs }, (host) => concatBackwardGeometry(host.dy, host.xs));
      return gpu.onDevice([dy], async ([dyOnDevice]) => {
        const dxs: DeviceTensor[] = [];
        try {
          for (const [i, size] of channels.entries()) {
            dxs.push(await sliceChannels(gpu, 'concatBackward', dyOnDevice as DeviceTensor, offsets[i] as number, size));
          }
        } catch (error) {
          for (const dx of dxs) dx.dispose();
          throw error;
        }
        return { dxs };
      });
    },
  };
}
