/**
 * Batch norm on the gpu. Where the state lives:
 * - runningMean and runningVar may be device or host tensors. Training updates them in place, as every
 *   backend does: a device tensor takes the updated values' device memory (replaceMemory), so a training
 *   step reads nothing back and an op already running on the old values still reads those; a host
 *   tensor's data is overwritten (one read of C values each).
 * - Inference checks runningVar >= 0 like the reference, with its message. A device runningVar's values
 *   are read back for that the first time it is used in inference, and not again while it keeps them.
 * - batchNorm2dWithSaved returns the statistics as device tensors [C] (GpuBatchNorm2dSaved); the
 *   backward takes those or a host BatchNorm2dSaved.
 */
import { fail, Tensor } from '@shuffle/core';
import { COPY, type GpuContext } from '../gpu/context.js';
import { type DeviceMemory, type DeviceTensor, isDeviceTensor, memoryOf, replaceMemory } from '../gpu/device-tensor.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuBackendOps, GpuBatchNorm2dSaved, TensorArg } from '../gpu/types.js';
import {
  type BatchNorm2dGeometry,
  type BatchNorm2dOps,
  type BatchNorm2dOptions,
  type BatchNorm2dSaved,
  batchNorm2dGeometry,
  checkBatchNorm2dBackward,
} from './spec.js';

/*
 * Per-channel sums over the M = N*H*W values of a channel run in two stages, so that no thread loops
 * over all M (6272 at 28x28, batch 8) and float32 sums stay short: the channel's values, in logical
 * order m = n*H*W + h*W + w, are cut into `chunks` chunks of `chunk` values (about sqrt(M) each), a
 * first kernel reduces each chunk (grid [chunks, C, 2]: two partial results per chunk), and a second
 * one combines a channel's chunks. In either layout value m of channel c sits at
 * n*xStrideN + c*xStrideC + hw*xStrideHW with hw = h*W + w (xStrideHW = 1 in NCHW, C in NHWC).
 */
type Chunks = 'xStrideN' | 'xStrideC' | 'xStrideHW' | 'spatial' | 'count' | 'chunk' | 'chunks';

/*
 * Chunk p of channel c (thread x = p, y = c): z = 0 gives the chunk's sum S_p; z = 1 its sum of squared
 * deviations from its own mean, M2_p = sum (x - S_p / n_p)^2. The batch variance is then combined
 * exactly (Chan et al.) without the cancellation of E[x^2] - mean^2.
 */
const STATS_PARTIALS = defineKernel(
  'batchNorm2dStatsPartials',
  function batchNorm2dStatsPartials(this: KernelThis<Chunks>, x: any): number {
    const start = this.thread.x * this.constants.chunk;
    const base = this.thread.y * this.constants.xStrideC;
    let sum = 0;
    let values = 0;
    for (let j = 0; j < this.constants.chunk; j++) {
      const m = start + j;
      if (m < this.constants.count) {
        const n = Math.floor(m / this.constants.spatial);
        sum += x[base + n * this.constants.xStrideN + (m - n * this.constants.spatial) * this.constants.xStrideHW];
        values += 1;
      }
    }
    if (this.thread.z === 0) return sum;
    const mean = sum / values;
    let squares = 0;
    for (let j = 0; j < this.constants.chunk; j++) {
      const m = start + j;
      if (m < this.constants.count) {
        const n = Math.floor(m / this.constants.spatial);
        const d = x[base + n * this.constants.xStrideN + (m - n * this.constants.spatial) * this.constants.xStrideHW] - mean;
        squares += d * d;
      }
    }
    return squares;
  },
);

/*
 * One thread per channel, from the partials [2, C, chunks]: mean = sum_p S_p / M and
 * M2 = sum_p (M2_p + n_p (S_p / n_p - mean)^2), the channel's sum of squared deviations; the biased
 * variance is M2 / M. `stat` picks the result:
 *   0: the batch mean;  1: invStd = 1 / sqrt(M2 / M + eps);
 *   2: the new running mean (1 - momentum) running + momentum mean;
 *   3: the new running variance (1 - momentum) running + momentum M2 / (M - 1) (unbiased).
 */
