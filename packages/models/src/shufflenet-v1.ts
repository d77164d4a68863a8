import { describe, fail, Rng, Tensor } from '@shuffle/core';
import { type Backend, cpu, type DeviceTensor, type GpuBackend, type GpuPipeline, TensorArena } from '@shuffle/kernels';
import { resolveShuffleNetV1Config, type ShuffleNetV1Config, type ShuffleNetV1Options } from './config.js';
import { asyncOnlyBackend, chainAsync, DeviceCopies, type DeviceRun, disposeNow, ForwardTape, isGpuBackend } from './device-run.js';
import { BatchNorm2d } from './layers/batch-norm2d.js';
import { ChannelShuffle } from './layers/channel-shuffle.js';
import { Conv2d } from './layers/conv2d.js';
import { DepthwiseConv2d } from './layers/depthwise-conv2d.js';
import type { Layer } from './layers/layer.js';
import { Linear } from './layers/linear.js';
import { AvgPool2d, GlobalAvgPool2d, MaxPool2d } from './layers/pooling.js';
import { ReLU } from './layers/relu.js';
import type { ForwardAsyncOptions, ForwardOptions, LayerInfo, Model, NamedBuffer, Parameter } from './model.js';

/**
 * Inference pipelines a gpu model keeps, one per input shape and layout (least recently used dropped):
 * enough for a few alternating batch sizes. On headlessgl a dropped pipeline's memory stays until the
 * backend's destroy() (see ReplayPipeline), so every new shape beyond these grows it.
 */
const MAX_INFERENCE_PIPELINES = 4;

/** What one unit needs to know to build itself. */
export interface ShuffleV1UnitSpec {
  /** Readable path, e.g. 'stage2.unit1'. */
  name: string;
  /** Checkpoint prefix, e.g. 'features.0'. */
  key: string;
  inChannels: number;
  outChannels: number;
  stride: 1 | 2;
  groups: number;
  /** Groups of the first pointwise conv: 1 in stage 2's first unit (its input, the stem, is narrow), else `groups`. */
  firstGroups: number;
  shuffle: 'paper' | 'official';
}

/**
 * One ShuffleNet v1 unit, in the official code's order (megvii ShuffleNetV1/blocks.py):
 *
 *   branch_main_1: 1x1 conv (firstGroups) -> BN -> ReLU -> 3x3 depthwise conv (stride s, pad 1) -> BN
 *   branch_main_2: 1x1 conv (groups) -> BN
 *   stride 1:  y = relu(x + branch(x))
 *   stride 2:  y = concat(avgpool3x3/2(x), relu(branch(x)))   (the branch makes out - in channels)
 *
 * with the bottleneck mid = out / 4 and no ReLU after the depthwise conv. The channel shuffle sits after
 * the first pointwise conv's ReLU ('paper') or after the depthwise conv's BN in the inverse order
 * ('official'); either way it lets the second grouped conv see every group of the first. No shuffle
 * when groups = 1.
 */
export class ShuffleV1Unit {
  readonly name: string;
  readonly stride: 1 | 2;
  readonly pw1: Conv2d;
  readonly pw1Bn: BatchNorm2d;
  readonly pw1Relu: ReLU;
  readonly dw: DepthwiseConv2d;
  readonly dwBn: BatchNorm2d;
  readonly pw2: Conv2d;
  readonly pw2Bn: BatchNorm2d;
  /** Null when groups = 1. */
  readonly shuffle: ChannelShuffle | null;
  readonly shufflePlacement: 'paper' | 'official';
  /** The stride-2 unit's shortcut; null in stride-1 units. */
  readonly shortcutPool: AvgPool2d | null;
  /** After the add (stride 1) or on the branch before the concat (stride 2). */
  readonly outRelu: ReLU;
  /** The two tensors the forward's add (x, branch) or concat (shortcut, activated branch) joined. */
  private joined: [Tensor, Tensor] | null = null;
  /** forwardAsync's `joined`, on the device. */
  private deviceJoined: [DeviceTensor, DeviceTensor] | null = null;

