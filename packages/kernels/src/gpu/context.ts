/**
 * What an op's gpu.ts gets from the backend. How to add an op's gpu kernels:
 *
 *   export function reluGpu(gpu: GpuContext): GpuOps<ReluOps> {
 *     return {
 *       async relu(x) {
 *         gpu.checkArgs('relu', { x }, (host) => checkRelu(host.x));    // the spec's checks, unchanged
 *         return gpu.launch({ op: 'relu', kernel: RELU, inputs: [x], output: { shape: x.shape, layout: x.layout } });
 *       },
 *       ...
 *
 * then spread `...reluGpu(gpu)` into the ops in gpu/backend.ts. The conformance suite picks the op up
 * by itself (test/gpu/conformance.ts runs every spec, and fails one whose ops lack gpu kernels).
 *
 * Kernels (see kernel-cache.ts): one output cell per thread, over the output's flat memory index
 * (this.thread.x) unless a 2-D/3-D grid reads better; every size, stride, loop bound and option as a
 * constant, never an argument; tensors in as flat arrays indexed `x[i]`, whatever the device holds.
 * Decompose a flat index with the strides of `strides4` (one kernel source serves both layouts):
 *   n = Math.floor(i / yStrideN); c = Math.floor(i / yStrideC) % channels; h = ..., w = ...
 * Guard every read that can fall outside its tensor (padding, window overhang) with an explicit test:
 * out-of-range reads give NaN/undefined on cpu, 0 on webasm and the clamped last element on
 * headlessgl and webgpu. Mind NaN: headlessgl and webgpu compile `v <= 0 ? 0 : v` and Math.max(NaN, 0)
 * to 0, whereas `v !== v` tests NaN on every mode. An elementwise kernel that reads no constant may be
 * `{ anySize: true }` (one compile for every size, except on headlessgl). A kernel's name keys the
 * cache, so one name means one function.
 *
 * An op that launches several kernels checks its final output with `checkFits` before the first launch,
 * and disposes its intermediates (and its partial results when a later launch fails): see concat/gpu.ts.
 * The conformance suite checks that no op leaves device tensors behind.
 */
import type { Layout, Tensor } from '@shuffle/core';
import type { DeviceTensor } from './device-tensor.js';
import { defineKernel, type GpuKernel, type KernelConstants, type KernelThis } from './kernel-cache.js';
import type { GpuMode } from './modes.js';
import type { GpuLimits, TensorArg } from './types.js';

/** The host view of gpu arguments that a spec's checks see: DeviceTensors typed as Tensors (they read only shape, layout, dtype, rank). */
export type HostView<T> = T extends TensorArg
  ? Tensor
  : T extends ArrayBufferView
    ? T
    : T extends readonly unknown[]
      ? { [K in keyof T]: HostView<T[K]> }
      : T extends object
        ? { [K in keyof T]: HostView<T[K]> }
        : T;

export interface Launch {
  /** The op on whose behalf the kernel runs (errors and limits name it). */
  op: string;
  kernel: GpuKernel;
  /** Tensor arguments, in the kernel function's parameter order. Host tensors are uploaded for this launch only. */
  inputs: readonly TensorArg[];
  /** The result. Its layout defaults to NCHW (the only one for ranks other than 4). */
  output: { shape: readonly number[]; layout?: Layout };
  constants?: KernelConstants;
  /** The kernel's output grid, x fastest; its cells in order must be the output's flat memory order. Default [size]. */
  grid?: readonly number[];
}

export interface GpuContext {
  readonly mode: GpuMode;
  readonly limits: GpuLimits;
  /**
   * Runs an op's spec checks on its arguments. `args` names them (as the checks do) so that a disposed
   * device tensor, or one from another backend, is reported by name first; `check` then gets the same
   * values, device tensors typed as Tensors, and its result (usually the op's geometry) is returned.
   */
  checkArgs<A extends Record<string, unknown>, R>(op: string, args: A, check: (host: HostView<A>) => R): R;
  /** Throws a ShuffleArgumentError unless a tensor of `shape` fits this backend (see `limits`). */
  checkFits(op: string, argument: string, shape: readonly number[]): void;
  /** Runs one kernel into a new device tensor. A zero-element output skips the kernel. */
  launch(launch: Launch): Promise<DeviceTensor>;
  /**
   * Runs `body` with the host Tensors among `tensors` uploaded once and freed when it settles (device
   * tensors pass through), for an op that feeds one input to several launches.
   */
  onDevice<R>(tensors: readonly TensorArg[], body: (onDevice: DeviceTensor[]) => Promise<R>): Promise<R>;
}

/** A device copy (addBackward's gradients, a one-input concat, flattening NCHW). */
export const COPY = defineKernel(
  'copy',
  function copy(this: KernelThis, x: any): number {
    return x[this.thread.x];
  },
  { anySize: true },
);

/** The constant names strides4(name, ...) defines, for a kernel's KernelThis. */
export type Strides4<P extends string> = `${P}Stride${'N' | 'C' | 'H' | 'W'}`;

/**
 * A 4-D tensor's strides as kernel constants `${name}StrideN`, `...C`, `...H`, `...W`: the flat memory
 * index of logical (n, c, h, w) is n*StrideN + c*StrideC + h*StrideH + w*StrideW in either layout.
 */
export function strides4<P extends string>(name: P, t: { shape: readonly number[]; layout: Layout }): Record<Strides4<P>, number> {
  const [, channels, height, width] = t.shape as [number, number, number, number];
  const nhwc = t.layout === 'NHWC';
  return {
    [`${name}StrideN`]: channels * height * width,
    [`${name}StrideC`]: nhwc ? 1 : height * width,
    [`${name}StrideH`]: nhwc ? width * channels : width,
    [`${name}StrideW`]: nhwc ? channels : 1,
  } as Record<Strides4<P>, number>;
}
