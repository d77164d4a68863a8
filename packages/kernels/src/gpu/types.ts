/**
 * The gpu backend's public types. Type-only, so @shuffle/kernels can export them without loading gpu.js.
 */
import type { Tensor } from '@shuffle/core';
import type { Backend } from '../backends/backend.js';
import type { BatchNorm2dOptions, BatchNorm2dSaved } from '../batch-norm2d/spec.js';
import type { MaxPool2dOptions, MaxPool2dSaved } from '../max-pool2d/spec.js';
import type { DeviceTensor } from './device-tensor.js';
import type { GpuMode } from './modes.js';

/**
 * A tensor argument of a gpu op: a DeviceTensor, or a host Tensor, which the op uploads for that one
 * call and frees when it returns (convenient for weights and biases; upload once with `gpu.upload` to
 * reuse a tensor across calls). float64 host tensors are computed in float32, like everything on the gpu.
 */
export type TensorArg = DeviceTensor | Tensor;

/** An op's argument type on the gpu: every Tensor (also inside arrays and option objects) may be a TensorArg. */
export type DeviceArg<T> = T extends Tensor
  ? TensorArg
  : T extends ArrayBufferView
    ? T
    : T extends readonly unknown[]
      ? { [K in keyof T]: DeviceArg<T[K]> }
      : T extends object
        ? { [K in keyof T]: DeviceArg<T[K]> }
        : T;

/** An op's result on the gpu: every Tensor becomes a DeviceTensor. */
export type DeviceResult<T> = T extends Tensor
  ? DeviceTensor
  : T extends ArrayBufferView
    ? T
    : T extends readonly unknown[]
      ? { -readonly [K in keyof T]: DeviceResult<T[K]> }
      : T extends object
        ? { [K in keyof T]: DeviceResult<T[K]> }
        : T;

/**
 * The gpu form of a set of synchronous ops: the same names and argument order, device tensors in and
 * out, async. The ops whose backward needs forward state refine their entries (GpuSavedStateOps).
 */
export type GpuOps<Ops> = {
  [K in keyof Ops]: Ops[K] extends (...args: infer A) => infer R
    ? (...args: { [I in keyof A]: DeviceArg<A[I]> }) => Promise<DeviceResult<R>>
    : never;
};

/**
 * maxPool2dWithSaved's state on the gpu: the argmax of MaxPool2dSaved as a device tensor of shape
 * [N, C, outH, outW] in NCHW, whose memory order is the logical order the Int32Array lists, holding each
 * window's winner h * W + w as a float (exact below 2^24, the largest tensor a float32 mode indexes).
 */
export interface GpuMaxPool2dSaved {
  argmax: DeviceTensor;
}

/** batchNorm2dWithSaved's state on the gpu: BatchNorm2dSaved's per-channel mean and invStd as device tensors [C]. */
export interface GpuBatchNorm2dSaved {
  mean: DeviceTensor;
  invStd: DeviceTensor;
}

/**
 * The ops whose backward uses forward state keep that state on the device: their WithSaved returns it
 * as device tensors, and their backward takes it, or the host form a synchronous backend returns.
 */