  constructor(
    readonly backend: Backend,
    spec: ShuffleV1UnitSpec,
    dtype: Tensor['dtype'],
    rng: Rng | undefined,
  ) {
    const { name, key, inChannels, outChannels, stride, groups, firstGroups } = spec;
    this.name = name;
    this.stride = stride;
    const mid = outChannels / 4;
    const branchOut = stride === 2 ? outChannels - inChannels : outChannels;
    const main1 = `${key}.branch_main_1`;
    const main2 = `${key}.branch_main_2`;
    this.pw1 = new Conv2d(backend, `${name}.pw1`, {
      key: `${main1}.0`,
      inChannels,
      outChannels: mid,
      kernelSize: 1,
      groups: firstGroups,
      dtype,
      rng,
    });
    // The ReLUs after pw1's BN, after pw2's BN in a stride-2 unit, and after the add in a stride-1 unit run
    // inside the op before them (batchNormRelu2d, addRelu), on every backend; they stay layers of their own.
    this.pw1Bn = new BatchNorm2d(backend, `${name}.pw1.bn`, { key: `${main1}.1`, channels: mid, dtype, relu: true });
    this.pw1Relu = new ReLU(backend, `${name}.pw1.relu`);
    this.dw = new DepthwiseConv2d(backend, `${name}.dw`, {
      key: `${main1}.3`,
      channels: mid,
      kernelSize: 3,
      stride,
      padding: 1,
      dtype,
      rng,
    });
    this.dwBn = new BatchNorm2d(backend, `${name}.dw.bn`, { key: `${main1}.4`, channels: mid, dtype });
    this.pw2 = new Conv2d(backend, `${name}.pw2`, {
      key: `${main2}.0`,
      inChannels: mid,
      outChannels: branchOut,
      kernelSize: 1,
      groups,
      dtype,
      rng,
    });
    this.pw2Bn = new BatchNorm2d(backend, `${name}.pw2.bn`, { key: `${main2}.1`, channels: branchOut, dtype, relu: stride === 2 });
    this.shufflePlacement = spec.shuffle;
    this.shuffle = groups > 1 ? new ChannelShuffle(backend, `${name}.shuffle`, groups, spec.shuffle === 'official') : null;
    this.shortcutPool = stride === 2 ? new AvgPool2d(backend, `${name}.shortcut_avgpool`, { kernelSize: 3, stride: 2, padding: 1 }) : null;
    this.outRelu = new ReLU(backend, `${name}.relu`);
  }

  forward(x: Tensor, training: boolean): Tensor {
    let y = this.pw1.forward(x);
    y = this.pw1Bn.forward(y, training); // and pw1Relu
    if (this.shuffle && this.shufflePlacement === 'paper') y = this.shuffle.forward(y);
    y = this.dw.forward(y);
    y = this.dwBn.forward(y, training);
    if (this.shuffle && this.shufflePlacement === 'official') y = this.shuffle.forward(y);
    y = this.pw2.forward(y);
    const branch = this.pw2Bn.forward(y, training); // and outRelu, in a stride-2 unit
    if (this.shortcutPool === null) {
      this.joined = [x, branch];
      return this.backend.addRelu(x, branch); // outRelu after the add
    }
    const shortcut = this.shortcutPool.forward(x);
    this.joined = [shortcut, branch];
    return this.backend.concat([shortcut, branch]);
  }

  /** The forward in reverse. x feeds both the shortcut and the branch, so dx is the sum of both paths' gradients. */
  backward(dy: Tensor): Tensor {
    const joined = this.joined;
    if (joined === null) fail(`ShuffleV1Unit ${this.name}`, 'backward', 'a forward call first (it uses what forward saved)', 'none');
    let dShortcutX: Tensor;
    let d: Tensor;
    if (this.shortcutPool === null) {
      const { da, db } = this.backend.addReluBackward(dy, ...joined);
      dShortcutX = da;
      d = db;
    } else {
      const [dShortcut, dActivated] = this.backend.concatBackward(dy, joined).dxs as [Tensor, Tensor];
      dShortcutX = this.shortcutPool.backward(dShortcut);
      d = dActivated;
    }
    d = this.pw2Bn.backward(d);
    d = this.pw2.backward(d);
    if (this.shuffle && this.shufflePlacement === 'official') d = this.shuffle.backward(d);
    d = this.dwBn.backward(d);
    d = this.dw.backward(d);
    if (this.shuffle && this.shufflePlacement === 'paper') d = this.shuffle.backward(d);
    d = this.pw1Bn.backward(d);
    d = this.pw1.backward(d);
    return this.backend.add(dShortcutX, d);
  }

