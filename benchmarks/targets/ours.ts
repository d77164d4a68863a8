import { readdirSync, readFileSync } from 'node:fs';
import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import { type Backend, type GpuStats, getNumThreads, setNumThreads } from '@shuffle/kernels';
import type { NetworkCase, OpCase } from '../cases/case.js';
import { namedOutputs, type OpInputs, opCall, runOp } from '../cases/inputs.js';
import { CHECKED_GRADIENTS, type ContractModel, type ContractPipeline, trainingOptimizer, trainingStep } from '../cases/model.js';
import { type HostOutputs, hostOf, hostOutputs } from '../method/validate.js';
import type { FirstCall, PhasedPrepared, PhaseSample } from '../runner/phases.js';
import type { NetworkInputs, Prepared, TargetDefinition, TargetOptions, TargetSession, Unsupported } from './target.js';

/**
 * Our backends as targets. A synchronous backend (reference, the coming cpu) is an object with one
 * method per op (the design contract's Backend); an asynchronous one (the coming gpu backends) takes
 * device tensors from `upload` and returns promises of device tensors that `read()` back to the host.
 */

function inLayout(t: Tensor | undefined, layout: TargetOptions['layout']): Tensor | undefined {
  return t && t.rank === 4 ? t.toLayout(layout) : t;
}

/** The inputs in the layout asked for (weights stay in logical OIHW: the contract accepts either). */
function layoutInputs(inputs: OpInputs, layout: TargetOptions['layout']): OpInputs {
  return { ...inputs, x: inLayout(inputs.x, layout) as Tensor, dy: inLayout(inputs.dy, layout), y: inLayout(inputs.y, layout) };
}

/**
 * `threads`: the kernels' setNumThreads while the target is open (the fast cpu backend's worker pool),
 * restored when it closes. Left out for backends that do not use the pool.
 */
export function syncBackendTarget(definition: {
  name: string;
  description: string;
  load: () => Promise<Backend>;
  threads?: number;
}): TargetDefinition {
  return {
    name: definition.name,
    kind: 'ours',
    description: definition.description,
    async open(options) {
      const backend = await definition.load();
      return new SyncBackendSession(backend, options, definition.threads);
    },
  };
}

class SyncBackendSession implements TargetSession {
  readonly details: Record<string, string>;
  private readonly threadsBefore = getNumThreads();

  constructor(
    private readonly backend: Backend,
    private readonly options: TargetOptions,
    private readonly threads?: number,
  ) {
    this.details = { backend: backend.name, layout: options.layout };
    if (threads !== undefined) {
      setNumThreads(threads);
      this.details.threads = String(getNumThreads());
      if (threads > 1) this.awaitWorkers();
    }
  }

  /**
   * Workers start asynchronously (0.3-2 s: a fresh isolate loading the kernels), and the first split call
   * blocks until they serve. One 1x1 convolution of 16.8 M multiply-adds, far above the split threshold,
   * pays that here, so that no validation or timed run does.
   */
  private awaitWorkers(): void {
    const x = randomUniform([1, 256, 16, 16], { seed: 1 });
    this.backend.conv2d(x, randomUniform([256, 256, 1, 1], { seed: 2 }));
  }

  async prepareOp(c: OpCase, inputs: OpInputs): Promise<Prepared[]> {
    const call = opCall(c, layoutInputs(inputs, this.options.layout));
    let result: unknown;
    return [
      {
        run: () => {
          result = runOp(this.backend, call);
        },
        outputs: () => hostOutputs(namedOutputs<Tensor>(c.direction, result)),
      },
    ];
  }

  async prepareNetwork(c: NetworkCase, inputs: NetworkInputs): Promise<Prepared[]> {
    const model = (await inputs.buildModel(this.backend)) as ContractModel;
    const x = tensor(inputs.x.data, inputs.x.shape).toLayout(this.options.layout);
    if (c.direction === 'forward') {
      let logits: Tensor | undefined;
      return [
        {
          run: () => {
            logits = model.forward(x, { training: false });
          },
          outputs: () => ({ logits: hostOf(logits as Tensor) }),
        },
      ];
    }
    const { step, loss } = await trainingStep(model, this.backend, x, inputs.labels);
    return [{ run: step, outputs: () => trainingOutputs(loss(), model) }];
  }