export interface GpuSavedStateOps {
  maxPool2dWithSaved(x: TensorArg, options: MaxPool2dOptions): Promise<{ y: DeviceTensor; saved: GpuMaxPool2dSaved }>;
  maxPool2dBackward(
    dy: TensorArg,
    x: TensorArg,
    options: MaxPool2dOptions,
    saved?: MaxPool2dSaved | GpuMaxPool2dSaved,
  ): Promise<{ dx: DeviceTensor }>;
  batchNorm2dWithSaved(
    x: TensorArg,
    gamma: TensorArg,
    beta: TensorArg,
    runningMean: TensorArg,
    runningVar: TensorArg,
    options?: BatchNorm2dOptions,
  ): Promise<{ y: DeviceTensor; saved: GpuBatchNorm2dSaved }>;
  batchNorm2dBackward(
    dy: TensorArg,
    x: TensorArg,
    gamma: TensorArg,
    saved: BatchNorm2dSaved | GpuBatchNorm2dSaved,
    options?: BatchNorm2dOptions,
  ): Promise<{ dx: DeviceTensor; dgamma: DeviceTensor; dbeta: DeviceTensor }>;
  batchNormRelu2dWithSaved(
    x: TensorArg,
    gamma: TensorArg,
    beta: TensorArg,
    runningMean: TensorArg,
    runningVar: TensorArg,
    options?: BatchNorm2dOptions,
  ): Promise<{ y: DeviceTensor; saved: GpuBatchNorm2dSaved }>;
  batchNormRelu2dBackward(
    dy: TensorArg,
    x: TensorArg,
    gamma: TensorArg,
    beta: TensorArg,
    saved: BatchNorm2dSaved | GpuBatchNorm2dSaved,
    options?: BatchNorm2dOptions,
  ): Promise<{ dx: DeviceTensor; dgamma: DeviceTensor; dbeta: DeviceTensor }>;
}

/** Every op and backward of the synchronous Backend, in their gpu form. */
export type GpuBackendOps = Omit<GpuOps<Omit<Backend, 'name'>>, keyof GpuSavedStateOps> & GpuSavedStateOps;

export interface GpuBackendOptions {
  /** The gpu.js mode, always explicit (gpu.js's automatic modes differ between machines). */
  mode: GpuMode;
}

/** The largest tensor this backend takes, and what sets that bound. */
export interface GpuLimits {
  maxElements: number;
  why: string;
}

/** One compiled kernel: compiled once for its key (op, shapes, options), then run `runs` times. */
export interface GpuKernelStats {
  name: string;
  /** The cache key: kernel name, output grid, input sizes and compile-time constants. */
  key: string;
  /**
   * gpu.js's build (translating the source, compiling the shader, JS or WebAssembly) plus the first run,
   * where drivers finish compiling (headlessgl JIT-compiles a shader at its first draw, Dawn creates the
   * pipeline at the first dispatch).
   */
  compileMs: number;
  /** Every run, the first included. */
  runs: number;
  /**
   * Host time of the runs after the first (binding arguments and dispatching; the draw itself on
   * headlessgl). On webgpu the GPU work is queued and its time lands in the next read.
   */
  runMs: number;
}

export interface GpuStats {
  mode: GpuMode;
  /** Kernels compiled and cached (each once per key). */
  kernels: number;
  /**
   * The kernels' compiles (GpuKernelStats.compileMs) plus every pipeline's first run, where gpu.js
   * compiles the pipeline's plan (pipelines.firstRunMs).
   */
  compileMs: number;
  /** Kernel launches, uploads to the device included (pipeline runs are counted under `pipelines`). */
  runs: number;
  runMs: number;
  /** Host uploads (`gpu.upload`, and host tensors passed to ops). */
  uploads: number;
  /** Reads back to the host, and their total wait (on webgpu, including the queued GPU work). */
  reads: number;
  readMs: number;
  /** Device tensors made by this backend and not yet disposed. */
  liveTensors: number;
  /**
   * Device memory they hold, by this backend's own bookkeeping. Not included: the kernel cache's own
   * buffers, and what gpu.js allocates for pipelines (their kernels and intermediate textures or buffers),
   * which `pipelines` counts instead.
   */
  liveBytes: number;
  byKernel: GpuKernelStats[];
  pipelines: GpuPipelineTotals;
}

/** The backend's pipelines (createPipeline), all together. */
export interface GpuPipelineTotals {
  /** Pipelines made and not yet destroyed. */
  live: number;
  /**
   * Destroyed pipelines whose gpu.js kernels and textures headlessgl keeps until the backend's destroy()
   * (see the README's headlessgl note); 0 on the other modes, which free them at once.
   */
  held: number;
  /** Fixed-size kernels recorded for pipelines (one per op, shape and options, shared between pipelines; kept until destroy()). */
  fixedKernels: number;
  /** Runs of every pipeline, destroyed ones included. */
  runs: number;
  /** The first run of each pipeline (gpu.js compiles its plan then; part of compileMs). */
  firstRunMs: number;
  /** The later runs. */
  runMs: number;
}