  /** The branch's layers as forward steps, in the order of `forward`. */
  private branchSteps(run: DeviceRun, training: boolean): ((t: DeviceTensor) => Promise<DeviceTensor>)[] {
    const paper = this.shuffle && this.shufflePlacement === 'paper' ? this.shuffle : null;
    const official = this.shuffle && this.shufflePlacement === 'official' ? this.shuffle : null;
    return [
      (t) => this.pw1.forwardAsync(run, t),
      (t) => this.pw1Bn.forwardAsync(run, t, training), // and pw1Relu
      ...(paper ? [(t: DeviceTensor) => paper.forwardAsync(run, t)] : []),
      (t) => this.dw.forwardAsync(run, t),
      (t) => this.dwBn.forwardAsync(run, t, training),
      ...(official ? [(t: DeviceTensor) => official.forwardAsync(run, t)] : []),
      (t) => this.pw2.forwardAsync(run, t),
      (t) => this.pw2Bn.forwardAsync(run, t, training), // and outRelu, in a stride-2 unit
    ];
  }

  /**
   * `forward` on a gpu backend: the same ops, device tensors between them, each handed to `run.release`
   * once used (or when a later op throws). Inference keeps no reference to them.
   */
  async forwardAsync(run: DeviceRun, x: DeviceTensor, training: boolean): Promise<DeviceTensor> {
    this.deviceJoined = null;
    const branch = await chainAsync(x, this.branchSteps(run, training), (t) => run.release(t));
    let shortcut: DeviceTensor | null = null;
    try {
      if (this.shortcutPool === null) {
        if (training) this.deviceJoined = [x, branch];
        return await run.gpu.addRelu(x, branch); // outRelu after the add
      }
      shortcut = await this.shortcutPool.forwardAsync(run, x);
      if (training) this.deviceJoined = [shortcut, branch];
      return await run.gpu.concat([shortcut, branch]);
    } finally {
      if (shortcut) run.release(shortcut);
      run.release(branch);
    }
  }

  /**
   * `backward` on a gpu backend; every intermediate gradient is disposed once used, or when a later op
   * throws (dy is the caller's).
   */
  async backwardAsync(run: DeviceRun, dy: DeviceTensor): Promise<DeviceTensor> {
    const joined = this.deviceJoined;
    if (joined === null)
      fail(`ShuffleV1Unit ${this.name}`, 'backwardAsync', 'a training forwardAsync first (it uses what forward saved)', 'none');
    let dShortcutX: DeviceTensor | null = null;
    let dBranch: DeviceTensor | null = null;
    try {
      if (this.shortcutPool === null) {
        ({ da: dShortcutX, db: dBranch } = await run.gpu.addReluBackward(dy, ...joined));
      } else {
        const [dShortcut, dActivated] = (await run.gpu.concatBackward(dy, joined)).dxs as [DeviceTensor, DeviceTensor];
        dBranch = dActivated;
        try {
          dShortcutX = await this.shortcutPool.backwardAsync(run, dShortcut);
        } finally {
          dShortcut.dispose();
        }
      }
      return await this.branchBackward(run, dBranch, dShortcutX);
    } finally {
      dBranch?.dispose();
      dShortcutX?.dispose();
    }
  }

  /** The branch's backward from dBranch, plus the shortcut's gradient: dx. */
  private async branchBackward(run: DeviceRun, dBranch: DeviceTensor, dShortcutX: DeviceTensor): Promise<DeviceTensor> {
    const paper = this.shuffle && this.shufflePlacement === 'paper' ? this.shuffle : null;
    const official = this.shuffle && this.shufflePlacement === 'official' ? this.shuffle : null;
    const back = (layer: { backwardAsync(run: DeviceRun, d: DeviceTensor): Promise<DeviceTensor> }) => (d: DeviceTensor) =>
      layer.backwardAsync(run, d);
    const steps = [
      back(this.pw2Bn),
      back(this.pw2),
      ...(official ? [back(official)] : []),
      back(this.dwBn),
      back(this.dw),
      ...(paper ? [back(paper)] : []),
      back(this.pw1Bn),
      back(this.pw1),
    ];
    const dMain = await chainAsync(dBranch, steps, disposeNow);
    try {
      return await run.gpu.add(dShortcutX, dMain);
    } finally {
      dMain.dispose();
    }
  }