  async close(): Promise<void> {
    if (this.threads !== undefined) setNumThreads(this.threadsBefore);
  }
}

/** What a training step is checked on: the loss and the gradients of CHECKED_GRADIENTS (before the update). */
export function trainingOutputs(loss: number, model: ContractModel): HostOutputs {
  const out: HostOutputs = { loss: { shape: [], data: Float64Array.of(loss) } };
  const grads = new Map(model.parameters().map((p) => [p.name, p.grad]));
  for (const name of CHECKED_GRADIENTS) {
    const grad = grads.get(name);
    if (grad) out[`grad ${name}`] = hostOf(grad);
  }
  return out;
}

/** A device tensor of an asynchronous backend, as the design contract describes it. */
export interface DeviceTensor {
  read(): Promise<Tensor>;
  dispose(): void;
}

/** An asynchronous backend: `upload`, then every op with the Backend's signatures on device tensors, returning promises. */
export interface AsyncBackend {
  readonly name?: string;
  readonly mode?: string;
  upload(t: Tensor): DeviceTensor;
  /** The gpu backend's counters (compile and run times, uploads, reads): what the phase split reads. */
  stats?(): GpuStats;
  destroy?(): Promise<void> | void;
}

type AsyncOp = (...args: unknown[]) => Promise<unknown>;

function isDevice(value: unknown): value is DeviceTensor {
  return typeof value === 'object' && value !== null && typeof (value as DeviceTensor).read === 'function';
}

function isHostTensor(value: unknown): value is Tensor {
  return typeof value === 'object' && value !== null && 'shape' in value && 'data' in value;
}

/** Reads every device tensor of an op's result (a tensor, or { dx, dweight }) back to the host. */
async function readAll(direction: 'forward' | 'backward', result: unknown): Promise<Record<string, Tensor>> {
  const named = namedOutputs<unknown>(direction, result);
  const out: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(named)) if (isDevice(value)) out[name] = await value.read();
  return out;
}

function disposeAll(result: unknown): void {
  if (isDevice(result)) result.dispose();
  else if (result && typeof result === 'object') for (const v of Object.values(result)) if (isDevice(v)) v.dispose();
}

/** What the phase split reads around a call: the backend's counters, and the host time of its uploads. */
interface Counters {
  compileMs: number;
  kernels: number;
  uploads: number;
  readMs: number;
  /** Host time in `upload()`, whoever called it (the session, or a model uploading its weights). */
  uploadMs: number;
  /**
   * Host time of the backend's 'upload' kernel: on headlessgl and webgpu `upload()` only keeps a host
   * copy, and the first kernel that needs the tensor runs this kernel to copy it to the device.
   */
  uploadKernelMs: number;
}

/**
 * The backend, with its `upload` timed: every other property is the backend's own (through the
 * prototype), so a model built on it runs exactly as on the backend, and its weight uploads are timed.
 */
class TimedBackend {
  readonly backend: AsyncBackend;
  private uploadMs = 0;

  constructor(private readonly inner: AsyncBackend) {
    const timed = Object.create(inner) as AsyncBackend;
    Object.defineProperty(timed, 'upload', {
      value: (t: Tensor) => {
        const start = performance.now();
        try {
          return inner.upload(t);
        } finally {
          this.uploadMs += performance.now() - start;
        }
      },
    });
    this.backend = timed;
  }

  counters(): Counters {
    const s = this.inner.stats?.();
    if (!s) return { compileMs: 0, kernels: 0, uploads: 0, readMs: 0, uploadMs: this.uploadMs, uploadKernelMs: 0 };
    const uploadKernelMs = s.byKernel.filter((k) => k.name === 'upload').reduce((sum, k) => sum + k.runMs, 0);
    return { compileMs: s.compileMs, kernels: s.kernels, uploads: s.uploads, readMs: s.readMs, uploadMs: this.uploadMs, uploadKernelMs };
  }
}

