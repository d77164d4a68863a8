import type { Layout } from '@shuffle/core';
import { type GpuContext, type Launch, type Strides4, strides4 } from '../gpu/context.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { defineKernel, type GpuKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps, TensorArg } from '../gpu/types.js';
import { type Conv2dGeometry, type Conv2dOps, checkConv2dBackward, conv2dGeometry } from './spec.js';

/*
 * The kernels below serve conv2d, depthwiseConv2d (conv2d with groups = C, one input channel and m output
 * channels per group) and linear (a 1x1 conv2d over a 1x1 image). In the formulas of reference.ts, with
 * output block g = floor(o / Cout_g) reading input block g:
 *
 *   y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] * x[n, g*Cin_g + c, i*sH - padTop + p*dH, j*sW - padLeft + q*dW]
 *
 * Every extent, stride and option is a compile-time constant; x, w and y (or dy) are indexed with the
 * strides of their own layouts, so one source serves NCHW and NHWC, and a weight stored in either.
 */

type Extents =
  | 'inChannels'
  | 'inHeight'
  | 'inWidth'
  | 'outChannels'
  | 'outHeight'
  | 'outWidth'
  | 'inPerGroup'
  | 'outPerGroup'
  | 'kernelHeight'
  | 'kernelWidth'
  | 'strideHeight'
  | 'strideWidth'
  | 'dilationHeight'
  | 'dilationWidth'
  | 'padTop'
  | 'padLeft';
type Window = Strides4<'x'> | Strides4<'w'> | Strides4<'y'> | Extents;
/** A chunked reduction's thread (chunk, cell) = thread.x (see CONV2D_BACKWARD_WEIGHT), its rows and their split. */
type Chunking = 'cells' | 'rows' | 'rowsPerChunk';

/*
 * One thread per output element, over y's flat memory index. The taps are walked row, column, then input
 * channel, so a tap in the padding is skipped once for all channels. `b` is the bias when hasBias is 1;
 * without a bias the caller passes the weight in its place and it is never read.
 */
const CONV2D = defineKernel('conv2d', function conv2d(this: KernelThis<Window | 'hasBias'>, x: any, w: any, b: any): number {
  const t = this.thread.x;
  const n = Math.floor(t / this.constants.yStrideN);
  const o = Math.floor(t / this.constants.yStrideC) % this.constants.outChannels;
  const i = Math.floor(t / this.constants.yStrideH) % this.constants.outHeight;
  const j = Math.floor(t / this.constants.yStrideW) % this.constants.outWidth;
  const xBase =
    n * this.constants.xStrideN + Math.floor(o / this.constants.outPerGroup) * this.constants.inPerGroup * this.constants.xStrideC;
  let sum = 0;
  if (this.constants.hasBias > 0) sum = b[o];
  for (let p = 0; p < this.constants.kernelHeight; p++) {
    const h = i * this.constants.strideHeight - this.constants.padTop + p * this.constants.dilationHeight;
    if (h >= 0 && h < this.constants.inHeight) {
      for (let q = 0; q < this.constants.kernelWidth; q++) {
        const v = j * this.constants.strideWidth - this.constants.padLeft + q * this.constants.dilationWidth;
        if (v >= 0 && v < this.constants.inWidth) {
          const xAt = xBase + h * this.constants.xStrideH + v * this.constants.xStrideW;
          const wAt = o * this.constants.wStrideN + p * this.constants.wStrideH + q * this.constants.wStrideW;
          for (let c = 0; c < this.constants.inPerGroup; c++) {
            sum += w[wAt + c * this.constants.wStrideC] * x[xAt + c * this.constants.xStrideC];
          }
        }
      }
    }
  }
  return sum;
});

/*
 * dx[n, k, h, v] = sum of dy[n, o, i, j] * w[o, c, p, q] over the output cells and taps that read x[n, k, h, v]
 * (see reference.ts), as a gather: one thread per element of dx, over x's flat memory index. With
 * k = g*Cin_g + c, the readers are the Cout_g outputs o of block g, at every tap (p, q) for which
 * i = (h + padTop - p*dH) / sH and j = (v + padLeft - q*dW) / sW are whole numbers inside the output.
 * Numerators are tested non-negative before dividing, so the quotients are exact (gpu.js corrects
 * float32 division of whole numbers on GL).
 */
