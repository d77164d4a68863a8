import type { NetworkCase, OpCase } from '../cases/case.js';
import type { OpInputs } from '../cases/inputs.js';
import type { NetworkPlan, WeightMap } from '../cases/network.js';
import type { HostOutputs } from '../method/validate.js';

/**
 * A target is anything the suites time: one of our backends or a peer library. Targets join by
 * registering a definition (see registry.ts); the runner opens each in a process of its own, validates
 * every case against the reference, then times it.
 */

/** One way of running a case, ready to time. */
export interface Prepared {
  /** Which of several implementations this is (e.g. a grouped-conv emulation), when a target has several. */
  variant?: string;
  /** Anything a reader of the numbers must know (e.g. a kernel borrowed from another backend). */
  note?: string;
  /** One timed run. Synchronous targets return nothing; asynchronous ones a promise the timer awaits. */
  run(): void | Promise<void>;
  /** The outputs of the last run, as host arrays in logical (row-major NCHW) order. Not timed. */
  outputs(): HostOutputs | Promise<HostOutputs>;
  dispose?(): void | Promise<void>;
}

/** A case a target cannot run, and why (shown in the tables instead of a time). */
export interface Unsupported {
  unsupported: string;
}

/** What the whole-network cases hand every target: one network, its weights, a batch. */
export interface NetworkInputs {
  plan: NetworkPlan;
  /** Trainable parameters by the design contract's names (official checkpoint keys), logical layout. */
  weights: WeightMap;
  /** Batch-norm running statistics: `<key>.running_mean` / `<key>.running_var`. */
  buffers: WeightMap;
  /** [N, 3, S, S], NCHW. */
  x: { shape: readonly number[]; data: Float32Array };
  labels: Int32Array;
  /** Builds the design contract's model on a given backend, weights loaded (our targets use it; peers ignore it). */
  buildModel(backend: unknown): Promise<unknown>;
}

export interface TargetSession {
  /** Versions, thread counts, settings: printed in the reports. */
  readonly details: Record<string, string>;
  prepareOp(c: OpCase, inputs: OpInputs): Promise<Prepared[] | Unsupported>;
  prepareNetwork(c: NetworkCase, inputs: NetworkInputs): Promise<Prepared[] | Unsupported>;
  close(): Promise<void>;
}

export interface TargetDefinition {
  /** Used on the command line: `--backend reference,tfjs-wasm`. */
  name: string;
  kind: 'ours' | 'peer';
  /** One line for --list and the reports. */
  description: string;
  /**
   * Must never share a process with another target, not even with --in-process: the gpu.js GL modes
   * (headlessgl, webgpu), which break each other in one process (toolchain notes 3.3).
   */
  isolated?: boolean;
  /** A command to run the target's process under, e.g. ['xvfb-run', '-a'] for headlessgl without a display. */
  wrapper?: () => string[];
  /** Opens the target in this process; throws TargetUnavailableError (with the reason and the fix) when it cannot. */
  open(options: TargetOptions): Promise<TargetSession>;
}

/** Command-line settings a target may read. */
export interface TargetOptions {
  /** Layout of our backends' inputs. */
  layout: 'NCHW' | 'NHWC';
  /** onnxruntime intra-op threads. */
  ortThreads: number;
  /** Force one TensorFlow.js grouped-conv emulation (default: measure them all in the op cases). */
  tfjsGrouped?: string;
}

export class TargetUnavailableError extends Error {
  constructor(
    readonly target: string,
    reason: string,
  ) {
    super(`${target} is unavailable: ${reason}`);
    this.name = 'TargetUnavailableError';
  }
}

export function isUnsupported(value: Prepared[] | Unsupported): value is Unsupported {
  return !Array.isArray(value);
}
