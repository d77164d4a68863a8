/**
 * What a model needs to run its layers on a gpu backend (forwardAsync / backwardAsync): device copies
 * of its parameters and buffers, and the bookkeeping that frees every intermediate device tensor.
 *
 * Decisions (the contract: parameters() and buffers() are host tensors, and "writing value.data changes
 * the next forward"):
 * - A parameter or buffer is uploaded at its first use and kept on the device. Every later use compares
 *   the host data with the copy taken at upload (bit for bit), and uploads again only when it changed.
 *   The compare reads each host value once per forward: under 1 ms per million values, where an upload
 *   per forward costs one device buffer and copy per tensor (about 160 for ShuffleNet v1). After an SGD
 *   step every parameter has changed and is uploaded again, once.
 * - Batch norm's running statistics are updated on the device by the training forward, and read back
 *   into the host buffers before forwardAsync resolves (two reads of C values per BN layer, issued
 *   together), so buffers() is current whenever no forwardAsync is in flight.
 * - Gradients are read back into each parameter's host grad before backwardAsync resolves (the reads
 *   are issued together at the end), so an optimizer step can follow at once.
 */
import { fail, type Tensor } from '@shuffle/core';
import type { Backend, DeviceTensor, GpuBackend } from '@shuffle/kernels';
import { type Parameter, writeGradient } from './model.js';

export function isGpuBackend(backend: unknown): backend is GpuBackend {
  const b = backend as Partial<GpuBackend> | null;
  return typeof b === 'object' && b !== null && typeof b.upload === 'function' && typeof b.stats === 'function';
}

/**
 * The Backend the layers of a gpu model hold: every synchronous op throws, naming forwardAsync, so a
 * layer's synchronous forward cannot run on a gpu model by mistake.
 */
export function asyncOnlyBackend(gpu: GpuBackend, model: string): Backend {
  return new Proxy({} as Backend, {
    get(_, property) {
      if (property === 'name') return gpu.name;
      if (typeof property !== 'string' || property === 'then') return undefined;
      return () =>
        fail(
          `${model} (layer op ${property})`,
          'backend',
          `a synchronous backend; ${gpu.name} is asynchronous: use forwardAsync / backwardAsync`,
          gpu.name,
        );
    },
  });
}

/** What a layer's forwardAsync and backwardAsync use. */
export interface DeviceRun {
  readonly gpu: GpuBackend;
  /** A training forward (layers keep what their backward reads) or an inference one (they keep nothing). */
  readonly training: boolean;
  /** The device copy of a parameter's value or a buffer (uploaded when its host data changed). */
  device(host: Tensor): DeviceTensor;
  /**
   * The forward is done with `t` (no later layer reads it): disposed now in inference; in training kept
   * until backwardAsync or the next forward, since layers saved what their backward reads.
   */
  release(t: DeviceTensor): void;
  /** Backward: a parameter's device gradient, read into parameter.grad (and disposed) before backwardAsync resolves. */
  gradient(parameter: Parameter, grad: DeviceTensor): void;
}

/**
 * Runs `steps` in order from `x`, handing each intermediate (not x, not the result) to `done` once the
 * next step has used it, or when a step throws (the error is rethrown).
 */
export async function chainAsync(
  x: DeviceTensor,
  steps: readonly ((t: DeviceTensor) => Promise<DeviceTensor>)[],
  done: (t: DeviceTensor) => void,
): Promise<DeviceTensor> {
  let y = x;
  for (const step of steps) {
    let next: DeviceTensor;
    try {
      next = await step(y);
    } finally {
      if (y !== x) done(y);
    }
    y = next;
  }
  return y;
}

/** `done` for backward chains: an intermediate gradient is used once. */
export const disposeNow = (t: DeviceTensor): void => t.dispose();

interface DeviceCopy {
  device: DeviceTensor;
  /** The host values the device copy holds. */
  uploaded: Tensor['data'];
}

/** Device copies of host tensors, re-uploaded when the host data changed (see the file comment). */
export class DeviceCopies {
  private readonly copies = new Map<Tensor, DeviceCopy>();

  constructor(private readonly gpu: GpuBackend) {}

  of(host: Tensor): DeviceTensor {
    const copy = this.copies.get(host);
    if (copy && !copy.device.disposed && sameBits(copy.uploaded, host.data)) return copy.device;
    copy?.device.dispose();
    const device = this.gpu.upload(host);
    this.copies.set(host, { device, uploaded: host.data.slice() });
    return device;
  }

  /** Reads the device copies of `hosts` (updated in place on the device) back into their host data. */
  async readBack(hosts: readonly Tensor[]): Promise<void> {
    const reads = hosts.map(async (host) => {
      const copy = this.copies.get(host);
      if (!copy) return;
      const values = (await copy.device.read()).data;
      host.data.set(values);
      copy.uploaded = host.data.slice();
    });
    await Promise.all(reads);
  }

  dispose(): void {
    for (const { device } of this.copies.values()) device.dispose();
    this.copies.clear();
  }
}

/** Bit equality, so a NaN or -0 written by the user counts as a change and a NaN left alone does not. */
function sameBits(a: Tensor['data'], b: Tensor['data']): boolean {
  if (a.length !== b.length || a.constructor !== b.constructor) return false;
  const x = new Int32Array(a.buffer, a.byteOffset, a.byteLength / 4);
  const y = new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * One forward and its backward on the device. Training keeps every released tensor (the saved state)
 * until `end`; inference disposes them at release.
 */
export class ForwardTape implements DeviceRun {
  private readonly kept: DeviceTensor[] = [];
  private readonly gradientReads: Promise<void>[] = [];

  constructor(
    readonly gpu: GpuBackend,
    private readonly copies: { of(host: Tensor): DeviceTensor },
    readonly training: boolean,
  ) {}

  device(host: Tensor): DeviceTensor {
    return this.copies.of(host);
  }

  release(t: DeviceTensor): void {
    if (this.training) this.kept.push(t);
    else t.dispose();
  }

  gradient(parameter: Parameter, grad: DeviceTensor): void {
    this.gradientReads.push(
      grad
        .read()
        .then((host) => writeGradient(parameter.grad, host, parameter.name))
        .finally(() => grad.dispose()),
    );
  }

  /** Waits for the gradient reads (the first failure rejects, after all have settled). */
  async gradientsWritten(): Promise<void> {
    const results = await Promise.allSettled(this.gradientReads);
    this.gradientReads.length = 0;
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /** Frees the saved state. */
  end(): void {
    for (const t of this.kept) t.dispose();
    this.kept.length = 0;
  }
}