const CONV2D_BACKWARD_INPUT = defineKernel(
  'conv2dBackwardInput',
  function conv2dBackwardInput(this: KernelThis<Window>, dy: any, w: any): number {
    const t = this.thread.x;
    const n = Math.floor(t / this.constants.xStrideN);
    const k = Math.floor(t / this.constants.xStrideC) % this.constants.inChannels;
    const h = Math.floor(t / this.constants.xStrideH) % this.constants.inHeight;
    const v = Math.floor(t / this.constants.xStrideW) % this.constants.inWidth;
    const group = Math.floor(k / this.constants.inPerGroup);
    const c = k - group * this.constants.inPerGroup;
    const firstOut = group * this.constants.outPerGroup;
    let sum = 0;
    for (let p = 0; p < this.constants.kernelHeight; p++) {
      const rowOffset = h + this.constants.padTop - p * this.constants.dilationHeight;
      const i = Math.floor(rowOffset / this.constants.strideHeight);
      if (rowOffset >= 0 && i * this.constants.strideHeight === rowOffset && i < this.constants.outHeight) {
        for (let q = 0; q < this.constants.kernelWidth; q++) {
          const columnOffset = v + this.constants.padLeft - q * this.constants.dilationWidth;
          const j = Math.floor(columnOffset / this.constants.strideWidth);
          if (columnOffset >= 0 && j * this.constants.strideWidth === columnOffset && j < this.constants.outWidth) {
            const dyAt = n * this.constants.yStrideN + i * this.constants.yStrideH + j * this.constants.yStrideW;
            const wAt = c * this.constants.wStrideC + p * this.constants.wStrideH + q * this.constants.wStrideW;
            for (let m = 0; m < this.constants.outPerGroup; m++) {
              const o = firstOut + m;
              sum += dy[dyAt + o * this.constants.yStrideC] * w[wAt + o * this.constants.wStrideN];
            }
          }
        }
      }
    }
    return sum;
  },
);

/*
 * The gradient reductions sum over every output row (n, i) and column j, N * outH * outW terms per cell:
 * 784 N for a 28x28 output. So each thread sums one chunk of `rowsPerChunk` consecutive rows (r = n*outH + i)
 * into partial[chunk, cell], and SUM_CHUNKS adds the chunks up; chunks = 1 writes the result directly.
 * Cells run fastest, so neighbouring threads read neighbouring elements (the same dy row, next x columns):
 * with chunks fastest they read rows far apart, which made the stem conv's weight gradient at batch 8
 * about 10x slower on webgpu (1.8 s against 0.17 s).
 *
 * dw[o, c, p, q] = sum_{n,i,j} dy[n, o, i, j] * x[n, g*Cin_g + c, h, v]  (taps in the padding add nothing).
 * The cell is w's flat memory index, so with one chunk the output is dw in w's layout.
 */
const CONV2D_BACKWARD_WEIGHT = defineKernel(
  'conv2dBackwardWeight',
  function conv2dBackwardWeight(this: KernelThis<Window | Chunking>, dy: any, x: any): number {
    const chunk = Math.floor(this.thread.x / this.constants.cells);
    const cell = this.thread.x - chunk * this.constants.cells;
    const o = Math.floor(cell / this.constants.wStrideN);
    const c = Math.floor(cell / this.constants.wStrideC) % this.constants.inPerGroup;
    const p = Math.floor(cell / this.constants.wStrideH) % this.constants.kernelHeight;
    const q = Math.floor(cell / this.constants.wStrideW) % this.constants.kernelWidth;
    const k = Math.floor(o / this.constants.outPerGroup) * this.constants.inPerGroup + c;
    let sum = 0;
    for (let r = 0; r < this.constants.rowsPerChunk; r++) {
      const row = chunk * this.constants.rowsPerChunk + r;
      const n = Math.floor(row / this.constants.outHeight);
      const i = row - n * this.constants.outHeight;
      const h = i * this.constants.strideHeight - this.constants.padTop + p * this.constants.dilationHeight;
      if (row < this.constants.rows && h >= 0 && h < this.constants.inHeight) {
        const dyAt = n * this.constants.yStrideN + o * this.constants.yStrideC + i * this.constants.yStrideH;
        const xAt = n * this.constants.xStrideN + k * this.constants.xStrideC + h * this.constants.xStrideH;
        for (let j = 0; j < this.constants.outWidth; j++) {
          const v = j * this.constants.strideWidth - this.constants.padLeft + q * this.constants.dilationWidth;
          if (v >= 0 && v < this.constants.inWidth) sum += dy[dyAt + j * this.constants.yStrideW] * x[xAt + v * this.constants.xStrideW];
        }
      }
    }
    return sum;
  },
);

