/**
 * createPipeline: a chain of our gpu ops replayed as one gpu.js pipeline (`gpu.createPipeline`).
 *
 * gpu.js traces a synchronous orchestration function that calls its kernels on opaque handles, and then
 * runs the recorded plan: fused into one WebAssembly memory (webasm) or one WebGPU command encoder
 * (webgpu), or step by step with device-resident intermediates (cpu, headlessgl). Our ops cannot be that
 * function: they are async (uploads, compiles, webgpu's promises), check their arguments and pick
 * kernels from shapes. So the chain runs once for real, op by op, while the backend records every
 * kernel launch (kernel, output size, constants, which device tensors it read and made); the
 * orchestration function then replays those launches on handles, each through a kernel of fixed output
 * size (KernelCache.fixedShortcut), and gpu.js compiles its own copies of them.
 *
 * What that implies:
 * - every value the chain reads must be an input or made inside it. A tensor from outside (a weight
 *   uploaded earlier) would be frozen into the plan or dangle, so recording refuses it: pass it as an
 *   input, and each run reads its current value;
 * - what the ops decide on the host from values (a check that reads a running variance) happens at the
 *   recording only; decisions from shapes and options are fixed by the recorded input shapes;
 * - pipeline arguments are host arrays: webgpu's fused encoder takes nothing else, and on cpu and
 *   webasm arrays are what kernels take anyway (headlessgl uploads each argument once per run).
 */
import { describe, fail, Tensor } from '@shuffle/core';
import type { GPU, IKernelRunShortcut, IPipelineRunShortcut } from 'gpu.js';
import { flatten } from './device-memory.js';
import { type DeviceTensor, isDeviceTensor } from './device-tensor.js';
import type { GpuPipeline, GpuPipelineExecutor, TensorArg } from './types.js';

/** One kernel launch as the backend saw it while recording. */
export interface RecordedLaunch {
  /** The op and kernel, for messages. */
  name: string;
  /** The kernel at the launch's output size and constants. */
  shortcut: IKernelRunShortcut;
  /** Its tensor arguments, in order. */
  inputs: readonly DeviceTensor[];
  output: DeviceTensor;
}

/** Where a step's argument comes from: a pipeline input, or an earlier step's output. */
type Source = { input: number } | { step: number };

interface Step {
  shortcut: IKernelRunShortcut;
  args: Source[];
}

/**
 * The launches the outputs depend on, in order, with their arguments resolved to inputs and earlier
 * steps. Throws, naming the launch, when one reads a tensor that is neither.
 */
export function planLaunches(
  launches: readonly RecordedLaunch[],
  inputs: readonly DeviceTensor[],
  outputs: readonly DeviceTensor[],
): { steps: Step[]; outputs: Source[] } {
  const producer = new Map(launches.map((launch, i) => [launch.output, i]));
  const inputIndex = new Map<DeviceTensor, number>();
  inputs.forEach((t, i) => {
    if (!inputIndex.has(t)) inputIndex.set(t, i);
  });
  // Backwards from the outputs: which launches are needed.
  const needed = new Set<number>();
  const pending = outputs.filter((t) => !inputIndex.has(t));
  for (let t = pending.pop(); t !== undefined; t = pending.pop()) {
    const at = producer.get(t);
    if (at === undefined) {
      fail('createPipeline', 'chain', 'a chain whose results are its inputs or made by its ops', `a result ${t} made outside it`);
    }
    if (needed.has(at)) continue;
    needed.add(at);
    // A tensor from outside the chain is reported below, where the launch reading it is known.
    for (const input of (launches[at] as RecordedLaunch).inputs) if (producer.has(input)) pending.push(input);
  }
  const stepOf = new Map<number, number>();
  const steps: Step[] = [];
  const source = (t: DeviceTensor, reader: string): Source => {
    const input = inputIndex.get(t);
    if (input !== undefined) return { input };
    const at = producer.get(t);
    const step = at === undefined ? undefined : stepOf.get(at);
    if (step === undefined) {
      fail(
        'createPipeline',
        'chain',
        'ops that read only the pipeline inputs and what earlier ops made (pass parameters as inputs)',
        `${reader} reading ${t} from outside the chain`,
      );
    }
    return { step };
  };
  for (const [i, launch] of launches.entries()) {
    if (!needed.has(i)) continue;
    steps.push({ shortcut: launch.shortcut, args: launch.inputs.map((t) => source(t, launch.name)) });
    stepOf.set(i, steps.length - 1);
  }
  return { steps, outputs: outputs.map((t) => source(t, 'a result')) };
}