/**
 * One call split into phases, from its wall time and the counters around it. `callMs`: from before the
 * uploads of its inputs until its promise settled. Reads the call made itself (a model reading its
 * gradients, or anything it needs on the host) are readback, by the read counter; so are `readbackMs`,
 * the caller's reads of the outputs on an idle device, after `syncMs`: what the caller's first read
 * waited for beyond a second read of the same outputs, i.e. device work still queued when the promise
 * settled (webgpu queues work until a read), which is run.
 */
function phaseSample(
  before: Counters,
  after: Counters,
  times: { callMs: number; readbackMs: number; syncMs: number; hostMs?: number },
): PhaseSample {
  const uploadMs = after.uploadMs - before.uploadMs + (after.uploadKernelMs - before.uploadKernelMs);
  const readInsideMs = after.readMs - before.readMs;
  return {
    uploadMs,
    runMs: Math.max(0, times.callMs - readInsideMs - uploadMs) + times.syncMs,
    readbackMs: readInsideMs + times.readbackMs,
    hostMs: times.hostMs,
    uploads: after.uploads - before.uploads,
    compiles: after.kernels - before.kernels,
  };
}

/** What a caller that reads no outputs itself passes (the call read what it needed: a training step). */
const NO_CALLER_READ = { readbackMs: 0, syncMs: 0 };

/**
 * Reads `read()`'s outputs twice: the first read waits for whatever device work is still queued, the
 * second finds the device idle and is the readback alone. Returns the readback and the wait (never below 0).
 */
async function readTwice(read: () => Promise<unknown>): Promise<{ readbackMs: number; syncMs: number }> {
  const t0 = performance.now();
  await read();
  const t1 = performance.now();
  await read();
  const t2 = performance.now();
  return { readbackMs: t2 - t1, syncMs: Math.max(0, t1 - t0 - (t2 - t1)) };
}

/**
 * Records the first call of a case: its wall time, and the kernels it compiled (from the counters).
 * `pipelineOf`: the model's inference pipeline, for a forward that may record one (see AsyncBackendSession).
 */
class FirstCallRecorder {
  private first: FirstCall | undefined;

  constructor(
    private readonly timed: TimedBackend,
    private readonly pipelineOf: () => ContractPipeline | null | undefined = () => undefined,
  ) {}

  async call(run: () => Promise<void>): Promise<void> {
    if (this.first) return run();
    const before = this.timed.counters();
    const pipelineBefore = this.pipelineOf();
    const start = performance.now();
    await run();
    const wallMs = performance.now() - start;
    const after = this.timed.counters();
    const kernels = after.kernels - before.kernels;
    const pipeline = this.pipelineOf();
    if (pipeline && pipeline !== pipelineBefore) {
      // The call recorded the pipeline (an op-by-op forward, its kernels compiled) and ran it once (gpu.js
      // compiles the plan): all of it is set-up a steady call does not repeat, so all but the transfers is compile.
      const transfersMs =
        after.uploadMs - before.uploadMs + (after.uploadKernelMs - before.uploadKernelMs) + (after.readMs - before.readMs);
      this.first = { wallMs, compileMs: Math.max(0, wallMs - transfersMs), kernels, pipelineFirstRunMs: pipeline.stats.firstRunMs };
    } else {
      this.first = { wallMs, compileMs: after.compileMs - before.compileMs, kernels };
    }
  }

  get(): FirstCall | undefined {
    return this.first;
  }
}

/** Whether an Xvfb process serves `display` (its command line names it). */
function xvfbServes(display: string): boolean {
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (/(^|\/)Xvfb$/.test(command[0] ?? '') && command.includes(display)) return true;
    }
  } catch {
    // No /proc (not Linux) or a process that ended meanwhile: not known to be Xvfb.
  }
  return false;
}

