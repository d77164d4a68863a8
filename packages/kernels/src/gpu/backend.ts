/**
 * The gpu backend: every op of the synchronous Backend as gpu.js kernels on one explicitly named mode,
 * with device tensors in and out. Loaded only by createGpuBackend (`await import`), so importing
 * @shuffle/kernels never loads gpu.js.
 *
 * What lives where: device-tensor.ts (the user's handle on device values), device-memory.ts (what holds
 * them per mode), kernel-cache.ts (compile once per shape and options, and gpu.js's silent failure modes
 * refused), limits.ts (the largest tensor per mode), context.ts (the API an op's gpu.ts uses, with the
 * recipe for adding one), and here: the runtime those share, and the assembly of the ops.
 */
import { fail, Tensor } from '@shuffle/core';
import type { GPU } from 'gpu.js';
import { addGpu } from '../add/gpu.js';
import { addReluGpu } from '../add-relu/gpu.js';
import { avgPool2dGpu } from '../avg-pool2d/gpu.js';
import { reference } from '../backends/reference.js';
import { batchNormRelu2dGpu } from '../batch-norm-relu2d/gpu.js';
import { batchNorm2dGpu } from '../batch-norm2d/gpu.js';
import { channelShuffleGpu } from '../channel-shuffle/gpu.js';
import { acceptingTensorLikes } from '../common/args.js';
import { concatGpu } from '../concat/gpu.js';
import { conv2dGpu } from '../conv2d/gpu.js';
import { depthwiseConv2dGpu } from '../depthwise-conv2d/gpu.js';
import { flattenGpu } from '../flatten/gpu.js';
import { globalAvgPool2dGpu } from '../global-avg-pool2d/gpu.js';
import { linearGpu } from '../linear/gpu.js';
import { maxPool2dGpu } from '../max-pool2d/gpu.js';
import { reluGpu } from '../relu/gpu.js';
import { softmaxCrossEntropyGpu } from '../softmax-cross-entropy/gpu.js';
import { splitGpu } from '../split/gpu.js';
import { COPY, type GpuContext, type HostView, type Launch } from './context.js';
import { ArrayMemory, flatten, OutputMemory, type PipelineOutput, UploadMemory } from './device-memory.js';
import { type DeviceMemory, DeviceTensor, type DeviceTensorOwner, isDeviceTensor, memoryOf, ownerOf, pin, unpin } from './device-tensor.js';
import { KernelCache } from './kernel-cache.js';
import { checkFits, type DeviceReport, limitsFor } from './limits.js';
import { GPU_MODES, type GpuMode, openGpu } from './modes.js';
import { type PipelineOwner, planLaunches, type RecordedLaunch, ReplayPipeline } from './pipeline.js';
import type { GpuBackend, GpuBackendOptions, GpuLimits, GpuPipeline, GpuStats, TensorArg } from './types.js';

/** Every op and backward, as the gpu backend offers them. */
type AllOps = Omit<GpuBackend, 'name' | 'mode' | 'limits' | 'upload' | 'supports' | 'createPipeline' | 'stats' | 'destroy'>;

/** Each op folder's gpu kernels. A new op's gpu.ts joins here. */
function gpuOps(gpu: GpuContext): Partial<AllOps> {
  return {
    ...reluGpu(gpu),
    ...addGpu(gpu),
    ...channelShuffleGpu(gpu),
    ...concatGpu(gpu),
    ...splitGpu(gpu),
    ...flattenGpu(gpu),
    ...globalAvgPool2dGpu(gpu),
    ...conv2dGpu(gpu),
    ...depthwiseConv2dGpu(gpu),
    ...linearGpu(gpu),
    ...maxPool2dGpu(gpu),
    ...avgPool2dGpu(gpu),
    ...softmaxCrossEntropyGpu(gpu),
    ...batchNorm2dGpu(gpu),
    ...batchNormRelu2dGpu(gpu),
    ...addReluGpu(gpu),
  };
}

export async function openGpuBackend(options: GpuBackendOptions): Promise<GpuBackend> {
  if (options === null || typeof options !== 'object' || !GPU_MODES.includes(options.mode)) {
    fail('createGpuBackend', 'options', `{ mode } with mode one of ${GPU_MODES.map((m) => `'${m}'`).join(', ')}`, options?.mode ?? options);
  }
  const runtime = await openGpuRuntime(options.mode);
  const implemented = gpuOps(runtime);
  const ops = Object.fromEntries(
    Object.keys(reference)
      .filter((name) => name !== 'name')
      .map((name) => [name, implemented[name as keyof AllOps] ?? runtime.missing(name)]),
  ) as unknown as AllOps;
  return {
    ...ops,
    name: runtime.name,
    mode: runtime.mode,
    get limits() {
      return runtime.limits;
    },
    upload: (tensor) => runtime.upload(tensor),
    supports: (op) => Object.hasOwn(implemented, op),
    createPipeline: (chain, inputs) => runtime.createPipeline(chain, inputs),
    stats: () => runtime.stats(),
    destroy: () => runtime.destroy(),
  };
}