/** What a pipeline tells the backend that made it (for the backend's stats). */
export interface PipelineOwner {
  /** A run took `ms`; the first run is where gpu.js compiled the plan. */
  pipelineRan(ms: number, first: boolean): void;
  /** destroy() was called. */
  pipelineDestroyed(pipeline: ReplayPipeline): void;
}

/** A GpuPipeline over a gpu.js pipeline that replays `plan`. */
export class ReplayPipeline implements GpuPipeline {
  readonly inputs: GpuPipeline['inputs'];
  readonly steps: number;
  private readonly pipeline: IPipelineRunShortcut;
  private readonly outputShapes: { shape: readonly number[]; layout: Tensor['layout']; size: number }[];
  private runs = 0;
  private firstRunMs = 0;
  private runMs = 0;
  private ran = false;
  private destroyed = false;

  constructor(
    gpu: GPU,
    plan: { steps: Step[]; outputs: Source[] },
    inputs: readonly DeviceTensor[],
    outputs: readonly DeviceTensor[],
    private readonly owner: PipelineOwner,
    /**
     * Leave the gpu.js pipeline to gpu.destroy(): on headlessgl, destroying one broke later kernel runs
     * of the same context (a parameter re-uploaded afterwards read back as zeros; test/gpu/model.ts
     * catches it), so there a destroyed pipeline only stops running and its kernels and textures are
     * freed with the backend.
     */
    readonly keepUntilBackendDestroy: boolean,
  ) {
    this.inputs = inputs.map((t) => ({ shape: [...t.shape], layout: t.layout }));
    this.outputShapes = outputs.map((t) => ({ shape: [...t.shape], layout: t.layout, size: t.size }));
    this.steps = plan.steps.length;
    // gpu.js calls this once, synchronously, with one handle per argument (it counts them by the
    // function's length), and records the kernel calls it makes.
    const orchestrate = (...handles: unknown[]): unknown[] => {
      const made: unknown[] = [];
      const value = (s: Source) => ('input' in s ? handles[s.input] : made[s.step]);
      for (const step of plan.steps) made.push(step.shortcut(...(step.args.map(value) as never[])));
      return plan.outputs.map(value);
    };
    const traced = function (this: unknown, ...handles: unknown[]) {
      return orchestrate(...handles);
    };
    Object.defineProperty(traced, 'length', { value: inputs.length });
    this.pipeline = gpu.createPipeline(traced as never);
  }

  get executor(): GpuPipelineExecutor | null {
    return this.ran ? (this.pipeline.executorKind as GpuPipelineExecutor) : null;
  }

  get fallbackReason(): string | null {
    return this.pipeline.fallbackReason;
  }

  get stats(): GpuPipeline['stats'] {
    return { runs: this.runs, firstRunMs: this.firstRunMs, runMs: this.runMs };
  }

  async run(inputs: readonly TensorArg[]): Promise<Tensor[]> {
    const op = 'GpuPipeline.run';
    if (this.destroyed) fail(op, 'this', 'a pipeline that has not been destroyed', 'a destroyed pipeline');
    if (!Array.isArray(inputs) || inputs.length !== this.inputs.length) {
      fail(op, 'inputs', `an array of ${this.inputs.length} tensors (the recorded inputs)`, inputs);
    }
    for (const [i, expected] of this.inputs.entries()) {
      const t = inputs[i] as TensorArg;
      const ok =
        (t instanceof Tensor || isDeviceTensor(t)) && describe(t.shape) === describe(expected.shape) && t.layout === expected.layout;
      if (!ok) fail(op, `inputs[${i}]`, `a tensor of shape ${describe(expected.shape)} in ${expected.layout}, as recorded`, t);
    }
    const args = await Promise.all(inputs.map(hostArray));
    const start = performance.now();
    const values = (await this.pipeline(...(args as never[]))) as unknown[];
    const ms = performance.now() - start;
    if (this.runs === 0) this.firstRunMs = ms;
    else this.runMs += ms;
    this.owner.pipelineRan(ms, this.runs === 0);
    this.runs++;
    this.ran = true;
    return this.outputShapes.map(({ shape, layout, size }, i) => new Tensor(flatten(values[i], size), shape, layout));
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.owner.pipelineDestroyed(this);
    if (!this.keepUntilBackendDestroy) await this.pipeline.destroy();
  }
}

/** A pipeline argument: the values as a float32 host array in the tensor's memory order. */
async function hostArray(t: TensorArg): Promise<Float32Array> {
  const host = isDeviceTensor(t) ? await t.read() : t;
  return host.data instanceof Float32Array ? host.data : Float32Array.from(host.data);
}