/** What the target tells of the device it runs on (the llvmpipe caveat needs it stated). */
async function deviceOf(mode: string | undefined): Promise<string> {
  if (mode === 'cpu') return "gpu.js's JavaScript fallback on the CPU";
  if (mode === 'webasm') return "gpu.js's WebAssembly backend on the CPU";
  if (mode === 'headlessgl') {
    const display = process.env.DISPLAY ?? '?';
    // ANGLE does not name the driver; an Xvfb display has only Mesa's software GL.
    const xvfb = xvfbServes(display) ? ", an Xvfb server: Mesa's llvmpipe" : '';
    return `headless-gl (ANGLE over GLX) on X display ${display}${xvfb}`;
  }
  if (mode === 'webgpu') {
    // Dawn's adapter names the driver: "... Mesa ... llvmpipe ..." is Mesa's CPU rasteriser.
    try {
      const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<{ info?: Record<string, string> } | null> } } })
        .navigator?.gpu;
      const info = (await gpu?.requestAdapter())?.info;
      const text = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ').trim();
      if (text) return `Dawn: ${text}`;
    } catch {
      // Only a description: the measurements do not depend on it.
    }
    return 'Dawn (adapter not described)';
  }
  return 'unknown';
}

/** How the model's last forward ran ('ops', or its inference pipeline's gpu.js executor), where the model says. */
function executorOf(model: ContractModel): string | undefined {
  return model.lastForwardExecutor ?? undefined;
}

/**
 * An asynchronous backend as a target. A timed run goes from host inputs to host outputs, as a call of
 * the cpu backend does: upload the inputs, run, read the outputs back (a device result is only known to
 * be complete once read: WebGPU's readback is what waits). Then the same call is split into phases
 * (runner/phases.ts): see AsyncBackendSession for how each phase is isolated.
 */
export function asyncBackendTarget(definition: {
  name: string;
  description: string;
  isolated?: boolean;
  wrapper?: () => string[];
  open: () => Promise<AsyncBackend>;
}): TargetDefinition {
  return {
    name: definition.name,
    kind: 'ours',
    description: definition.description,
    isolated: definition.isolated,
    wrapper: definition.wrapper,
    async open(options) {
      const backend = await definition.open();
      return new AsyncBackendSession(backend, options, await deviceOf(backend.mode));
    },
  };
}

/**
 * How the phases are isolated, per call:
 * - upload: host time in `upload()` (the session's uploads of the inputs, and a model's of its weights,
 *   through TimedBackend), plus the host time of the backend's 'upload' kernel: headlessgl and webgpu
 *   copy an upload to the device only when a kernel first needs it (the backend's counters time it).
 * - run: the call, from the uploads of its inputs until its promise settled, less those uploads, plus
 *   the wait for device work still queued then: what a first read of the outputs takes beyond a second
 *   read of the same outputs.
 * - readback: that second read, on an idle device.
 * - compile: the backend's compile time over the case's first call (gpu.js's build and the first run,
 *   where drivers finish compiling), beside the first call's wall time.
 * Reads a call makes itself (a training step's gradients, in backwardAsync) are readback too, by the
 * backend's read counter; they include the wait for device work queued before them (webgpu).
 *
 * A network forward that the model runs as its inference pipeline (`model.pipeline`, lastForwardExecutor
 * not 'ops') splits by the same rules, which put its parts here (the model's forwardPipeline):
 * - upload: the session's upload of x, and the model's `upload()` of the logits the pipeline returned
 *   on the host (forwardAsync resolves to a DeviceTensor by contract; the logits are a few KiB);
 * - run: `pipeline.run`, one gpu.js call that copies its host-array inputs (x and every parameter) to
 *   the device, runs every step and reads the outputs back: these transfers cannot be told apart from
 *   outside gpu.js, so they are run; plus the host work of forwardAsync around it;
 * - readback: the read of the device x (gpu.js pipelines take host arrays), and the caller's read of the logits;
 * - compile: the first call records the pipeline (an op-by-op forward) and runs it once (gpu.js compiles
 *   the plan then): its wall time less its uploads and reads (FirstCallRecorder).
 */