  /** The unit's layers in forward order (for parameters and folding). */
  layers(): Layer[] {
    const { shuffle } = this;
    return [
      this.pw1,
      this.pw1Bn,
      this.pw1Relu,
      ...(shuffle && this.shufflePlacement === 'paper' ? [shuffle] : []),
      this.dw,
      this.dwBn,
      ...(shuffle && this.shufflePlacement === 'official' ? [shuffle] : []),
      this.pw2,
      this.pw2Bn,
      ...(this.shortcutPool ? [this.shortcutPool] : []),
      this.outRelu,
    ];
  }

  /** The unit's entries in `describe`, in the reference sheet's order. */
  describe(inShape: readonly number[]): { infos: LayerInfo[]; outShape: number[] } {
    const infos: LayerInfo[] = [];
    let shape = [...inShape];
    const push = (info: LayerInfo) => {
      infos.push(info);
      shape = info.outShape;
    };
    for (const layer of [this.pw1, this.pw1Bn, this.pw1Relu]) push(layer.describe(shape));
    if (this.shuffle && this.shufflePlacement === 'paper') push(this.shuffle.describe(shape));
    push(this.dw.describe(shape));
    push(this.dwBn.describe(shape));
    if (this.shuffle && this.shufflePlacement === 'official') push(this.shuffle.describe(shape));
    push(this.pw2.describe(shape));
    push(this.pw2Bn.describe(shape));
    const [n, , h, w] = shape as [number, number, number, number];
    if (this.shortcutPool) {
      const shortcut = this.shortcutPool.describe(inShape);
      infos.push(shortcut);
      const inShapes = [shortcut.outShape, shape];
      const channels = (shortcut.outShape[1] as number) + (shape[1] as number);
      push({ name: `${this.name}.concat`, op: 'concat', inShape: inShapes, outShape: [n, channels, h, w], params: 0, macs: 0 });
    } else {
      push({ name: `${this.name}.add`, op: 'add', inShape: [...shape], outShape: [...shape], params: 0, macs: 0 });
    }
    push(this.outRelu.describe(shape));
    return { infos, outShape: shape };
  }
}

/**
 * ShuffleNet v1 (Zhang et al. 2017) with the official checkpoint's parameter names. The forward is a
 * plain walk through stem, 16 units and classifier; the backward walks the same layers in reverse,
 * each layer's backward using what its forward saved.
 */
export class ShuffleNetV1 implements Model {
  readonly config: ShuffleNetV1Config;
  /** A synchronous Backend (forward / backward) or a GpuBackend (forwardAsync / backwardAsync). */
  readonly backend: Backend | GpuBackend;
  /** The backend when it is a gpu backend, else null. */
  readonly gpu: GpuBackend | null;
  readonly firstConv: Conv2d;
  readonly firstBn: BatchNorm2d;
  readonly firstRelu: ReLU;
  /** The 'imagenet' stem's pool; null with the 'small' stem. */
  readonly maxPool: MaxPool2d | null;
  readonly units: ShuffleV1Unit[];
  readonly globalPool: GlobalAvgPool2d;
  readonly classifier: Linear;
  private lastLogitsShape: readonly number[] | null = null;
  /** Device copies of the parameters and buffers (gpu backend only). */
  private copies: DeviceCopies | null = null;
  /** What the last training forwardAsync saved for backwardAsync. */
  private tape: ForwardTape | null = null;
  /**
   * The inference pipelines by the input shape and layout they were recorded for, least recently used
   * first (at most MAX_INFERENCE_PIPELINES), and the one the last inference forwardAsync ran.
   */
  private readonly inferencePipelines = new Map<string, GpuPipeline>();
  private lastPipeline: GpuPipeline | null = null;
  /**
   * How the last forwardAsync ran: 'ops' (op by op), or the executor gpu.js ran the inference pipeline
   * on ('fused-threaded' / 'fused-sync' on webasm, 'fused-encoder' on webgpu, 'generic' on cpu and
   * headlessgl or where fusion declined: `pipeline.fallbackReason` says why). Null before the first.
   */
  lastForwardExecutor: string | null = null;
  /**
   * Where the cpu kernels' results go (see TensorArena): one arena per kind of pass, since a training
   * forward, an inference forward and a backward ask for different sequences of buffers. Backward reads
   * what the last forward left in its arena, which the next forward of that mode overwrites.
   */
  private readonly arenas = { training: new TensorArena(), inference: new TensorArena(), backward: new TensorArena() };

