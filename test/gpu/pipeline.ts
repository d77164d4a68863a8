/**
 * gpu.createPipeline per mode: a chain of ops recorded once and replayed as one gpu.js pipeline gives
 * what the same ops give one by one, reports the executor gpu.js ran (fused on webasm and webgpu, generic
 * with a reason elsewhere), replays only the launches its results need, reads each run's inputs afresh,
 * leaves no device tensors behind (and frees none of the caller's), shows in the backend's stats, and
 * refuses what it cannot replay.
 */
import { assertClose, randomUniform, ShuffleArgumentError, type Tensor } from '@shuffle/core';
import { createGpuBackend, type DeviceTensor, type GpuBackend, type GpuMode, type GpuPipelineExecutor } from '@shuffle/kernels';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { GPU_TOLERANCES } from './conformance.js';

/** What gpu.js runs a plan of our kernels on, per mode (webasm threads when the machine has 2+ cores). */
export const PIPELINE_EXECUTORS: Record<GpuMode, readonly GpuPipelineExecutor[]> = {
  cpu: ['generic'],
  webasm: ['fused-threaded', 'fused-sync'],
  headlessgl: ['generic'],
  webgpu: ['fused-encoder'],
};

export function pipelineTests(mode: GpuMode): void {
  let gpu: GpuBackend;
  beforeAll(async () => {
    gpu = await createGpuBackend({ mode });
  });
  afterAll(() => gpu.destroy());
  const tolerance = GPU_TOLERANCES[mode];

  const hosts = (seed: number) => ({
    x: randomUniform([2, 4, 6, 5], { seed, low: -1, high: 1, layout: 'NHWC' }),
    weight: randomUniform([6, 2, 3, 3], { seed: seed + 1, low: -0.5, high: 0.5 }),
    skip: randomUniform([2, 6, 6, 5], { seed: seed + 2, low: -1, high: 1, layout: 'NHWC' }),
    fc: randomUniform([3, 6], { seed: seed + 3, low: -1, high: 1 }),
  });
  type Inputs = [DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor];
  /** conv (groups 2) -> relu -> add -> global pool -> linear, and the add's result as a second output. */
  const chain = async ([x, weight, skip, fc]: Inputs): Promise<DeviceTensor[]> => {
    const conv = await gpu.conv2d(x, weight, { padding: 1, groups: 2 });
    const activated = await gpu.relu(conv);
    const sum = await gpu.add(activated, skip);
    const pooled = await gpu.globalAvgPool2d(sum);
    const logits = await gpu.linear(pooled, fc);
    for (const t of [conv, activated, pooled]) t.dispose();
    return [logits, sum];
  };
  const opByOp = async (values: ReturnType<typeof hosts>): Promise<Tensor[]> => {
    const inputs = [values.x, values.weight, values.skip, values.fc].map((t) => gpu.upload(t)) as Inputs;
    const outputs = await chain(inputs);
    const read = await Promise.all(outputs.map((t) => t.read()));
    for (const t of [...inputs, ...outputs]) t.dispose();
    return read;
  };

  it('replays the chain as one pipeline: the op-by-op results, on new input values too, with the executor gpu.js ran', async () => {
    const first = hosts(1);
    const live = gpu.stats().liveTensors;
    const pipeline = await gpu.createPipeline((...t) => chain(t as Inputs), [first.x, first.weight, first.skip, first.fc]);
    expect(gpu.stats().liveTensors).toBe(live);
    expect(pipeline.executor).toBeNull();
    expect(pipeline.steps).toBe(5);
    expect(pipeline.inputs.map((i) => i.layout)).toEqual(['NHWC', 'NCHW', 'NHWC', 'NCHW']);
    for (const seed of [1, 10]) {
      const values = hosts(seed);
      const want = await opByOp(values);
      const got = await pipeline.run([values.x, values.weight, values.skip, values.fc]);
      expect(got.map((t) => [t.shape, t.layout])).toEqual(want.map((t) => [t.shape, t.layout]));
      assertClose(got[0] as Tensor, want[0] as Tensor, tolerance, `logits (seed ${seed})`);
      assertClose(got[1] as Tensor, want[1] as Tensor, tolerance, `sum (seed ${seed})`);
    }
    expect(PIPELINE_EXECUTORS[mode]).toContain(pipeline.executor);
    if (pipeline.executor === 'generic') expect(pipeline.fallbackReason).toMatch(/fused/);
    else expect(pipeline.fallbackReason).toBeNull();
    expect(pipeline.stats.runs).toBe(2);
    // The backend's stats count the pipeline, and its first run (gpu.js compiles the plan then) as compile time.
    expect(gpu.stats().pipelines.live).toBe(1);
    expect(gpu.stats().pipelines.fixedKernels).toBeGreaterThanOrEqual(5);
    const before = gpu.stats();
    const other = await gpu.createPipeline((...t) => chain(t as Inputs), [first.x, first.weight, first.skip, first.fc]);
    await other.run([first.x, first.weight, first.skip, first.fc]);
    const after = gpu.stats();
    expect(after.pipelines.runs - before.pipelines.runs).toBe(1);
    expect(after.pipelines.firstRunMs - before.pipelines.firstRunMs).toBeCloseTo(other.stats.firstRunMs, 6);
    expect(after.compileMs - before.compileMs).toBeCloseTo(other.stats.firstRunMs, 6);
    expect(after.pipelines.fixedKernels).toBe(before.pipelines.fixedKernels);
    expect(after.pipelines.live).toBe(2);
    await other.destroy();
    expect(gpu.stats().pipelines.live).toBe(1);
    expect(gpu.stats().pipelines.held).toBe(mode === 'headlessgl' ? 1 : 0);
    // A device tensor input is read back (pipelines take host arrays) and gives the same result.
    const values = hosts(10);
    const x = gpu.upload(values.x);
    const fromDevice = await pipeline.run([x, values.weight, values.skip, values.fc]);
    assertClose(fromDevice[0] as Tensor, (await opByOp(values))[0] as Tensor, tolerance, 'logits from a device input');
    x.dispose();
    expect(gpu.stats().liveTensors).toBe(live);
    await pipeline.destroy();
    await expect(pipeline.run([values.x, values.weight, values.skip, values.fc])).rejects.toThrow(ShuffleArgumentError);
    await expect(pipeline.run([values.x, values.weight, values.skip, values.fc])).rejects.toThrow(/destroyed/);
  });

  it('replays only the launches its results depend on', async () => {
    const { x, weight } = hosts(2);
    const pipeline = await gpu.createPipeline(
      async (xd, wd) => {
        const unused = await gpu.relu(xd as DeviceTensor);
        unused.dispose();
        const conv = await gpu.conv2d(xd as DeviceTensor, wd as DeviceTensor, { groups: 2 });
        const y = await gpu.relu(conv);
        conv.dispose();
        return y;
      },
      [x, weight],
    );
    expect(pipeline.steps).toBe(2);
    const [y] = await pipeline.run([x, weight]);
    const conv = await gpu.conv2d(x, weight, { groups: 2 });
    const want = await gpu.relu(conv);
    assertClose(y as Tensor, await want.read(), tolerance, 'y');
    for (const t of [conv, want]) t.dispose();
    await pipeline.destroy();
  });

  it('refuses a chain that reads a tensor from outside it, and run inputs unlike the recorded ones', async () => {
    const { x, weight } = hosts(3);
    const outside = gpu.upload(weight);
    const live = gpu.stats().liveTensors;
    await expect(gpu.createPipeline(async (xd) => gpu.conv2d(xd as DeviceTensor, outside, { groups: 2 }), [x])).rejects.toThrow(
      /pass parameters as inputs/,
    );
    expect(gpu.stats().liveTensors).toBe(live);
    await expect(gpu.createPipeline('relu' as never, [x])).rejects.toThrow(ShuffleArgumentError);
    await expect(gpu.createPipeline(async () => outside, [x])).rejects.toThrow(/made outside it/);
    expect(outside.disposed).toBe(false);
    // An input returned as a result is the caller's too.
    const xd = gpu.upload(x);
    const identity = await gpu.createPipeline(async (d) => [await gpu.relu(d as DeviceTensor), d as DeviceTensor], [xd]);
    expect(xd.disposed).toBe(false);
    expect(identity.steps).toBe(1);
    await identity.destroy();
    // A device tensor given twice would feed one recorded value from two arguments.
    await expect(gpu.createPipeline(async (a, b) => gpu.add(a as DeviceTensor, b as DeviceTensor), [xd, xd])).rejects.toThrow(
      /inputs\[1\] expects a device tensor not already among the inputs/,
    );
    const twice = await gpu.createPipeline(async (a, b) => gpu.add(a as DeviceTensor, b as DeviceTensor), [x, x]);
    const [sum] = await twice.run([x, x]);
    const want = await gpu.add(xd, xd);
    assertClose(sum as Tensor, await want.read(), tolerance, 'a host tensor given twice');
    want.dispose();
    await twice.destroy();
    xd.dispose();
    // One recording at a time.
    let release = (): void => {};
    const recording = gpu.createPipeline(
      async (d) => {
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return gpu.relu(d as DeviceTensor);
      },
      [x],
    );
    await expect(gpu.createPipeline(async (d) => gpu.relu(d as DeviceTensor), [x])).rejects.toThrow(ShuffleArgumentError);
    release();
    await (await recording).destroy();
    const pipeline = await gpu.createPipeline(async (xd) => gpu.relu(xd as DeviceTensor), [x]);
    await expect(pipeline.run([x.toLayout('NCHW')])).rejects.toThrow(/shape \[2, 4, 6, 5\] in NHWC, as recorded/);
    await expect(pipeline.run([x, x])).rejects.toThrow(/an array of 1 tensors/);
    outside.dispose();
    await pipeline.destroy();
    expect(gpu.stats().liveTensors).toBe(live - 1);
  });
}