class AsyncBackendSession implements TargetSession {
  readonly details: Record<string, string>;
  private readonly timed: TimedBackend;
  /** What the cases call: the backend with its uploads timed. */
  private readonly backend: AsyncBackend;

  constructor(
    private readonly inner: AsyncBackend,
    private readonly options: TargetOptions,
    device: string,
  ) {
    this.timed = new TimedBackend(inner);
    this.backend = this.timed.backend;
    this.details = {
      backend: inner.name ?? 'async',
      layout: options.layout,
      device,
      timing: 'host inputs to host outputs (upload + run + readback), then split into phases',
    };
  }

  private method(name: string): AsyncOp | undefined {
    const method = (this.inner as unknown as Record<string, AsyncOp>)[name];
    return typeof method === 'function' ? method.bind(this.inner) : undefined;
  }

  async prepareOp(c: OpCase, inputs: OpInputs): Promise<PhasedPrepared[] | Unsupported> {
    const call = opCall(c, layoutInputs(inputs, this.options.layout));
    const op = this.method(call.method);
    if (!op) return { unsupported: `this backend has no ${call.method}` };
    const kept: DeviceTensor[] = [];
    let hostArgs = call.args;
    if (call.method === 'maxPool2dBackward') {
      // The argmax is state a training step keeps on the device from its forward: made here, untimed.
      const withSaved = this.method('maxPool2dWithSaved');
      if (!withSaved) return { unsupported: 'this backend has no maxPool2dWithSaved for the backward to use' };
      const [dy, x, options] = call.args;
      const xDevice = this.inner.upload(x as Tensor);
      const forward = (await withSaved(xDevice, options)) as { y: DeviceTensor; saved: Record<string, DeviceTensor> };
      xDevice.dispose();
      forward.y.dispose();
      kept.push(...Object.values(forward.saved));
      hostArgs = [dy, x, options, forward.saved];
    }
    /** The call's arguments with every host tensor uploaded, and what frees those uploads. */
    const upload = () => {
      const uploaded: DeviceTensor[] = [];
      const args = hostArgs.map((arg) => {
        if (!isHostTensor(arg)) return arg;
        const device = this.backend.upload(arg);
        uploaded.push(device);
        return device;
      });
      return {
        args,
        free: () => {
          for (const u of uploaded) u.dispose();
        },
      };
    };
    const first = new FirstCallRecorder(this.timed);
    let host: Record<string, Tensor> = {};
    return [
      {
        run: () =>
          first.call(async () => {
            const { args, free } = upload();
            const result = await op(...args);
            host = await readAll(c.direction, result);
            disposeAll(result);
            free();
          }),
        outputs: () => hostOutputs(host),
        phases: {
          firstCall: () => first.get(),
          sample: async () => {
            const before = this.timed.counters();
            const started = performance.now();
            const { args, free } = upload();
            const result = await op(...args);
            const callMs = performance.now() - started;
            const after = this.timed.counters();
            const reads = await readTwice(() => readAll(c.direction, result));
            disposeAll(result);
            free();
            return phaseSample(before, after, { callMs, ...reads });
          },
        },
        dispose: () => {
          for (const t of kept) t.dispose();
        },
      },
    ];
  }