  constructor(options: ShuffleNetV1Options) {
    const config = resolveShuffleNetV1Config(options);
    this.config = config;
    this.backend = options.backend ?? cpu;
    this.gpu = isGpuBackend(this.backend) ? this.backend : null;
    // A gpu model's layers hold a Backend whose synchronous ops throw, naming forwardAsync.
    const backend = this.gpu ? asyncOnlyBackend(this.gpu, 'ShuffleNetV1') : (this.backend as Backend);
    const { dtype, groups, channels, repeats, stem } = config;
    // One generator, drawn in construction order, so a seed fixes every weight.
    const rng = config.init === 'he' ? new Rng(config.seed) : undefined;

    const stemStride = stem === 'imagenet' ? 2 : 1;
    this.firstConv = new Conv2d(backend, 'conv1', {
      key: 'first_conv.0',
      inChannels: config.inChannels,
      outChannels: channels.conv1,
      kernelSize: 3,
      stride: stemStride,
      padding: 1,
      dtype,
      rng,
    });
    // Its ReLU runs inside it (batchNormRelu2d), and stays a layer of its own.
    this.firstBn = new BatchNorm2d(backend, 'conv1.bn', { key: 'first_conv.1', channels: channels.conv1, dtype, relu: true });
    this.firstRelu = new ReLU(backend, 'conv1.relu');
    this.maxPool = stem === 'imagenet' ? new MaxPool2d(backend, 'maxpool', { kernelSize: 3, stride: 2, padding: 1 }) : null;

    this.units = [];
    let inChannels = channels.conv1;
    channels.stages.forEach((outChannels, stage) => {
      for (let i = 0; i < (repeats[stage] as number); i++) {
        const index = this.units.length;
        const spec: ShuffleV1UnitSpec = {
          name: `stage${stage + 2}.unit${i + 1}`,
          key: `features.${index}`,
          inChannels,
          outChannels,
          stride: i === 0 ? 2 : 1,
          groups,
          firstGroups: index === 0 ? 1 : groups,
          shuffle: config.shuffle,
        };
        this.units.push(new ShuffleV1Unit(backend, spec, dtype, rng));
        inChannels = outChannels;
      }
    });

    this.globalPool = new GlobalAvgPool2d(backend, 'globalpool');
    this.classifier = new Linear(backend, 'fc', {
      key: 'classifier.0',
      inFeatures: inChannels,
      outFeatures: config.numClasses,
      bias: config.classifierBias,
      dtype,
      rng,
    });
  }

  forward(x: Tensor, options: ForwardOptions = {}): Tensor {
    const { training = false } = options ?? {};
    if (typeof training !== 'boolean') fail('ShuffleNetV1.forward', 'options.training', 'a boolean', training);
    this.requireSync('ShuffleNetV1.forward', 'forwardAsync');
    this.checkInput(x);
    // Every intermediate lives in the arena (recycled by the next forward in the same mode); the logits
    // are copied out, so they are the caller's to keep.
    const arena = training ? this.arenas.training : this.arenas.inference;
    const logits = arena.run(() => {
      let y = this.firstConv.forward(x);
      y = this.firstBn.forward(y, training); // and firstRelu
      if (this.maxPool) y = this.maxPool.forward(y, training);
      for (const unit of this.units) y = unit.forward(y, training);
      y = this.globalPool.forward(y);
      return this.classifier.forward(y).clone();
    });
    this.lastLogitsShape = logits.shape;
    return logits;
  }

  /**
   * Overwrites every parameter's grad with dLoss/dparameter for the last forward, given dLoss/dLogits,
   * and returns dLoss/dx (in x's layout).
   */
  backward(dLogits: Tensor): Tensor {
    const op = 'ShuffleNetV1.backward';
    this.requireSync(op, 'backwardAsync');
    if (this.lastLogitsShape === null) fail(op, 'dLogits', 'a forward call first (backward uses what forward saved)', 'none');
    if (
      dLogits === null ||
      typeof dLogits !== 'object' ||
      !Array.isArray(dLogits.shape) ||
      dLogits.shape.length !== 2 ||
      dLogits.shape[0] !== this.lastLogitsShape[0] ||
      dLogits.shape[1] !== this.lastLogitsShape[1]
    ) {
      fail(op, 'dLogits', `a tensor of the last logits' shape ${describe(this.lastLogitsShape)}`, dLogits);
    }
    if (dLogits.dtype !== this.config.dtype) fail(op, 'dLogits.dtype', `the model's dtype ${this.config.dtype}`, dLogits.dtype);
    // The gradients land in the parameters' own grad tensors (copied out of the arena); dx is copied too.
    return this.arenas.backward.run(() => {
      let d = this.classifier.backward(dLogits);
      d = this.globalPool.backward(d);
      for (let i = this.units.length - 1; i >= 0; i--) d = (this.units[i] as ShuffleV1Unit).backward(d);
      if (this.maxPool) d = this.maxPool.backward(d);
      d = this.firstBn.backward(d);
      return this.firstConv.backward(d).clone();
    });
  }