/**
 * The executor gpu.js ran a pipeline on: 'fused-threaded' (webasm, every step over one wasm memory,
 * worker threads walking the plan), 'fused-sync' (the same on one thread), 'fused-encoder' (webgpu, every
 * step in one command encoder), 'generic' (step by step through gpu.js's kernels: cpu and headlessgl, or
 * where fusion declined, with `fallbackReason`).
 */
export type GpuPipelineExecutor = 'fused-threaded' | 'fused-sync' | 'fused-encoder' | 'generic';

/**
 * A fixed chain of gpu ops recorded once and replayed as one gpu.js pipeline: one call, the inputs
 * uploaded once, intermediates kept on the device, the outputs read back once.
 */
export interface GpuPipeline {
  /** The recorded inputs' shapes and layouts, which every run's inputs must have. */
  readonly inputs: readonly { shape: readonly number[]; layout: Tensor['layout'] }[];
  /** Kernel launches gpu.js replays per run (the recorded ones that the outputs depend on). */
  readonly steps: number;
  /** The executor of the last run; null before the first. */
  readonly executor: GpuPipelineExecutor | null;
  /** Why gpu.js did not fuse the plan (null when fused, or before the first run). */
  readonly fallbackReason: string | null;
  /** Runs so far, the first run's time (gpu.js compiles the plan then) and the later runs' total. */
  readonly stats: { runs: number; firstRunMs: number; runMs: number };
  /**
   * Runs the chain on new values of the recorded inputs (host Tensors, or device tensors, which are read
   * back first: gpu.js pipelines take host arrays) and resolves to its outputs as host Tensors.
   */
  run(inputs: readonly TensorArg[]): Promise<Tensor[]>;
  /** Frees the pipeline's compiled kernels and buffers (the backend's destroy() does too). */
  destroy(): Promise<void>;
}

/**
 * A gpu backend: every op and backward of the synchronous Backend, async, on one gpu.js mode. Results
 * stay on the device until read, so a chain of ops uploads once and reads once.
 *
 * Bad arguments reject with the same ShuffleArgumentError (same message) as the synchronous backends,
 * before any device work. An op that has no gpu kernel yet rejects saying so (`supports(op)` tells).
 */
export interface GpuBackend extends GpuBackendOps {
  /** 'gpu-<mode>', e.g. 'gpu-webgpu'. */
  readonly name: string;
  readonly mode: GpuMode;
  readonly limits: GpuLimits;
  /** Copies a host tensor to the device (float32; float64 is converted). */
  upload(tensor: Tensor): DeviceTensor;
  /** Whether `op` (a Backend method name) has a gpu kernel on this backend. */
  supports(op: string): boolean;
  /**
   * Records the ops `chain` runs on `inputs` (called once, op by op, as usual) and returns them as one
   * gpu.js pipeline. Every tensor the chain reads must be one of its inputs or made by its ops (a
   * parameter too: pass it as an input, so each run reads its current value), and a device tensor may be
   * given once only. The results its ops made are freed after the recording (an input returned as a
   * result is left alone). Nothing else may run on this backend while the chain is recorded.
   */
  createPipeline(
    chain: (...inputs: DeviceTensor[]) => Promise<DeviceTensor | readonly DeviceTensor[]>,
    inputs: readonly TensorArg[],
  ): Promise<GpuPipeline>;
  /** Compile and run times, counts, and live device memory. */
  stats(): GpuStats;
  /** Frees every device tensor this backend made, its kernels and its gpu.js instance. */
  destroy(): Promise<void>;
}