const STATS = defineKernel(
  'batchNorm2dStats',
  function batchNorm2dStats(
    this: KernelThis<'count' | 'chunk' | 'chunks' | 'channels' | 'stat' | 'eps' | 'momentum'>,
    partials: any,
    running: any,
  ): number {
    const c = this.thread.x;
    const row = c * this.constants.chunks;
    let sum = 0;
    for (let p = 0; p < this.constants.chunks; p++) sum += partials[row + p];
    const mean = sum / this.constants.count;
    if (this.constants.stat === 0) return mean;
    if (this.constants.stat === 2) return (1 - this.constants.momentum) * running[c] + this.constants.momentum * mean;
    let squares = 0;
    for (let p = 0; p < this.constants.chunks; p++) {
      const values = Math.min(this.constants.chunk, this.constants.count - p * this.constants.chunk);
      const d = partials[row + p] / values - mean;
      squares += partials[this.constants.channels * this.constants.chunks + row + p] + values * d * d;
    }
    if (this.constants.stat === 1) return 1 / Math.sqrt(squares / this.constants.count + this.constants.eps);
    return (1 - this.constants.momentum) * running[c] + (this.constants.momentum * squares) / (this.constants.count - 1);
  },
);

/*
 * y = (x - mean[c]) * gamma[c] * invStd[c] + beta[c], one thread per element in x's layout. With
 * `fromVariance` = 1 the third argument is a variance and invStd = 1 / sqrt(variance + eps) (inference
 * straight from the running statistics, in one launch). With `relu` = 1, y is then relu(y) in the same
 * launch (batchNormRelu2d), NaN passing as relu's kernel lets it.
 */
const NORMALIZE = defineKernel(
  'batchNorm2dNormalize',
  function batchNorm2dNormalize(
    this: KernelThis<'xStrideC' | 'channels' | 'fromVariance' | 'eps' | 'relu'>,
    x: any,
    mean: any,
    spread: any,
    gamma: any,
    beta: any,
  ): number {
    const i = this.thread.x;
    const c = Math.floor(i / this.constants.xStrideC) % this.constants.channels;
    let invStd = spread[c];
    if (this.constants.fromVariance === 1) invStd = 1 / Math.sqrt(spread[c] + this.constants.eps);
    const v = (x[i] - mean[c]) * (gamma[c] * invStd) + beta[c];
    // biome-ignore lint/suspicious/noSelfCompare: the NaN test that every mode compiles (gpu.js has no Number.isNaN)
    if (this.constants.relu === 0 || v > 0 || v !== v) return v;
    return 0;
  },
);

/*
 * batchNormRelu2d's backward starts from dz = dy where the forward's pre-activation z > 0, else 0, with
 * z recomputed from the saved statistics by NORMALIZE's expression. On the float32 modes a shader
 * compiler may contract the two kernels' multiply-adds differently, so a z within rounding of 0 may be
 * masked otherwise than the forward's output; such a value's gradient is the kink's anyway.
 */
const RELU_MASK = defineKernel(
  'batchNormReluMask',
  function batchNormReluMask(
    this: KernelThis<'xStrideC' | 'channels'>,
    dy: any,
    x: any,
    mean: any,
    invStd: any,
    gamma: any,
    beta: any,
  ): number {
    const i = this.thread.x;
    const c = Math.floor(i / this.constants.xStrideC) % this.constants.channels;
    if ((x[i] - mean[c]) * (gamma[c] * invStd[c]) + beta[c] > 0) return dy[i];
    return 0;
  },
);

/* invStd = 1 / sqrt(variance + eps): inference's saved statistics. */
const INV_STD = defineKernel('batchNorm2dInvStd', function batchNorm2dInvStd(this: KernelThis<'eps'>, variance: any): number {
  return 1 / Math.sqrt(variance[this.thread.x] + this.constants.eps);
});

/*
 * The backward's chunk sums (thread x = chunk, y = channel): z = 0 sums dy (toward dbeta), z = 1 sums
 * dy * xhat with xhat = (x - mean[c]) invStd[c] (toward dgamma).
 */