/**
 * The runtime an op's gpu.ts gets as its GpuContext, on its own: for trying a kernel out, and for the
 * infrastructure's tests. Users want createGpuBackend.
 */
export async function openGpuRuntime(mode: GpuMode): Promise<GpuRuntime> {
  const runtime = new GpuRuntime(mode, await openGpu(mode));
  await runtime.probe();
  return runtime;
}

/** The upload kernel: a Float32Array argument in, the same values out as a device texture or buffer. */
const UPLOAD = { ...COPY, name: 'upload' };

/** The values of a gpu.js pipeline output as device memory: a flat array on cpu and webasm, a texture or buffer on headlessgl and webgpu. */
function memoryFor(mode: GpuMode, result: unknown, size: number): DeviceMemory {
  if (mode === 'cpu' || mode === 'webasm') return new ArrayMemory(flatten(result, size));
  return new OutputMemory(result as PipelineOutput, size);
}

export class GpuRuntime implements GpuContext, DeviceTensorOwner, PipelineOwner {
  readonly name: string;
  limits: GpuLimits;
  private readonly cache: KernelCache;
  private readonly live = new Set<DeviceTensor>();
  /** The launches of the chain createPipeline is recording, or null. */
  private recording: RecordedLaunch[] | null = null;
  /** Pipelines not yet destroyed. */
  private readonly pipelines = new Set<ReplayPipeline>();
  /** Destroyed pipelines whose gpu.js kernels and textures stay until destroy() (headlessgl: see ReplayPipeline). */
  private heldPipelines = 0;
  /** Every pipeline run: the first of each (where gpu.js compiles its plan) and the later ones. */
  private readonly pipelineTimes = { runs: 0, firstRunMs: 0, runMs: 0 };
  private destroyed = false;
  private uploads = 0;
  private reads = 0;
  private readMs = 0;

  constructor(
    readonly mode: GpuMode,
    private readonly gpu: GPU,
  ) {
    this.name = `gpu-${mode}`;
    this.cache = new KernelCache(gpu, mode);
    this.limits = limitsFor(mode, {});
  }

  /** Compiles and runs one tiny kernel, so a broken mode fails here, and reads the device's limits. */
  async probe(): Promise<void> {
    const data = new Float32Array([1]);
    const result = await this.cache.run({ kernel: UPLOAD, grid: [1], constants: {}, args: [data], argSizes: [1] });
    const memory = memoryFor(this.mode, result, 1);
    const back = await memory.read();
    memory.free();
    if (back[0] !== 1) throw new Error(`gpu backend ${this.mode}: a one-value kernel returned ${back[0]}, expected 1`);
    this.limits = limitsFor(this.mode, deviceReport(this.mode, this.gpu));
  }

  released(tensor: DeviceTensor): void {
    this.live.delete(tensor);
  }

  upload(tensor: Tensor): DeviceTensor {
    this.checkAlive('upload');
    if (!(tensor instanceof Tensor)) fail('upload', 'tensor', 'a host Tensor', tensor);
    checkFits('upload', 'tensor', tensor.shape, this.limits);
    this.uploads++;
    const data = tensor.dtype === 'float32' ? (tensor.data as Float32Array).slice() : Float32Array.from(tensor.data);
    const memory =
      this.mode === 'cpu' || this.mode === 'webasm' || data.length === 0
        ? new ArrayMemory(data)
        : new UploadMemory(data, async (host) => {
            const output = await this.cache.run({
              kernel: UPLOAD,
              grid: [host.length],
              constants: {},
              args: [host],
              argSizes: [host.length],
            });
            return new OutputMemory(output as PipelineOutput, host.length);
          });
    return this.track(new DeviceTensor(this, tensor.shape, tensor.layout, memory));
  }

  checkArgs<A extends Record<string, unknown>, R>(op: string, args: A, check: (host: HostView<A>) => R): R {
    this.checkAlive(op);
    for (const [name, value] of Object.entries(args)) this.checkDeviceTensors(op, name, value, 0);
    return acceptingTensorLikes(isDeviceTensor, () => check(args as unknown as HostView<A>));
  }

