/**
 * ShuffleNet v1 on a gpu backend, per mode: forwardAsync (op by op and as one pipeline) and a training
 * step (forwardAsync training + backwardAsync) agree with the same model on the cpu backend; host
 * parameters and buffers stay the source of truth (gradients, running statistics, edits between
 * calls); device memory does not grow over repeated steps; a forward or backward that fails midway
 * frees what it made; and the misuses fail clearly.
 *
 * The network is small so that its ~40 distinct kernels compile quickly: g3 0.25x (stem 6, stages 60,
 * 120, 240), one stride-2 unit per stage plus one stride-1 unit in stage 3, the ImageNet stem (so the
 * max pool runs) at 64x64, batch 2 (stage 4 sees 2x2: batch norm over 8 values per channel, not 2,
 * whose gradients amplify float32 rounding beyond any useful tolerance).
 */
import { assertClose, randomUniform, ShuffleArgumentError, type Tensor, type Tolerance } from '@shuffle/core';
import { cpu, createGpuBackend, type DeviceTensor, type GpuBackend, type GpuMode } from '@shuffle/kernels';
import { foldBatchNorm, type ShuffleNetV1, type ShuffleNetV1Options, shuffleNetV1 } from '@shuffle/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PIPELINE_EXECUTORS } from './pipeline.js';

const NETWORK: ShuffleNetV1Options = { groups: 3, width: 0.25, repeats: [1, 2, 1], numClasses: 10, inputSize: 64, seed: 7 };
const LABELS = new Int32Array([3, 8]);
const LEARNING_RATE = 0.05;

/**
 * A whole network accumulates float32 rounding over ~20 layers (and batch norm divides by batch
 * statistics of few values), so its tolerance is wider than one op's. Measured worst errors are in the
 * report of each test's failure message.
 */
const NETWORK_TOLERANCE: Record<GpuMode, Tolerance> = {
  cpu: { atol: 1e-4, rtol: 1e-3 },
  webasm: { atol: 5e-4, rtol: 5e-3 },
  headlessgl: { atol: 5e-4, rtol: 5e-3 },
  webgpu: { atol: 5e-4, rtol: 5e-3 },
};

function input(seed: number, layout: 'NCHW' | 'NHWC' = 'NCHW'): Tensor {
  return randomUniform([2, 3, 64, 64], { seed, low: -1, high: 1, layout });
}

/** dLoss/dLogits of the mean cross-entropy, on the host from the cpu model's logits. */
function lossGradient(logits: Tensor): Tensor {
  return cpu.softmaxCrossEntropyBackward(cpu.softmaxCrossEntropy(logits, LABELS), logits, LABELS).dlogits;
}

function sgdStep(model: ShuffleNetV1): void {
  for (const p of model.parameters()) {
    for (let i = 0; i < p.value.size; i++) p.value.data[i] = (p.value.data[i] as number) - LEARNING_RATE * (p.grad.data[i] as number);
  }
}

/** What `intercept` calls instead of a backend op: the real op, its arguments, and which call this is (1-based). */
type Interceptor = (real: (...args: unknown[]) => Promise<unknown>, args: unknown[], call: number) => Promise<unknown>;

/** The backend with some ops replaced by interceptors (to make a device failure happen midway through a model). */
function intercept(gpu: GpuBackend, ops: Record<string, Interceptor>): GpuBackend {
  const calls = new Map<string, number>();
  return new Proxy(gpu, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      const interceptor = typeof property === 'string' ? ops[property] : undefined;
      if (!interceptor) return value;
      return (...args: unknown[]) => {
        const call = (calls.get(property as string) ?? 0) + 1;
        calls.set(property as string, call);
        return interceptor(value as (...args: unknown[]) => Promise<unknown>, args, call);
      };
    },
  });
}

/** Fails the `failing`-th call of an op before it runs; every other call runs. */
const failAt =
  (failing: number): Interceptor =>
  (real, args, call) =>
    call === failing ? Promise.reject(new Error('injected device failure')) : real(...args);