const GRADIENT_PARTIALS = defineKernel(
  'batchNorm2dGradientPartials',
  function batchNorm2dGradientPartials(this: KernelThis<Chunks>, dy: any, x: any, mean: any, invStd: any): number {
    const c = this.thread.y;
    const start = this.thread.x * this.constants.chunk;
    const base = c * this.constants.xStrideC;
    const mu = mean[c];
    const s = invStd[c];
    let sum = 0;
    for (let j = 0; j < this.constants.chunk; j++) {
      const m = start + j;
      if (m < this.constants.count) {
        const n = Math.floor(m / this.constants.spatial);
        const at = base + n * this.constants.xStrideN + (m - n * this.constants.spatial) * this.constants.xStrideHW;
        if (this.thread.z === 0) sum += dy[at];
        else sum += dy[at] * ((x[at] - mu) * s);
      }
    }
    return sum;
  },
);

/* A channel's chunk sums added up: `half` 0 gives dbeta = sum dy, 1 gives dgamma = sum dy * xhat. */
const GRADIENT_SUMS = defineKernel(
  'batchNorm2dGradientSums',
  function batchNorm2dGradientSums(this: KernelThis<'chunks' | 'channels' | 'half'>, partials: any): number {
    const row = (this.constants.half * this.constants.channels + this.thread.x) * this.constants.chunks;
    let sum = 0;
    for (let p = 0; p < this.constants.chunks; p++) sum += partials[row + p];
    return sum;
  },
);

/* dgamma and dbeta of a batch with no values: sums over nothing. */
const ZEROS = defineKernel('batchNorm2dZeros', function batchNorm2dZeros(this: KernelThis): number {
  return 0;
});

/* Training: dx = (gamma invStd / M) (M dy - dbeta - xhat dgamma) (see reference.ts), per element in x's layout. */
const TRAINING_DX = defineKernel(
  'batchNorm2dTrainingDx',
  function batchNorm2dTrainingDx(
    this: KernelThis<'xStrideC' | 'channels' | 'count'>,
    dy: any,
    x: any,
    gamma: any,
    mean: any,
    invStd: any,
    dbeta: any,
    dgamma: any,
  ): number {
    const i = this.thread.x;
    const c = Math.floor(i / this.constants.xStrideC) % this.constants.channels;
    const s = invStd[c];
    const xhat = (x[i] - mean[c]) * s;
    return ((gamma[c] * s) / this.constants.count) * (this.constants.count * dy[i] - dbeta[c] - xhat * dgamma[c]);
  },
);

/* Inference: the statistics are constants, dx = gamma invStd dy. */
const INFERENCE_DX = defineKernel(
  'batchNorm2dInferenceDx',
  function batchNorm2dInferenceDx(this: KernelThis<'xStrideC' | 'channels'>, dy: any, gamma: any, invStd: any): number {
    const i = this.thread.x;
    const c = Math.floor(i / this.constants.xStrideC) % this.constants.channels;
    return gamma[c] * invStd[c] * dy[i];
  },
);

/** The chunking of a channel's M values, and where value m of channel c sits in x (see Chunks). */
function chunking(x: { shape: readonly number[]; layout: 'NCHW' | 'NHWC' }, g: BatchNorm2dGeometry) {
  const chunk = Math.max(1, Math.ceil(Math.sqrt(g.count)));
  const spatial = g.height * g.width;
  return {
    xStrideN: g.channels * spatial,
    xStrideC: x.layout === 'NHWC' ? 1 : spatial,
    xStrideHW: x.layout === 'NHWC' ? g.channels : 1,
    spatial,
    count: g.count,
    chunk,
    chunks: Math.max(1, Math.ceil(g.count / chunk)),
  };
}

/** The channel index of flat element i in x's layout is floor(i / xStrideC) % C. */
const channelOf = (x: { layout: 'NCHW' | 'NHWC' }, g: BatchNorm2dGeometry) => ({
  xStrideC: x.layout === 'NHWC' ? 1 : g.height * g.width,
  channels: g.channels,
});