  /**
   * Drops the recycled memory of forward and backward on a synchronous backend (hundreds of MB after a
   * batch-8 224x224 training step), e.g. before switching to small inference batches. The next pass
   * allocates afresh; what the last forward saved for backward stays valid until the next forward.
   */
  releaseMemory(): void {
    for (const arena of Object.values(this.arenas)) arena.clear();
  }

  /**
   * The forward on a gpu backend. x: a host Tensor (uploaded for this call) or a DeviceTensor of the
   * model's backend (read, never disposed). Resolves to the logits as a DeviceTensor that the caller
   * reads and disposes. A training forward updates the batch norm running statistics on the device and
   * copies them into buffers() before it resolves, and keeps what backwardAsync reads until
   * backwardAsync or the next forwardAsync; an inference forward keeps nothing. Parameters stay on the
   * device between calls and are uploaded again only when their host data changed (device-run.ts).
   * The inference pipeline (the default) passes x and the logits through the host: see forwardPipeline.
   * A forward that fails frees every device tensor it made before it rejects.
   */
  async forwardAsync(x: Tensor | DeviceTensor, options: ForwardAsyncOptions = {}): Promise<DeviceTensor> {
    const op = 'ShuffleNetV1.forwardAsync';
    const gpu = this.requireGpu(op, 'forward');
    const { training = false, pipeline = true } = options ?? {};
    if (typeof training !== 'boolean') fail(op, 'options.training', 'a boolean', training);
    if (typeof pipeline !== 'boolean') fail(op, 'options.pipeline', 'a boolean', pipeline);
    this.checkInput(x, op);
    this.endTape();
    this.lastLogitsShape = null;
    if (!training && pipeline) return this.forwardPipeline(gpu, x);
    const copies = this.deviceCopies(gpu);
    const tape = new ForwardTape(gpu, copies, training);
    let logits: DeviceTensor | null = null;
    try {
      logits = await this.forwardOnDevice(tape, x, training);
      if (training) await copies.readBack(this.buffers().map((b) => b.value));
    } catch (error) {
      // forwardOnDevice has released every intermediate to the tape; free what it kept, and the logits.
      tape.end();
      logits?.dispose();
      throw error;
    }
    if (training) {
      this.tape = tape;
      this.lastLogitsShape = logits.shape;
    }
    this.lastForwardExecutor = 'ops';
    return logits;
  }

  /**
   * The backward on a gpu backend, for the last forwardAsync (which must have been a training one):
   * given dLoss/dLogits (a DeviceTensor, or a host Tensor), overwrites every parameter's host grad,
   * which is written when the promise resolves. The saved state is freed. dLoss/dx is not returned.
   */
  async backwardAsync(dLogits: Tensor | DeviceTensor): Promise<void> {
    const op = 'ShuffleNetV1.backwardAsync';
    const gpu = this.requireGpu(op, 'backward');
    const tape = this.tape;
    const shape = this.lastLogitsShape;
    if (tape === null || shape === null) {
      fail(
        op,
        'dLogits',
        'a forwardAsync with { training: true } first (backwardAsync reads what it saved; an inference forward saves nothing)',
        'none',
      );
    }
    if (dLogits === null || typeof dLogits !== 'object' || !Array.isArray(dLogits.shape) || describe(dLogits.shape) !== describe(shape)) {
      fail(op, 'dLogits', `a tensor of the last logits' shape ${describe(shape)}`, dLogits);
    }
    this.tape = null;
    this.lastLogitsShape = null;
    const dy = dLogits instanceof Tensor ? gpu.upload(dLogits) : dLogits;
    try {
      const back = (layer: { backwardAsync(run: DeviceRun, d: DeviceTensor): Promise<DeviceTensor> }) => (d: DeviceTensor) =>
        layer.backwardAsync(tape, d);
      const steps = [
        back(this.classifier),
        back(this.globalPool),
        ...[...this.units].reverse().map(back),
        ...(this.maxPool ? [back(this.maxPool)] : []),
        back(this.firstBn),
        back(this.firstConv),
      ];
      (await chainAsync(dy, steps, disposeNow)).dispose();
      await tape.gradientsWritten();
    } catch (error) {
      // A step failed with gradient reads queued: let them settle, so none writes a grad after this
      // rejects or rejects unhandled (the step's error is the one reported).
      await tape.gradientsWritten().catch(() => {});
      throw error;
    } finally {
      if (dy !== dLogits) dy.dispose();
      tape.end();
    }
  }