/* db[o] = sum_{n,i,j} dy[n, o, i, j], chunked like the weight's gradient: partial[chunk, o]. */
const CONV2D_BACKWARD_BIAS = defineKernel(
  'conv2dBackwardBias',
  function conv2dBackwardBias(this: KernelThis<Window | Chunking>, dy: any): number {
    const chunk = Math.floor(this.thread.x / this.constants.cells);
    const o = this.thread.x - chunk * this.constants.cells;
    let sum = 0;
    for (let r = 0; r < this.constants.rowsPerChunk; r++) {
      const row = chunk * this.constants.rowsPerChunk + r;
      const n = Math.floor(row / this.constants.outHeight);
      const i = row - n * this.constants.outHeight;
      if (row < this.constants.rows) {
        const dyAt = n * this.constants.yStrideN + o * this.constants.yStrideC + i * this.constants.yStrideH;
        for (let j = 0; j < this.constants.outWidth; j++) sum += dy[dyAt + j * this.constants.yStrideW];
      }
    }
    return sum;
  },
);

/* partial [chunks, cells] -> [ceil(chunks / perThread), cells]: thread (t, cell) adds chunks t*perThread .. t*perThread + perThread - 1. */
const SUM_CHUNKS = defineKernel(
  'convSumChunks',
  function convSumChunks(this: KernelThis<'cells' | 'chunks' | 'perThread'>, partial: any): number {
    const first = Math.floor(this.thread.x / this.constants.cells);
    const cell = this.thread.x - first * this.constants.cells;
    let sum = 0;
    for (let k = 0; k < this.constants.perThread; k++) {
      const chunk = first * this.constants.perThread + k;
      if (chunk < this.constants.chunks) sum += partial[chunk * this.constants.cells + cell];
    }
    return sum;
  },
);

/* An empty sum: a result whose terms all involve an empty tensor (a batch of 0, linear's in = 0 or out = 0). */
const ZEROS = defineKernel(
  'convZeros',
  function convZeros(this: KernelThis): number {
    return 0;
  },
  { anySize: true },
);

/* y[n, o, ...] = b[o]: a convolution with no input terms (linear with in = 0). */
const BIAS_ONLY = defineKernel('convBiasOnly', function convBiasOnly(this: KernelThis<'yStrideC' | 'outChannels'>, b: any): number {
  return b[Math.floor(this.thread.x / this.constants.yStrideC) % this.constants.outChannels];
});

/** The kernels of one convolution-like op; each op names its own copies, so stats and errors name the op. */
export interface ConvKernels {
  forward: GpuKernel;
  backwardInput: GpuKernel;
  /**
   * Chunked like CONV2D_BACKWARD_WEIGHT (constants cells, rows, rowsPerChunk), or, when
   * `weightInOnePass`, one thread per weight element summing all `rows` rows itself.
   */
  backwardWeight: GpuKernel;
  weightInOnePass?: boolean;
  backwardBias: GpuKernel;
}

/** The conv2d kernels under `op`'s names (`${op}`, `${op}BackwardInput`, ...): same sources, own cache entries and stats. */
export function convKernels(op: string): ConvKernels {
  return {
    forward: { ...CONV2D, name: op },
    backwardInput: { ...CONV2D_BACKWARD_INPUT, name: `${op}BackwardInput` },
    backwardWeight: { ...CONV2D_BACKWARD_WEIGHT, name: `${op}BackwardWeight` },
    backwardBias: { ...CONV2D_BACKWARD_BIAS, name: `${op}BackwardBias` },
  };
}

/** A launch whose every output element is a sum of products over its inputs: zeros when an input is empty. */
function launchSum(gpu: GpuContext, launch: Launch): Promise<DeviceTensor> {
  if (launch.inputs.some((t) => t.size === 0)) return gpu.launch({ op: launch.op, kernel: ZEROS, inputs: [], output: launch.output });
  return gpu.launch(launch);
}

const CONV2D_KERNELS = convKernels('conv2d');