/**
 * Device running variances already checked >= 0, by their memory: a device tensor's values never
 * change while it keeps its memory (a training step gives it new memory), so each is read back once.
 */
const checkedVariances = new WeakSet<DeviceMemory>();

interface ForwardArgs {
  x: TensorArg;
  gamma: TensorArg;
  beta: TensorArg;
  runningMean: TensorArg;
  runningVar: TensorArg;
}

/**
 * The spec's checks. A device runningVar has no host data for the inference check (variance >= 0): the
 * other checks run first with zeros in its place, then its values are read back (once per device
 * value, see checkedVariances) and checked exactly as a host tensor's would be.
 */
async function checkForward(gpu: GpuContext, op: string, args: ForwardArgs, options?: BatchNorm2dOptions): Promise<BatchNorm2dGeometry> {
  const { runningVar } = args;
  const g = gpu.checkArgs(op, { ...args }, (host) =>
    batchNorm2dGeometry(op, host.x, host.gamma, host.beta, host.runningMean, standIn(runningVar, host.runningVar), options),
  );
  if (!g.training && isDeviceTensor(runningVar)) {
    const memory = memoryOf(runningVar);
    if (memory && !checkedVariances.has(memory)) {
      const values = await runningVar.read();
      gpu.checkArgs(op, { ...args }, (host) => batchNorm2dGeometry(op, host.x, host.gamma, host.beta, host.runningMean, values, options));
      checkedVariances.add(memory);
    }
  }
  return g;
}

/** The forward; with `relu`, batchNormRelu2d's (the ReLU applied in the normalising launch). */
export async function batchNormGpuForward(
  gpu: GpuContext,
  op: string,
  args: ForwardArgs,
  options: BatchNorm2dOptions | undefined,
  keepSaved: boolean,
  relu = false,
): Promise<{ y: DeviceTensor; saved?: GpuBatchNorm2dSaved }> {
  const g = await checkForward(gpu, op, args, options);
  const { x, gamma, beta, runningMean, runningVar } = args;
  gpu.checkFits(op, 'output', x.shape);
  const perChannel = { shape: [g.channels] };
  const normalize = (inputs: TensorArg[], fromVariance: number) =>
    gpu.launch({
      op,
      kernel: NORMALIZE,
      inputs,
      output: { shape: x.shape, layout: x.layout },
      constants: { ...channelOf(x, g), eps: g.eps, fromVariance, relu: relu ? 1 : 0 },
    });
  const all = [x, gamma, beta, runningMean, runningVar];
  return gpu.onDevice(all, (onDevice) =>
    launches(async (made) => {
      const [xOn, gammaOn, betaOn, meanOn, varOn] = onDevice as [DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor];
      if (!g.training) {
        if (!keepSaved) return { y: await normalize([xOn, meanOn, varOn, gammaOn, betaOn], 1) };
        const mean = made(await gpu.launch({ op, kernel: COPY, inputs: [meanOn], output: perChannel }));
        const invStd = made(await gpu.launch({ op, kernel: INV_STD, inputs: [varOn], output: perChannel, constants: { eps: g.eps } }));
        return { y: await normalize([xOn, mean, invStd, gammaOn, betaOn], 0), saved: { mean, invStd } };
      }
      const c = chunking(x, g);
      const partials = made(
        await gpu.launch({
          op,
          kernel: STATS_PARTIALS,
          inputs: [xOn],
          output: { shape: [2, g.channels, c.chunks] },
          grid: [c.chunks, g.channels, 2],
          constants: c,
        }),
      );
      const stats = (stat: number, running: DeviceTensor) =>
        gpu.launch({
          op,
          kernel: STATS,
          inputs: [partials, running],
          output: perChannel,
          constants: { count: c.count, chunk: c.chunk, chunks: c.chunks, channels: g.channels, stat, eps: g.eps, momentum: g.momentum },
        });
      const mean = made(await stats(0, meanOn));
      const invStd = made(await stats(1, meanOn));
      const newMean = made(await stats(2, meanOn));
      const newVar = made(await stats(3, varOn));
      const y = made(await normalize([xOn, mean, invStd, gammaOn, betaOn], 0));
      partials.dispose();
      // Every launch has succeeded: only now do the running statistics change.
      await updateInPlace(runningMean, newMean);
      await updateInPlace(runningVar, newVar);
      if (keepSaved) return { y, saved: { mean, invStd } };
      mean.dispose();
      invStd.dispose();
      return { y };
    }),
  );
}