  checkFits(op: string, argument: string, shape: readonly number[]): void {
    checkFits(op, argument, shape, this.limits);
  }

  async launch({ op, kernel, inputs, output, constants = {}, grid }: Launch): Promise<DeviceTensor> {
    this.checkAlive(op);
    const layout = output.layout ?? 'NCHW';
    this.checkFits(op, 'output', output.shape);
    const size = output.shape.reduce((a, b) => a * b, 1);
    if (size === 0) return this.track(new DeviceTensor(this, output.shape, layout, new ArrayMemory(new Float32Array(0))));
    const cells = grid ?? [size];
    if (cells.reduce((a, b) => a * b, 1) !== size) {
      throw new Error(`gpu kernel '${kernel.name}' (${op}): grid [${cells.join(', ')}] does not cover the ${size} output elements`);
    }
    const temporaries: DeviceTensor[] = [];
    const pinned: DeviceTensor[] = [];
    try {
      const memories: DeviceMemory[] = [];
      for (const input of inputs) {
        let device: DeviceTensor;
        if (isDeviceTensor(input)) device = input;
        else {
          device = this.upload(input);
          temporaries.push(device);
        }
        if (ownerOf(device) !== this) throw new Error(`${op}: ${device} is not a device tensor of ${this.name}`);
        if (device.size === 0) throw new Error(`gpu kernel '${kernel.name}' (${op}): an input has no elements`);
        memories.push(pin(device, op));
        pinned.push(device);
      }
      const args: unknown[] = [];
      for (const memory of memories) args.push(await memory.argument());
      const argSizes = inputs.map((t) => t.shape.reduce((a, b) => a * b, 1));
      const call = { kernel, grid: cells, constants, args, argSizes };
      const result = await this.cache.run(call);
      const made = this.track(new DeviceTensor(this, output.shape, layout, memoryFor(this.mode, result, size)));
      this.recording?.push({
        name: `${op} (kernel ${kernel.name})`,
        shortcut: this.cache.fixedShortcut(call),
        inputs: [...pinned],
        output: made,
      });
      return made;
    } finally {
      // The kernel has been issued (drawn on headlessgl, submitted on webgpu): freeing its inputs now is safe.
      for (const t of pinned) unpin(t);
      for (const t of temporaries) t.dispose();
    }
  }

  async onDevice<R>(tensors: readonly TensorArg[], body: (onDevice: DeviceTensor[]) => Promise<R>): Promise<R> {
    const temporaries: DeviceTensor[] = [];
    try {
      const onDevice = tensors.map((t) => {
        if (isDeviceTensor(t)) return t;
        const uploaded = this.upload(t);
        temporaries.push(uploaded);
        return uploaded;
      });
      return await body(onDevice);
    } finally {
      for (const t of temporaries) t.dispose();
    }
  }

  /** See GpuBackend.createPipeline and pipeline.ts. */
  async createPipeline(
    chain: (...inputs: DeviceTensor[]) => Promise<DeviceTensor | readonly DeviceTensor[]>,
    inputs: readonly TensorArg[],
  ): Promise<GpuPipeline> {
    const op = 'createPipeline';
    this.checkAlive(op);
    if (typeof chain !== 'function') fail(op, 'chain', 'an async function of the input device tensors', chain);
    if (!Array.isArray(inputs) || !inputs.every((t) => isDeviceTensor(t) || t instanceof Tensor)) {
      fail(op, 'inputs', 'an array of tensors (host or device)', inputs);
    }
    for (const [i, t] of inputs.entries()) {
      this.checkDeviceTensors(op, `inputs[${i}]`, t, 0);
      // Each input is an argument of its own at every run: a device tensor given twice would be one value
      // recorded under two arguments, and the second argument's values would be ignored.
      const first = inputs.indexOf(t);
      if (isDeviceTensor(t) && first !== i)
        fail(op, `inputs[${i}]`, 'a device tensor not already among the inputs', `inputs[${first}] again`);
    }
    if (this.recording)
      fail(op, 'this', `a backend recording one pipeline at a time (${this.name} is recording another)`, 'a second recording');
    return this.onDevice(inputs, async (devices) => {
      const launches: RecordedLaunch[] = [];
      this.recording = launches;
      let results: DeviceTensor | readonly DeviceTensor[];
      try {
        results = await chain(...devices);
      } finally {
        this.recording = null;
      }
      const outputs = isDeviceTensor(results) ? [results] : Array.isArray(results) ? [...(results as DeviceTensor[])] : [];
      // The results the recording made are freed below; an input or a caller's tensor returned as a result is not ours to free.
      const made = new Set(launches.map((launch) => launch.output));
      try {
        if (outputs.length === 0 || !outputs.every(isDeviceTensor))
          fail(op, 'chain', 'a chain resolving to a device tensor or an array of them', results);
        const plan = planLaunches(launches, devices, outputs);
        if (plan.steps.length === 0) fail(op, 'chain', 'a chain that launches at least one kernel', 'none');
        const pipeline = new ReplayPipeline(this.gpu, plan, devices, outputs, this, this.mode === 'headlessgl');
        this.pipelines.add(pipeline);
        return pipeline;
      } finally {
        for (const t of outputs) if (made.has(t)) t.dispose();
      }
    });
  }