/** Paths to the disposed device tensors an object graph still references (not into the backend or the pipelines). */
function disposedReferences(root: object): string[] {
  const seen = new Set<unknown>();
  const found: string[] = [];
  const visit = (value: unknown, path: string): void => {
    if (typeof value !== 'object' || value === null || seen.has(value) || ArrayBuffer.isView(value)) return;
    seen.add(value);
    const v = value as Record<string, unknown>;
    if (typeof v.read === 'function' && typeof v.disposed === 'boolean') {
      if (v.disposed) found.push(path);
      return;
    }
    if (typeof v.upload === 'function' || typeof v.run === 'function') return; // a backend, a pipeline
    if (value instanceof Map) for (const [key, e] of value) visit(e, `${path}<${String(key)}>`);
    for (const [key, e] of Object.entries(v)) visit(e, `${path}.${key}`);
  };
  visit(root, 'model');
  return found;
}

export function modelTests(mode: GpuMode): void {
  let gpu: GpuBackend;
  const tolerance = NETWORK_TOLERANCE[mode];
  beforeAll(async () => {
    gpu = await createGpuBackend({ mode });
  });
  afterAll(() => gpu.destroy());

  it('inference forwardAsync op by op equals the cpu forward, from a host or a device input, NCHW and NHWC', async () => {
    const onCpu = shuffleNetV1(NETWORK);
    const onGpu = shuffleNetV1({ ...NETWORK, backend: gpu });
    for (const layout of ['NCHW', 'NHWC'] as const) {
      const x = input(1, layout);
      const want = onCpu.forward(x);
      const fromHost = await onGpu.forwardAsync(x, { pipeline: false });
      expect(onGpu.lastForwardExecutor).toBe('ops');
      assertClose(await fromHost.read(), want, tolerance, `logits (${layout}, host input)`);
      const device = gpu.upload(x);
      const fromDevice = await onGpu.forwardAsync(device, { pipeline: false });
      assertClose(await fromDevice.read(), want, tolerance, `logits (${layout}, device input)`);
      expect(device.disposed).toBe(false);
      for (const t of [fromHost, fromDevice, device]) t.dispose();
    }
    await onGpu.releaseDevice();
    expect(gpu.stats().liveTensors).toBe(0);
  });

  it('a training step (forwardAsync, backwardAsync, SGD on the host) matches the cpu one: logits, grads, running statistics, next forward', async () => {
    const onCpu = shuffleNetV1(NETWORK);
    const onGpu = shuffleNetV1({ ...NETWORK, backend: gpu });
    for (let step = 0; step < 2; step++) {
      const x = input(10 + step);
      const want = onCpu.forward(x, { training: true });
      const logits = await onGpu.forwardAsync(x, { training: true });
      assertClose(await logits.read(), want, tolerance, `step ${step} logits`);
      logits.dispose();
      // buffers() is current as soon as forwardAsync resolves.
      const buffers = onGpu.buffers();
      for (const [i, b] of onCpu.buffers().entries())
        assertClose(buffers[i]?.value as Tensor, b.value, tolerance, `step ${step} ${b.name}`);
      const dLogits = lossGradient(want);
      onCpu.backward(dLogits);
      await onGpu.backwardAsync(dLogits);
      const params = onGpu.parameters();
      for (const [i, p] of onCpu.parameters().entries())
        assertClose(params[i]?.grad as Tensor, p.grad, tolerance, `step ${step} grad ${p.name}`);
      // The host update must reach the device: the next step's forward sees the new weights.
      sgdStep(onCpu);
      sgdStep(onGpu);
    }
    const x = input(20);
    const after = await onGpu.forwardAsync(x, { pipeline: false });
    assertClose(await after.read(), onCpu.forward(x), tolerance, 'inference after two steps');
    after.dispose();
    await onGpu.releaseDevice();
    expect(gpu.stats().liveTensors).toBe(0);
  });

  it('inference forwardAsync runs as one gpu.js pipeline: the op-by-op logits, the executor reported, host edits and new shapes followed', async () => {
    const onGpu = shuffleNetV1({ ...NETWORK, backend: gpu });
    const onCpu = shuffleNetV1(NETWORK);
    const live = gpu.stats().liveTensors;
    const x = input(6, 'NHWC');
    const ops = await onGpu.forwardAsync(x, { pipeline: false });
    const piped = await onGpu.forwardAsync(x);
    const pipeline = onGpu.pipeline;
    expect(PIPELINE_EXECUTORS[mode]).toContain(onGpu.lastForwardExecutor);
    expect(pipeline?.executor).toBe(onGpu.lastForwardExecutor);
    // Every kernel of the inference forward, at least: 3 in the stem (conv, BN+ReLU, max pool), 8 per unit
    // (2 convs, 3 BNs, shuffle, depthwise, join) in its 4 units, 2 at the end (global pool, classifier).
    expect(pipeline?.steps).toBeGreaterThanOrEqual(3 + 4 * 8 + 2);
    assertClose(await piped.read(), await ops.read(), tolerance, 'pipeline vs op-by-op logits');
    assertClose(await piped.read(), onCpu.forward(x), tolerance, 'pipeline vs cpu logits');
    // Parameters and buffers are pipeline inputs, read from the host at every run.
    for (const model of [onGpu, onCpu]) {
      model.classifier.weight.value.data[3] = 2;
      model.units[1]?.pw2Bn.runningVar.value.data.fill(4);
    }
    const edited = await onGpu.forwardAsync(x);
    assertClose(await edited.read(), onCpu.forward(x), tolerance, 'pipeline logits after host edits');
    expect(onGpu.pipeline).toBe(pipeline);
    expect(pipeline?.stats.runs).toBe(2);
    // Another input shape records another pipeline; back at the first shape, the first one replays.
    const pipelines = gpu.stats().pipelines.live;
    const one = await onGpu.forwardAsync(randomUniform([1, 3, 64, 64], { seed: 8, layout: 'NHWC' }));
    expect(onGpu.pipeline).not.toBe(pipeline);
    expect(one.shape).toEqual([1, 10]);
    assertClose(await one.read(), onCpu.forward(randomUniform([1, 3, 64, 64], { seed: 8, layout: 'NHWC' })), tolerance, 'batch-1 logits');
    expect(gpu.stats().pipelines.live).toBe(pipelines + 1);
    const again = await onGpu.forwardAsync(x);
    expect(onGpu.pipeline).toBe(pipeline);
    expect(pipeline?.stats.runs).toBe(3);
    expect(gpu.stats().pipelines.live).toBe(pipelines + 1);
    assertClose(await again.read(), onCpu.forward(x), tolerance, 'batch-2 logits again');
    for (const t of [ops, piped, edited, one, again]) t.dispose();
    await onGpu.releaseDevice();
    expect(gpu.stats().liveTensors).toBe(live);
    expect(gpu.stats().pipelines.live).toBe(pipelines - 1);
  });

  it('writing a parameter or a buffer on the host changes the next forward; an unchanged one is not uploaded again', async () => {
    const onGpu = shuffleNetV1({ ...NETWORK, backend: gpu });
    const onCpu = shuffleNetV1(NETWORK);
    const x = gpu.upload(input(3));
    (await onGpu.forwardAsync(x, { pipeline: false })).dispose();
    const uploads = gpu.stats().uploads;
    (await onGpu.forwardAsync(x, { pipeline: false })).dispose();
    expect(gpu.stats().uploads - uploads).toBe(0);
    for (const model of [onGpu, onCpu]) {
      model.classifier.weight.value.data[5] = 3;
      model.firstBn.runningMean.value.data[1] = 0.5;
    }
    const y = await onGpu.forwardAsync(x, { pipeline: false });
    expect(gpu.stats().uploads - uploads).toBe(2);
    assertClose(await y.read(), onCpu.forward(await x.read()), tolerance, 'logits after the edits');
    for (const t of [x, y]) t.dispose();
    await onGpu.releaseDevice();
  });

  it('repeated training steps and inference forwards leave no device tensors behind', async () => {
    const model = shuffleNetV1({ ...NETWORK, backend: gpu });
    const start = gpu.stats().liveTensors;
    const x = gpu.upload(input(4));
    const dLogits = gpu.upload(randomUniform([2, 10], { seed: 5, low: -0.1, high: 0.1 }));
    const round = async () => {
      (await model.forwardAsync(x, { training: true })).dispose();
      await model.backwardAsync(dLogits);
      sgdStep(model);
      (await model.forwardAsync(x, { pipeline: false })).dispose();
      (await model.forwardAsync(x)).dispose();
    };
    await round();
    const live = gpu.stats().liveTensors;
    const bytes = gpu.stats().liveBytes;
    for (let i = 0; i < 3; i++) await round();
    expect(gpu.stats().liveTensors).toBe(live);
    expect(gpu.stats().liveBytes).toBe(bytes);
    // What remains is the model's device copies (one per parameter and buffer) and our two inputs.
    expect(live - start).toBe(model.parameters().length + model.buffers().length + 2);
    await model.releaseDevice();
    for (const t of [x, dLogits]) t.dispose();
    expect(gpu.stats().liveTensors).toBe(start);
  });

  if (mode === 'cpu') {
    // The cap does not depend on the mode; cpu compiles a new shape's kernels fastest.
    it('keeps the inference pipelines of the last 4 input shapes, dropping the least recently used', async () => {
      const model = shuffleNetV1({ ...NETWORK, inputSize: 32, backend: gpu });
      const pipelines = gpu.stats().pipelines.live;
      const batch = (n: number) => randomUniform([n, 3, 32, 32], { seed: n });
      const recorded = new Map<number, unknown>();
      for (const n of [1, 2, 3, 4, 1, 5]) {
        (await model.forwardAsync(batch(n))).dispose();
        if (!recorded.has(n)) recorded.set(n, model.pipeline);
        expect(model.pipeline, `batch ${n}`).toBe(recorded.get(n));
      }
      // Batch 2 was the least recently used when batch 5 came: dropped, and batch 1 kept.
      expect(gpu.stats().pipelines.live).toBe(pipelines + 4);
      (await model.forwardAsync(batch(1))).dispose();
      expect(model.pipeline).toBe(recorded.get(1));
      (await model.forwardAsync(batch(2))).dispose();
      expect(model.pipeline).not.toBe(recorded.get(2));
      await model.releaseDevice();
      expect(gpu.stats().pipelines.live).toBe(pipelines);
    });
  }

  describe('failures free what they made', () => {
    const injected = [
      ['depthwiseConv2d', 2, 'inside a unit'],
      ['concat', 2, 'at a stride-2 join'],
      ['addRelu', 1, 'at a stride-1 join'],
    ] as const;
    for (const [op, call, where] of injected) {
      it(`a forwardAsync failing ${where} rejects and leaves no device tensors: training, op by op, recording a pipeline`, async () => {
        const live = gpu.stats().liveTensors;
        for (const options of [{ training: true }, { pipeline: false }, {}]) {
          const model = shuffleNetV1({ ...NETWORK, backend: intercept(gpu, { [op]: failAt(call) }) });
          await expect(model.forwardAsync(input(1), options)).rejects.toThrow(/injected device failure/);
          await model.releaseDevice();
          expect(gpu.stats().liveTensors, JSON.stringify(options)).toBe(live);
        }
      });
    }

    it('a backwardAsync failing midway rejects with that failure after its queued gradient reads settled, leaving no device tensors', async () => {
      const live = gpu.stats().liveTensors;
      // The classifier's weight gradient is queued for reading first; here that read fails too (as on a
      // lost device): it must not reject unhandled, nor be what backwardAsync reports.
      const failing = intercept(gpu, {
        linearBackward: async (real, args) => {
          const grads = (await real(...args)) as { dweight: DeviceTensor };
          grads.dweight.dispose();
          return grads;
        },
        conv2dBackward: failAt(2),
      });
      const model = shuffleNetV1({ ...NETWORK, backend: failing });
      (await model.forwardAsync(input(1), { training: true })).dispose();
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        await expect(model.backwardAsync(randomUniform([2, 10], { seed: 3 }))).rejects.toThrow(/injected device failure/);
        await new Promise((resolve) => setTimeout(resolve, 20));
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
      expect(unhandled).toEqual([]);
      await model.releaseDevice();
      expect(gpu.stats().liveTensors).toBe(live);
    });

    it('after an inference forwardAsync (op by op, or recording a pipeline) no layer references a disposed device tensor', async () => {
      const model = shuffleNetV1({ ...NETWORK, backend: gpu });
      (await model.forwardAsync(input(1), { training: true })).dispose();
      await model.backwardAsync(randomUniform([2, 10], { seed: 4 }));
      for (const options of [{ pipeline: false }, {}]) {
        (await model.forwardAsync(input(2), options)).dispose();
        expect(disposedReferences(model), JSON.stringify(options)).toEqual([]);
      }
      await model.releaseDevice();
    });

    it('a layer reading a tensor outside parameters() and buffers() fails the pipeline recording, naming the rule', async () => {
      const model = shuffleNetV1({ ...NETWORK, backend: gpu });
      const live = gpu.stats().liveTensors;
      const all = model.parameters.bind(model);
      model.parameters = () => all().filter((p) => p !== model.firstConv.weight);
      await expect(model.forwardAsync(input(1))).rejects.toThrow(/parameters\(\) and buffers\(\)/);
      await expect(model.forwardAsync(input(1))).rejects.toThrow(ShuffleArgumentError);
      await model.releaseDevice();
      expect(gpu.stats().liveTensors).toBe(live);
    });
  });

  describe('misuse', () => {
    it('the synchronous forward/backward on a gpu model, and forwardAsync on a cpu model, name the right call', async () => {
      const onGpu = shuffleNetV1({ ...NETWORK, backend: gpu });
      expect(() => onGpu.forward(input(1))).toThrow(ShuffleArgumentError);
      expect(() => onGpu.forward(input(1))).toThrow(/forwardAsync/);
      expect(() => onGpu.backward(randomUniform([2, 10], { seed: 1 }))).toThrow(/backwardAsync/);
      expect(() => onGpu.units[0]?.forward(input(1), false)).toThrow(/forwardAsync/);
      expect(() => foldBatchNorm(onGpu)).toThrow(ShuffleArgumentError);
      expect(() => foldBatchNorm(onGpu)).toThrow(/a model on a synchronous backend/);
      const onCpu = shuffleNetV1(NETWORK);
      await expect(onCpu.forwardAsync(input(1))).rejects.toThrow(/call forward\b/);
      await expect(onCpu.backwardAsync(randomUniform([2, 10], { seed: 1 }))).rejects.toThrow(/call backward\b/);
    });

    it('backwardAsync needs a training forwardAsync, the logits shape, and runs once per forward', async () => {
      const model = shuffleNetV1({ ...NETWORK, backend: gpu });
      const live = gpu.stats().liveTensors;
      const dLogits = randomUniform([2, 10], { seed: 2 });
      await expect(model.backwardAsync(dLogits)).rejects.toThrow(/forwardAsync with \{ training: true \} first/);
      (await model.forwardAsync(input(1), { pipeline: false })).dispose();
      await expect(model.backwardAsync(dLogits)).rejects.toThrow(ShuffleArgumentError);
      (await model.forwardAsync(input(1), { training: true })).dispose();
      await expect(model.backwardAsync(randomUniform([2, 9], { seed: 2 }))).rejects.toThrow(/last logits' shape \[2, 10\]/);
      await model.backwardAsync(dLogits);
      await expect(model.backwardAsync(dLogits)).rejects.toThrow(/training: true/);
      await expect(model.forwardAsync(randomUniform([2, 4, 64, 64], { seed: 1 }))).rejects.toThrow(/3 channels/);
      await expect(model.forwardAsync(input(1), { training: 'yes' as never })).rejects.toThrow(/options.training/);
      await model.releaseDevice();
      expect(gpu.stats().liveTensors).toBe(live);
    });
  });
}