/**
 * A resolved convolution on the gpu: the geometry (bias not read) and how the kernels index the tensors:
 * x and dy (y) in `layout`, the weight [Cout, Cin_g, kH, kW] in `weightLayout`. linear passes its 2-D
 * tensors as [N, C, 1, 1] and [out, in, 1, 1] NCHW, whose memory order they share.
 */
export interface ConvCall {
  op: string;
  kernels: ConvKernels;
  geometry: Omit<Conv2dGeometry, 'bias'>;
  layout: Layout;
  weightLayout: Layout;
}

function windowConstants({ geometry: g, layout, weightLayout }: ConvCall) {
  return {
    ...strides4('x', { shape: [g.batch, g.inChannels, g.inHeight, g.inWidth], layout }),
    ...strides4('w', { shape: [g.outChannels, g.inChannelsPerGroup, g.kernelHeight, g.kernelWidth], layout: weightLayout }),
    ...strides4('y', { shape: [g.batch, g.outChannels, g.outHeight, g.outWidth], layout }),
    inChannels: g.inChannels,
    inHeight: g.inHeight,
    inWidth: g.inWidth,
    outChannels: g.outChannels,
    outHeight: g.outHeight,
    outWidth: g.outWidth,
    inPerGroup: g.inChannelsPerGroup,
    outPerGroup: g.outChannelsPerGroup,
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

/**
 * y = conv(x, weight) + bias, as `output` (x's layout for the convolutions, [N, out] for linear). An
 * empty output launches nothing; an empty x or weight with a non-empty output (linear with in = 0)
 * leaves only the bias.
 */
export function convolve(
  gpu: GpuContext,
  call: ConvCall,
  x: TensorArg,
  weight: TensorArg,
  bias: TensorArg | undefined,
  output: { shape: readonly number[]; layout: Layout },
): Promise<DeviceTensor> {
  const constants = windowConstants(call);
  if (x.size === 0 || weight.size === 0) {
    if (!bias) return gpu.launch({ op: call.op, kernel: ZEROS, inputs: [], output });
    const { yStrideC, outChannels } = constants;
    return gpu.launch({ op: call.op, kernel: BIAS_ONLY, inputs: [bias], output, constants: { yStrideC, outChannels } });
  }
  return gpu.onDevice([x, weight], ([xOnDevice, weightOnDevice]) =>
    gpu.launch({
      op: call.op,
      kernel: call.kernels.forward,
      inputs: [xOnDevice as DeviceTensor, weightOnDevice as DeviceTensor, bias ?? (weightOnDevice as DeviceTensor)],
      output,
      constants: { ...constants, hasBias: bias ? 1 : 0 },
    }),
  );
}

/** Terms one thread of a gradient reduction adds up (a chunk of whole rows, at least one row). */
export const TERMS_PER_THREAD = 512;
/** At most this many partial sums (2^22 elements fit every mode's limits). */
const MAX_PARTIALS = 2 ** 22;

/**
 * How a reduction over `rows` rows of `rowLength` terms, for each of `cells` cells, is cut into chunks of
 * whole rows: as few chunks as keep each within TERMS_PER_THREAD terms (fewer when the partial sums would
 * pass MAX_PARTIALS), with the rows spread evenly, so that no thread loops over rows past the end.
 */
export function planChunks(cells: number, rows: number, rowLength: number): { rowsPerChunk: number; chunks: number } {
  let chunks = Math.ceil(rows / Math.max(1, Math.floor(TERMS_PER_THREAD / rowLength)));
  chunks = Math.max(1, Math.min(chunks, Math.floor(MAX_PARTIALS / cells)));
  const rowsPerChunk = Math.max(1, Math.ceil(rows / chunks));
  return { rowsPerChunk, chunks: Math.max(1, Math.ceil(rows / rowsPerChunk)) };
}

/**
 * Runs a chunked reduction kernel over `cells` cells into `output`: partial sums of at most
 * TERMS_PER_THREAD terms each, then SUM_CHUNKS passes (each also at most TERMS_PER_THREAD terms a
 * thread) until one value per cell is left. Intermediates are disposed, on failure too.
 */
async function reduce(
  gpu: GpuContext,
  op: string,
  kernel: GpuKernel,
  inputs: readonly DeviceTensor[],
  constants: Record<string, number>,
  cells: number,
  rows: number,
  output: { shape: readonly number[]; layout: Layout },
): Promise<DeviceTensor> {
  if (inputs.some((t) => t.size === 0)) return gpu.launch({ op, kernel: ZEROS, inputs: [], output });
  const { rowsPerChunk, chunks } = planChunks(cells, rows, constants.outWidth as number);
  const into = (count: number) => (count === 1 ? output : { shape: [count, cells] });
  let partial = await gpu.launch({ op, kernel, inputs, output: into(chunks), constants: { ...constants, cells, rows, rowsPerChunk } });
  let left = chunks;
  try {
    while (left > 1) {
      const perThread = Math.min(left, TERMS_PER_THREAD);
      const outChunks = Math.ceil(left / perThread);
      const next = await gpu.launch({
        op,
        kernel: SUM_CHUNKS,
        inputs: [partial],
        output: into(outChunks),
        constants: { cells, chunks: left, perThread },
      });
      partial.dispose();
      partial = next;
      left = outChunks;
    }
  } catch (error) {
    partial.dispose();
    throw error;
  }
  return partial;
}

/**
 * dx, dweight and, when `bias` is given, dbias of a convolution: dx in x's shape and layout, dweight in
 * the weight's, dbias [Cout]. dy, x and weight are uploaded once for the three; on a failure the
 * gradients already made are disposed.
 */
export function convolveBackward(
  gpu: GpuContext,
  call: ConvCall,
  dy: TensorArg,
  x: TensorArg,
  weight: TensorArg,
  bias: TensorArg | undefined,
): Promise<{ dx: DeviceTensor; dweight: DeviceTensor; dbias?: DeviceTensor }> {
  const { op, kernels, geometry: g } = call;
  const constants = windowConstants(call);
  const rows = g.batch * g.outHeight;
  return gpu.onDevice([dy, x, weight], async (onDevice) => {
    const [dyOnDevice, xOnDevice, weightOnDevice] = onDevice as [DeviceTensor, DeviceTensor, DeviceTensor];
    const made: DeviceTensor[] = [];
    try {
      const dx = await launchSum(gpu, {
        op,
        kernel: kernels.backwardInput,
        inputs: [dyOnDevice, weightOnDevice],
        output: { shape: x.shape, layout: x.layout },
        constants,
      });
      made.push(dx);
      const dweightOutput = { shape: weight.shape, layout: weight.layout };
      const dweight = await (kernels.weightInOnePass
        ? launchSum(gpu, {
            op,
            kernel: kernels.backwardWeight,
            inputs: [dyOnDevice, xOnDevice],
            output: dweightOutput,
            constants: { ...constants, rows },
          })
        : reduce(gpu, op, kernels.backwardWeight, [dyOnDevice, xOnDevice], constants, weight.size, rows, dweightOutput));
      made.push(dweight);
      if (!bias) return { dx, dweight };
      const dbias = await reduce(gpu, op, kernels.backwardBias, [dyOnDevice], constants, g.outChannels, rows, {
        shape: bias.shape,
        layout: bias.layout,
      });
      return { dx, dweight, dbias };
    } catch (error) {
      for (const t of made) t.dispose();
      throw error;
    }
  });
}

export function conv2dGpu(gpu: GpuContext): GpuOps<Conv2dOps> {
  const callFor = (geometry: Conv2dGeometry, x: TensorArg, weight: TensorArg): ConvCall => ({
    op: 'conv2d',
    kernels: CONV2D_KERNELS,
    geometry,
    layout: x.layout,
    weightLayout: weight.layout,
  });
  return {
    async conv2d(x, weight, options) {
      const geometry = gpu.checkArgs('conv2d', { x, weight, options }, (host) =>
        conv2dGeometry('conv2d', host.x, host.weight, host.options),
      );
      const { batch, outChannels, outHeight, outWidth } = geometry;
      return convolve(gpu, callFor(geometry, x, weight), x, weight, options?.bias, {
        shape: [batch, outChannels, outHeight, outWidth],
        layout: x.layout,
      });
    },

    async conv2dBackward(dy, x, weight, options) {
      const geometry = gpu.checkArgs('conv2dBackward', { dy, x, weight, options }, (host) =>
        checkConv2dBackward(host.dy, host.x, host.weight, host.options),
      );
      return convolveBackward(gpu, { ...callFor(geometry, x, weight), op: 'conv2dBackward' }, dy, x, weight, options?.bias);
    },
  };
}