  /** The forward's layers on the device, each intermediate handed to run.release once used (or when a step throws). */
  private async forwardOnDevice(run: ForwardTape, x: Tensor | DeviceTensor, training: boolean): Promise<DeviceTensor> {
    const uploaded = x instanceof Tensor ? run.gpu.upload(x) : null;
    const input = uploaded ?? (x as DeviceTensor);
    const steps = [
      (t: DeviceTensor) => this.firstConv.forwardAsync(run, t),
      (t: DeviceTensor) => this.firstBn.forwardAsync(run, t, training), // and firstRelu
      ...(this.maxPool ? [(t: DeviceTensor) => (this.maxPool as MaxPool2d).forwardAsync(run, t, training)] : []),
      ...this.units.map((unit) => (t: DeviceTensor) => unit.forwardAsync(run, t, training)),
      (t: DeviceTensor) => this.globalPool.forwardAsync(run, t),
      (t: DeviceTensor) => this.classifier.forwardAsync(run, t),
    ];
    try {
      return await chainAsync(input, steps, (t) => run.release(t));
    } finally {
      if (uploaded) run.release(uploaded);
    }
  }

  /**
   * The inference pipeline (createPipeline on the model's gpu backend) of the last inference
   * forwardAsync, with its executor, fallback reason and run times; null before one.
   */
  get pipeline(): GpuPipeline | null {
    return this.lastPipeline;
  }

  /**
   * Inference as one gpu.js pipeline: recorded at the first call for an input shape and layout (one op
   * by op forward, then gpu.js compiles its plan at the first run), replayed after that. The pipelines
   * of the last MAX_INFERENCE_PIPELINES shapes are kept, so alternating batch sizes replay rather than
   * record again. The parameters and buffers are pipeline inputs, passed from the host at each run, so
   * edits to them count.
   *
   * Data movement: gpu.js pipelines take and return host arrays, so a DeviceTensor x is read back first
   * (a host x goes in as it is), and the logits come back to the host, where they are uploaded again:
   * forwardAsync resolves to a DeviceTensor on every path, and [N, numClasses] values cost one small
   * upload. A caller that wants the host logits reads them back once more.
   */
  private async forwardPipeline(gpu: GpuBackend, x: Tensor | DeviceTensor): Promise<DeviceTensor> {
    const op = 'ShuffleNetV1.forwardAsync';
    const hosts = [...this.parameters(), ...this.buffers()].map((p) => p.value);
    const key = `${describe(x.shape)} ${x.layout}`;
    let pipeline = this.inferencePipelines.get(key);
    if (pipeline)
      this.inferencePipelines.delete(key); // re-inserted below as the most recently used
    else {
      pipeline = await gpu.createPipeline(
        (input, ...values) => {
          const byHost = new Map(hosts.map((host, i) => [host, values[i] as DeviceTensor]));
          const of = (host: Tensor): DeviceTensor =>
            byHost.get(host) ??
            fail(
              op,
              'pipeline',
              'layers that read only parameters() and buffers() (the pipeline inputs)',
              `a tensor of shape ${describe(host.shape)} outside them`,
            );
          return this.forwardOnDevice(new ForwardTape(gpu, { of }, false), input as DeviceTensor, false);
        },
        [x, ...hosts],
      );
      for (const [oldest, evicted] of this.inferencePipelines) {
        if (this.inferencePipelines.size < MAX_INFERENCE_PIPELINES) break;
        this.inferencePipelines.delete(oldest);
        await evicted.destroy();
      }
    }
    this.inferencePipelines.set(key, pipeline);
    this.lastPipeline = pipeline;
    const [logits] = await pipeline.run([x, ...hosts]);
    this.lastForwardExecutor = pipeline.executor;
    return gpu.upload(logits as Tensor);
  }

  private deviceCopies(gpu: GpuBackend): DeviceCopies {
    this.copies ??= new DeviceCopies(gpu);
    return this.copies;
  }

  private endTape(): void {
    this.tape?.end();
    this.tape = null;
  }