/**
 * Training updates the running statistics in place, as on every backend: a device tensor takes the
 * updated values' device memory (no readback, so a training step stays on the device); a host tensor's
 * data is overwritten with them, read back.
 */
async function updateInPlace(running: TensorArg, updated: DeviceTensor): Promise<void> {
  if (isDeviceTensor(running)) {
    replaceMemory(running, updated);
    return;
  }
  try {
    running.data.set((await updated.read()).data);
  } finally {
    updated.dispose();
  }
}

/** The runningVar the spec's checks see: a device tensor's values are not on the host, so zeros of its shape stand in. */
function standIn(runningVar: TensorArg, host: Tensor): Tensor {
  if (!isDeviceTensor(runningVar)) return host;
  return new Tensor(new Float32Array(runningVar.size), runningVar.shape);
}

/**
 * Runs `body`, which registers with `made` the device tensors it creates; if it fails, they are all
 * disposed (an op leaves nothing behind when a later launch fails).
 */
async function launches<R>(body: (made: (t: DeviceTensor) => DeviceTensor) => Promise<R>): Promise<R> {
  const created: DeviceTensor[] = [];
  try {
    return await body((t) => {
      created.push(t);
      return t;
    });
  } catch (error) {
    for (const t of created) t.dispose();
    throw error;
  }
}

function isDeviceSaved(saved: unknown): saved is GpuBatchNorm2dSaved {
  if (typeof saved !== 'object' || saved === null) return false;
  const { mean, invStd } = saved as Partial<Record<string, unknown>>;
  return isDeviceTensor(mean) || isDeviceTensor(invStd);
}

export function batchNorm2dGpu(gpu: GpuContext): Pick<GpuBackendOps, keyof BatchNorm2dOps> {
  return {
    async batchNorm2d(x, gamma, beta, runningMean, runningVar, options) {
      return (await batchNormGpuForward(gpu, 'batchNorm2d', { x, gamma, beta, runningMean, runningVar }, options, false)).y;
    },

    async batchNorm2dWithSaved(x, gamma, beta, runningMean, runningVar, options) {
      const { y, saved } = await batchNormGpuForward(
        gpu,
        'batchNorm2dWithSaved',
        { x, gamma, beta, runningMean, runningVar },
        options,
        true,
      );
      return { y, saved: saved as GpuBatchNorm2dSaved };
    },

    /*
     * `saved` from the gpu's batchNorm2dWithSaved holds device tensors, checked for their shape [C];
     * a host BatchNorm2dSaved (Float64Arrays) is checked as the reference checks it and uploaded.
     */
    async batchNorm2dBackward(dy, x, gamma, saved, options) {
      return batchNormGpuBackward(gpu, 'batchNorm2dBackward', dy, x, gamma, undefined, saved, options);
    },
  };
}

/**
 * The backward; with `beta`, batchNormRelu2d's: dy is first masked where the recomputed pre-activation
 * is not positive (RELU_MASK), then goes through batch norm's backward.
 */