  async prepareNetwork(c: NetworkCase, inputs: NetworkInputs): Promise<PhasedPrepared[] | Unsupported> {
    const model = (await inputs.buildModel(this.backend)) as ContractModel;
    if (typeof model.forwardAsync !== 'function') return { unsupported: 'the model has no forwardAsync for this backend' };
    const x = tensor(inputs.x.data, inputs.x.shape).toLayout(this.options.layout);
    const first = new FirstCallRecorder(this.timed, () => model.pipeline);
    if (c.direction === 'train') return this.prepareTraining(model, x, inputs.labels, first);
    /** The forward on uploaded x, and whether it read its logits itself (a host Tensor). */
    const forward = async () => {
      const xDevice = this.backend.upload(x);
      const out = await (model.forwardAsync as NonNullable<ContractModel['forwardAsync']>)(xDevice, { training: false });
      xDevice.dispose();
      return out;
    };
    let logits: Tensor | undefined;
    return [
      {
        run: () =>
          first.call(async () => {
            const out = await forward();
            logits = isDevice(out) ? await out.read() : (out as Tensor);
            disposeAll(out);
          }),
        outputs: () => ({ logits: hostOf(logits as Tensor) }),
        phases: {
          firstCall: () => first.get(),
          executor: () => executorOf(model),
          sample: async () => {
            const before = this.timed.counters();
            const started = performance.now();
            const out = await forward();
            const callMs = performance.now() - started;
            const after = this.timed.counters();
            // A forward that returned host logits has read them itself: the read counter has them.
            const reads = isDevice(out) ? await readTwice(() => out.read()) : NO_CALLER_READ;
            disposeAll(out);
            return phaseSample(before, after, { callMs, ...reads });
          },
        },
      },
    ];
  }

  /**
   * A training step as the sync targets run it (trainingStep in cases/model.ts): forward in training mode,
   * mean cross-entropy and its gradient on the device, backwardAsync (which writes the host gradients),
   * then the SGD update of the host parameters (the host phase), which the next forward uploads again.
   */
  private async prepareTraining(
    model: ContractModel,
    x: Tensor,
    labels: Int32Array,
    first: FirstCallRecorder,
  ): Promise<PhasedPrepared[] | Unsupported> {
    const forwardAsync = model.forwardAsync?.bind(model) as NonNullable<ContractModel['forwardAsync']>;
    const backwardAsync = model.backwardAsync?.bind(model);
    const loss = this.method('softmaxCrossEntropy');
    const lossBackward = this.method('softmaxCrossEntropyBackward');
    if (!backwardAsync) return { unsupported: 'the model has no backwardAsync for this backend' };
    if (!loss || !lossBackward) return { unsupported: 'this backend has no softmaxCrossEntropy (and backward)' };
    const sgd = await trainingOptimizer(model.parameters());
    const one = this.inner.upload(tensor([1], [], 'NCHW', x.dtype));
    let lastLoss = Number.NaN;
    /** Upload x, forward, loss, backward (the gradients land on the host): all but the SGD update. */
    const step = async () => {
      const xDevice = this.backend.upload(x);
      const logits = await forwardAsync(xDevice, { training: true });
      const lossDevice = (await loss(logits, labels)) as DeviceTensor;
      const { dlogits } = (await lossBackward(one, logits, labels)) as { dlogits: DeviceTensor };
      await backwardAsync(dlogits);
      // The forward keeps x for the backward (its saved state), so x goes only now.
      xDevice.dispose();
      lastLoss = (await lossDevice.read()).data[0] as number;
      for (const t of [logits, lossDevice, dlogits]) disposeAll(t);
    };
    let outputs: HostOutputs = {};
    return [
      {
        run: () =>
          first.call(async () => {
            await step();
            // The validation run is the first: checked before the update changes the weights.
            if (!first.get()) outputs = trainingOutputs(lastLoss, model);
            sgd.step();
          }),
        outputs: () => outputs,
        phases: {
          firstCall: () => first.get(),
          executor: () => executorOf(model),
          sample: async () => {
            const before = this.timed.counters();
            const started = performance.now();
            await step();
            const stepped = performance.now();
            const after = this.timed.counters();
            sgd.step();
            const hostMs = performance.now() - stepped;
            return phaseSample(before, after, { callMs: stepped - started, ...NO_CALLER_READ, hostMs });
          },
        },
        dispose: () => one.dispose(),
      },
    ];
  }

  async close(): Promise<void> {
    await this.inner.destroy?.();
  }
}