  /**
   * Frees the device copies of the parameters and buffers, any saved state and the inference pipelines
   * (a gpu model; the next forwardAsync uploads and records again). The backend's destroy() frees them too.
   */
  async releaseDevice(): Promise<void> {
    this.endTape();
    this.copies?.dispose();
    this.copies = null;
    const pipelines = [...this.inferencePipelines.values()];
    this.inferencePipelines.clear();
    this.lastPipeline = null;
    for (const pipeline of pipelines) await pipeline.destroy();
  }

  private requireGpu(op: string, instead: string): GpuBackend {
    if (this.gpu === null)
      fail(
        op,
        'backend',
        `a gpu backend (this model runs on ${(this.backend as Backend).name}: call ${instead})`,
        (this.backend as Backend).name,
      );
    return this.gpu;
  }

  private requireSync(op: string, instead: string): void {
    if (this.gpu !== null)
      fail(op, 'backend', `a synchronous backend (this model runs on ${this.gpu.name}: call ${instead})`, this.gpu.name);
  }

  /** Every layer in forward order (the unit layers flattened). */
  layers(): Layer[] {
    return [
      this.firstConv,
      this.firstBn,
      this.firstRelu,
      ...(this.maxPool ? [this.maxPool] : []),
      ...this.units.flatMap((unit) => unit.layers()),
      this.globalPool,
      this.classifier,
    ];
  }

  /** In the official checkpoint's order (its state_dict without the buffers). */
  parameters(): Parameter[] {
    return this.layers().flatMap((layer) => layer.parameters());
  }

  buffers(): NamedBuffer[] {
    return this.layers().flatMap((layer) => layer.buffers());
  }

  /**
   * Every layer with its input and output shapes, weight shape, parameter and multiply-add counts for
   * an input of `inputShape` (default [1, inChannels, inputSize, inputSize]), without running anything.
   */
  describe(inputShape: readonly number[] = [1, this.config.inChannels, this.config.inputSize, this.config.inputSize]): LayerInfo[] {
    const op = 'ShuffleNetV1.describe';
    if (
      !Array.isArray(inputShape) ||
      inputShape.length !== 4 ||
      !inputShape.every((d) => Number.isInteger(d) && d >= 1) ||
      inputShape[1] !== this.config.inChannels
    ) {
      fail(op, 'inputShape', `[N, ${this.config.inChannels}, H, W] of positive integers`, inputShape);
    }
    const infos: LayerInfo[] = [];
    let shape = [...inputShape];
    const push = (info: LayerInfo) => {
      infos.push(info);
      shape = info.outShape;
    };
    push(this.firstConv.describe(shape));
    push(this.firstBn.describe(shape));
    push(this.firstRelu.describe(shape));
    if (this.maxPool) push(this.maxPool.describe(shape));
    for (const unit of this.units) {
      const { infos: unitInfos, outShape } = unit.describe(shape);
      infos.push(...unitInfos);
      shape = outShape;
    }
    push(this.globalPool.describe(shape));
    push(this.classifier.describe(shape));
    return infos;
  }

  private checkInput(x: Tensor | DeviceTensor, op = 'ShuffleNetV1.forward'): void {
    const { inChannels, dtype } = this.config;
    if (x === null || typeof x !== 'object' || !Array.isArray(x.shape) || x.shape.length !== 4) {
      fail(op, 'x', `a 4-D tensor [N, ${inChannels}, H, W]`, x);
    }
    if (x.shape[1] !== inChannels) fail(op, 'x', `${inChannels} channels (shape [N, ${inChannels}, H, W])`, `shape ${describe(x.shape)}`);
    if (x.shape[0] === 0 || x.shape[2] === 0 || x.shape[3] === 0)
      fail(op, 'x', 'a non-empty batch and image', `shape ${describe(x.shape)}`);
    // A device tensor is float32 whatever the model's dtype: the gpu computes in float32.
    const onDevice = this.gpu !== null && !(x instanceof Tensor);
    if (x.dtype !== dtype && !onDevice) fail(op, 'x.dtype', `the model's dtype ${dtype} (convert with x.astype('${dtype}'))`, x.dtype);
  }
}

/** Builds a ShuffleNet v1; see {@link ShuffleNetV1Options} for the options and their defaults. */
export function shuffleNetV1(options: ShuffleNetV1Options): ShuffleNetV1 {
  return new ShuffleNetV1(options);
}