  /** An op with no gpu kernel yet: rejects, naming it. */
  missing(op: string): (...args: unknown[]) => Promise<never> {
    return async () => {
      throw new Error(`${op}: the gpu backend has no kernel for it yet (mode ${this.mode}); use the reference or cpu backend for it`);
    };
  }

  pipelineRan(ms: number, first: boolean): void {
    this.pipelineTimes.runs++;
    if (first) this.pipelineTimes.firstRunMs += ms;
    else this.pipelineTimes.runMs += ms;
  }

  pipelineDestroyed(pipeline: ReplayPipeline): void {
    if (this.pipelines.delete(pipeline) && pipeline.keepUntilBackendDestroy) this.heldPipelines++;
  }

  stats(): GpuStats {
    const byKernel = this.cache.stats();
    const sum = (pick: (k: (typeof byKernel)[number]) => number) => byKernel.reduce((a, k) => a + pick(k), 0);
    let liveBytes = 0;
    for (const t of this.live) liveBytes += memoryOf(t)?.bytes ?? 0;
    return {
      mode: this.mode,
      kernels: byKernel.length,
      compileMs: sum((k) => k.compileMs) + this.pipelineTimes.firstRunMs,
      runs: sum((k) => k.runs),
      runMs: sum((k) => k.runMs),
      uploads: this.uploads,
      reads: this.reads,
      readMs: this.readMs,
      liveTensors: this.live.size,
      liveBytes,
      byKernel,
      pipelines: {
        live: this.pipelines.size,
        held: this.heldPipelines,
        fixedKernels: this.cache.fixedKernels,
        ...this.pipelineTimes,
      },
    };
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const pipeline of [...this.pipelines]) await pipeline.destroy();
    // Textures and buffers first: deleting them goes through the kernels that made them.
    for (const t of [...this.live]) t.dispose();
    this.cache.clear();
    await this.gpu.destroy();
  }

  private track(tensor: DeviceTensor): DeviceTensor {
    this.live.add(tensor);
    return tensor;
  }

  async read(memory: DeviceMemory): Promise<Float32Array> {
    const start = performance.now();
    try {
      return await memory.read();
    } finally {
      this.reads++;
      this.readMs += performance.now() - start;
    }
  }

  private checkAlive(op: string): void {
    if (this.destroyed) throw new Error(`${op}: the gpu backend ${this.name} was destroyed`);
  }

  private checkDeviceTensors(op: string, path: string, value: unknown, depth: number): void {
    if (isDeviceTensor(value)) {
      if (ownerOf(value) !== this) fail(op, path, `a device tensor of this backend (${this.name})`, `one from ${ownerOf(value).name}`);
      if (value.disposed) fail(op, path, 'a live device tensor', `${value}`);
    } else if (depth < 3 && Array.isArray(value)) {
      for (const [i, v] of value.entries()) this.checkDeviceTensors(op, `${path}[${i}]`, v, depth + 1);
    } else if (depth < 3 && isPlainObject(value)) {
      for (const [key, v] of Object.entries(value)) this.checkDeviceTensors(op, `${path}.${key}`, v, depth + 1);
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The device's own size limits, where gpu.js exposes them (after the probe kernel created its context). */
function deviceReport(mode: GpuMode, gpu: GPU): DeviceReport {
  const kernels = (gpu as unknown as { kernels?: object[] }).kernels ?? [];
  for (const kernel of kernels as {
    constructor?: { features?: { maxTextureSize?: number } };
    _device?: { limits?: { maxStorageBufferBindingSize?: number; maxBufferSize?: number } };
  }[]) {
    const limits = kernel._device?.limits;
    if (mode === 'webgpu' && limits?.maxStorageBufferBindingSize) {
      return { maxBufferBytes: Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize ?? Number.POSITIVE_INFINITY) };
    }
    const maxTextureSize = kernel.constructor?.features?.maxTextureSize;
    if (mode === 'headlessgl' && maxTextureSize) return { maxTextureSize };
  }
  return {};
}