export async function batchNormGpuBackward(
  gpu: GpuContext,
  op: string,
  dy: TensorArg,
  x: TensorArg,
  gamma: TensorArg,
  beta: TensorArg | undefined,
  saved: BatchNorm2dSaved | GpuBatchNorm2dSaved,
  options: BatchNorm2dOptions | undefined,
): Promise<{ dx: DeviceTensor; dgamma: DeviceTensor; dbeta: DeviceTensor }> {
  const onDevice = isDeviceSaved(saved);
  const g = gpu.checkArgs(op, { dy, x, gamma, ...(beta === undefined ? {} : { beta }), saved }, (host) =>
    checkBatchNorm2dBackward(
      host.dy,
      host.x,
      host.gamma,
      onDevice ? savedStandIn(host.x) : host.saved,
      options,
      op,
      host.beta,
      beta === undefined ? 'batchNorm2d' : 'batchNormRelu2d',
    ),
  );
  let mean: TensorArg;
  let invStd: TensorArg;
  if (onDevice) {
    for (const key of ['mean', 'invStd'] as const) {
      const t = (saved as GpuBatchNorm2dSaved)[key];
      if (!isDeviceTensor(t) || t.shape.length !== 1 || t.shape[0] !== g.channels) {
        fail(
          op,
          `saved.${key}`,
          `a device tensor [${g.channels}] (one per channel, from batchNorm2dWithSaved)`,
          isDeviceTensor(t) ? `${t}` : t,
        );
      }
    }
    ({ mean, invStd } = saved as GpuBatchNorm2dSaved);
  } else {
    const host = saved as BatchNorm2dSaved;
    mean = new Tensor(Float32Array.from(host.mean), [g.channels]);
    invStd = new Tensor(Float32Array.from(host.invStd), [g.channels]);
  }
  gpu.checkFits(op, 'output', x.shape);
  const perChannel = { shape: [g.channels] };
  const c = chunking(x, g);
  return gpu.onDevice([dy, x, gamma, mean, invStd, ...(beta === undefined ? [] : [beta])], (onDevice) =>
    launches(async (made) => {
      const [dyIn, xOn, gammaOn, meanOn, invStdOn, betaOn] = onDevice as [
        DeviceTensor,
        DeviceTensor,
        DeviceTensor,
        DeviceTensor,
        DeviceTensor,
        DeviceTensor?,
      ];
      const masked =
        betaOn === undefined
          ? undefined
          : made(
              await gpu.launch({
                op,
                kernel: RELU_MASK,
                inputs: [dyIn, xOn, meanOn, invStdOn, gammaOn, betaOn],
                output: { shape: x.shape, layout: x.layout },
                constants: channelOf(x, g),
              }),
            );
      const dyOn = masked ?? dyIn;
      let dbeta: DeviceTensor;
      let dgamma: DeviceTensor;
      if (g.count === 0) {
        dbeta = made(await gpu.launch({ op, kernel: ZEROS, inputs: [], output: perChannel }));
        dgamma = made(await gpu.launch({ op, kernel: ZEROS, inputs: [], output: perChannel }));
      } else {
        const partials = made(
          await gpu.launch({
            op,
            kernel: GRADIENT_PARTIALS,
            inputs: [dyOn, xOn, meanOn, invStdOn],
            output: { shape: [2, g.channels, c.chunks] },
            grid: [c.chunks, g.channels, 2],
            constants: c,
          }),
        );
        const sums = (half: number) =>
          gpu.launch({
            op,
            kernel: GRADIENT_SUMS,
            inputs: [partials],
            output: perChannel,
            constants: { chunks: c.chunks, channels: g.channels, half },
          });
        dbeta = made(await sums(0));
        dgamma = made(await sums(1));
        partials.dispose();
      }
      const dx = g.training
        ? await gpu.launch({
            op,
            kernel: TRAINING_DX,
            inputs: [dyOn, xOn, gammaOn, meanOn, invStdOn, dbeta, dgamma],
            output: { shape: x.shape, layout: x.layout },
            constants: { ...channelOf(x, g), count: g.count },
          })
        : await gpu.launch({
            op,
            kernel: INFERENCE_DX,
            inputs: [dyOn, gammaOn, invStdOn],
            output: { shape: x.shape, layout: x.layout },
            constants: channelOf(x, g),
          });
      masked?.dispose();
      return { dx, dgamma, dbeta };
    }),
  );
}

/** Host Float64Arrays of the right length standing in for device saved statistics in the spec's checks. */
function savedStandIn(x: unknown): BatchNorm2dSaved {
  const channels = (x as { shape?: readonly number[] } | undefined)?.shape?.[1] ?? 0;
  return { mean: new Float64Array(channels), invStd: new Float64Array(channels) };
}
