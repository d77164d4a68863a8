/**
 * The gpu backend's own promises, per mode: device tensors chain without host round trips, kernels
 * compile once per shape, host tensors are accepted and freed, NaN and infinities pass as in the
 * reference, and what gpu.js would get silently wrong (a 4-D output grid, a loop capped at 1000, an
 * index past float32's exact integers, a disposed or foreign tensor) is refused with a clear message.
 */
import { compareTensors, randomUniform, ShuffleArgumentError, Tensor, tensor, zeros } from '@shuffle/core';
import { createGpuBackend, type GpuBackend, type GpuMode, GpuUnavailableError, reference } from '@shuffle/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GpuRuntime, openGpuRuntime } from '../../packages/kernels/src/gpu/backend.js';
import { COPY } from '../../packages/kernels/src/gpu/context.js';
import { defineKernel, type KernelThis } from '../../packages/kernels/src/gpu/kernel-cache.js';
import { checkFits, limitsFor } from '../../packages/kernels/src/gpu/limits.js';

const exact = { atol: 0, rtol: 0 };

export function infrastructureTests(mode: GpuMode, gpu: () => GpuBackend): void {
  describe('device tensors and kernels', () => {
    it('a chain of ops uploads once, stays on the device and reads once, in both layouts', async () => {
      for (const layout of ['NCHW', 'NHWC'] as const) {
        const host = randomUniform([2, 6, 5, 3], { seed: 3, low: -1, high: 1, layout });
        const before = gpu().stats();
        const x = gpu().upload(host);
        const y = await gpu().relu(x);
        const z = await gpu().add(y, x);
        const s = await gpu().channelShuffle(z, 3);
        const pooled = await gpu().globalAvgPool2d(s);
        const got = await pooled.read();
        const after = gpu().stats();
        const want = reference.globalAvgPool2d(reference.channelShuffle(reference.add(reference.relu(host), host), 3));
        expect(got.layout).toBe(layout);
        expect(compare(got, want, { atol: 1e-6, rtol: 1e-5 })).toBe(true);
        expect(after.uploads - before.uploads).toBe(1);
        expect(after.reads - before.reads).toBe(1);
        for (const t of [x, y, z, s, pooled]) t.dispose();
        expect(gpu().stats().liveTensors).toBe(before.liveTensors);
      }
    });

    it('compiles a kernel once per shape and options, and reuses it', async () => {
      const x = gpu().upload(randomUniform([1, 3, 4, 7], { seed: 4 }));
      const first = await gpu().channelShuffle(x, 3);
      const kernels = gpu().stats().kernels;
      const runs = gpu().stats().runs;
      const again = await gpu().channelShuffle(x, 3);
      expect(gpu().stats().kernels).toBe(kernels);
      expect(gpu().stats().runs).toBe(runs + 1);
      expect(compare(await again.read(), await first.read(), exact)).toBe(true);
      const inverse = await gpu().channelShuffle(x, 3, { inverse: true });
      expect(gpu().stats().kernels).toBe(kernels + 1);
      const stat = gpu()
        .stats()
        .byKernel.find((k) => k.name === 'channelShuffle' && k.key.includes('inverse=1'));
      expect(stat && stat.compileMs > 0 && stat.runs === 1).toBe(true);
      for (const t of [x, first, again, inverse]) t.dispose();
    });

    it("feeds a kernel its own previous output, and one tensor to both of a kernel's arguments", async () => {
      const host = tensor([-2, -1, 0, 1, 2, 3], [1, 6, 1, 1]);
      const x = gpu().upload(host);
      const once = await gpu().relu(x);
      const twice = await gpu().relu(once);
      const doubled = await gpu().add(twice, twice);
      expect(Array.from((await doubled.read()).data)).toEqual([0, 0, 0, 2, 4, 6]);
      expect(Array.from((await once.read()).data)).toEqual([0, 0, 0, 1, 2, 3]);
      for (const t of [x, once, twice, doubled]) t.dispose();
    });

    it('takes host tensors as arguments, uploading them for the call and freeing them after', async () => {
      const a = randomUniform([2, 3, 2, 2], { seed: 5, layout: 'NHWC' });
      const b = randomUniform([2, 3, 2, 2], { seed: 6, layout: 'NHWC' });
      const live = gpu().stats().liveTensors;
      const aOnDevice = gpu().upload(a);
      const sum = await gpu().add(aOnDevice, b);
      expect(gpu().stats().liveTensors).toBe(live + 2);
      expect(compare(await sum.read(), reference.add(a, b), exact)).toBe(true);
      const { da, db } = await gpu().addBackward(b, a, b);
      expect(compare(await db.read(), b, exact)).toBe(true);
      for (const t of [sum, da, db]) t.dispose();
      const pieces = await gpu().split(a, [1, 2]);
      expect(compare(await pieces[1]!.read(), reference.split(a, [1, 2])[1]!, exact)).toBe(true);
      for (const t of [aOnDevice, ...pieces]) t.dispose();
      expect(gpu().stats().liveTensors).toBe(live);
    });

    it('passes NaN and infinities as the reference does', async () => {
      const values = [Number.NaN, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, -0, 0, 1.5, -1.5, 3];
      const x = tensor(values, [1, 4, 1, 2]);
      const other = tensor([1, 1, Number.NEGATIVE_INFINITY, 2, Number.NaN, -1.5, 1, 0], [1, 4, 1, 2]);
      const d = gpu().upload(x);
      const checks: [string, Promise<Tensor>, Tensor][] = [
        ['relu', gpu().relu(d).then(readAndDispose), reference.relu(x)],
        [
          'reluBackward',
          gpu()
            .reluBackward(other, d)
            .then(({ dx }) => readAndDispose(dx)),
          reference.reluBackward(other, x).dx,
        ],
        ['add', gpu().add(d, other).then(readAndDispose), reference.add(x, other)],
        ['channelShuffle', gpu().channelShuffle(d, 2).then(readAndDispose), reference.channelShuffle(x, 2)],
        ['globalAvgPool2d', gpu().globalAvgPool2d(d).then(readAndDispose), reference.globalAvgPool2d(x)],
        ['flatten', gpu().flatten(d).then(readAndDispose), reference.flatten(x)],
      ];
      for (const [name, got, want] of checks) expect(Array.from((await got).data), name).toEqual(Array.from(want.data));
      d.dispose();
    });

    it('an op started before its input is disposed still reads that input', async () => {
      const host = tensor([-1, 2, -3, 4], [1, 4, 1, 1]);
      const x = gpu().upload(host);
      const pending = gpu().relu(x);
      x.dispose();
      const y = await pending;
      expect(Array.from((await y.read()).data)).toEqual([0, 2, 0, 4]);
      y.dispose();
      await expect(gpu().relu(x)).rejects.toThrow(/expects a live device tensor/);
    });

    it('handles zero-element tensors without running a kernel', async () => {
      const empty = gpu().upload(zeros([0, 3, 2, 2]));
      const runs = gpu().stats().runs;
      const y = await gpu().relu(empty);
      expect(y.shape).toEqual([0, 3, 2, 2]);
      expect((await y.read()).size).toBe(0);
      expect(gpu().stats().runs).toBe(runs);
      empty.dispose();
      y.dispose();
    });

    it('computes exact indices on a tensor of 2 million elements with odd sizes', async () => {
      const host = randomUniform([1, 600, 61, 59], { seed: 7, layout: 'NHWC' });
      const x = gpu().upload(host);
      const y = await gpu().channelShuffle(x, 4);
      expect(compare(await y.read(), reference.channelShuffle(host, 4), exact)).toBe(true);
      x.dispose();
      y.dispose();
    });
  });

  describe('errors', () => {
    it('rejects a disposed device tensor, and reading one', async () => {
      const x = gpu().upload(randomUniform([1, 2, 2, 2], { seed: 8 }));
      x.dispose();
      x.dispose(); // idempotent
      await expect(gpu().relu(x)).rejects.toThrow(
        /^relu: x expects a live device tensor, got DeviceTensor\(\[1, 2, 2, 2\], NCHW, float32, disposed\)$/,
      );
      await expect(gpu().concat([randomUniform([1, 1, 2, 2], { seed: 9 }), x])).rejects.toThrow(
        /^concat: xs\[1\] expects a live device tensor/,
      );
      await expect(x.read()).rejects.toThrow(/was disposed/);
    });

    it("rejects another backend's device tensor", async () => {
      const other = await createGpuBackend({ mode });
      try {
        const x = other.upload(randomUniform([1, 2, 2, 2], { seed: 10 }));
        await expect(gpu().relu(x)).rejects.toThrow(
          new RegExp(`^relu: x expects a device tensor of this backend \\(gpu-${mode}\\), got one from gpu-${mode}$`),
        );
      } finally {
        await other.destroy();
      }
    });

    it('a synchronous backend refuses a device tensor instead of reading data it does not have', async () => {
      const x = gpu().upload(randomUniform([1, 2, 2, 2], { seed: 11 }));
      expect(() => reference.relu(x as never)).toThrow(ShuffleArgumentError);
      expect(() => reference.relu(x as never)).toThrow(/^relu: x expects a Tensor, got /);
      x.dispose();
    });

    it('rejects the same bad arguments with the same message as the reference, before any device work', async () => {
      const runs = gpu().stats().runs;
      const x = randomUniform([1, 6, 2, 2], { seed: 12 });
      await expect(gpu().channelShuffle(x, 4)).rejects.toThrow(
        /^channelShuffle: groups expects a divisor of the channel count \(x has 6 channels\), got 4$/,
      );
      const onDevice = gpu().upload(x);
      await expect(gpu().add(onDevice, randomUniform([1, 6, 2, 3], { seed: 13 }))).rejects.toThrow(
        /^add: b expects shape \[1, 6, 2, 2\] \(a's shape; add does not broadcast\), got \[1, 6, 2, 3\]$/,
      );
      onDevice.dispose();
      expect(() => gpu().upload([1, 2] as never)).toThrow(/^upload: tensor expects a host Tensor, got \[1, 2\]$/);
      expect(gpu().stats().runs).toBe(runs);
    });

    it('names an op without a gpu kernel when it is called', async () => {
      const names = Object.keys(reference).filter((name) => name !== 'name');
      const unsupported = names.find((name) => !gpu().supports(name));
      if (unsupported === undefined) return; // every op has its kernels
      const call = (gpu() as unknown as Record<string, () => Promise<unknown>>)[unsupported]!;
      await expect(call()).rejects.toThrow(new RegExp(`^${unsupported}: the gpu backend has no kernel for it yet`));
    });

    it('refuses a tensor past the largest this mode indexes exactly, naming the bound', () => {
      const { maxElements, why } = gpu().limits;
      if (mode === 'cpu') {
        expect(maxElements).toBe(Number.POSITIVE_INFINITY);
        return;
      }
      expect(maxElements).toBe(2 ** 24);
      expect(why).toMatch(/float32/);
      const tooBig = new Tensor(new Float32Array(maxElements + 1), [maxElements + 1]);
      expect(() => gpu().upload(tooBig)).toThrow(
        /^upload: tensor expects at most 16777216 elements on this gpu backend \(.*float32.*\); split the batch, got shape \[16777217\]/,
      );
    });

    it('refuses an unknown mode, and an unavailable one with how to get it', async () => {
      await expect(createGpuBackend({ mode: 'gpu' as GpuMode })).rejects.toThrow(
        /^createGpuBackend: options expects \{ mode \} with mode one of 'cpu', 'webasm', 'headlessgl', 'webgpu', got gpu$/,
      );
      // headlessgl and webgpu cannot share a process: the second is refused before it touches Mesa.
      const rival = mode === 'headlessgl' ? 'webgpu' : mode === 'webgpu' ? 'headlessgl' : undefined;
      if (rival) {
        await expect(createGpuBackend({ mode: rival })).rejects.toBeInstanceOf(GpuUnavailableError);
        await expect(createGpuBackend({ mode: rival })).rejects.toThrow(/cannot share a process.*run them in separate processes/);
      }
    });

    it('takes the smaller of the float32 index bound and the device limits', () => {
      expect(limitsFor('webgpu', { maxBufferBytes: 128 * 2 ** 20 })).toEqual({
        maxElements: 2 ** 24,
        why: expect.stringMatching(/float32/),
      });
      expect(limitsFor('webgpu', { maxBufferBytes: 2 ** 20 })).toEqual({
        maxElements: 2 ** 18,
        why: 'the device allows 1048576 bytes per storage buffer (4 per float32)',
      });
      expect(limitsFor('headlessgl', { maxTextureSize: 2048 })).toEqual({
        maxElements: 2048 * 2048,
        why: "the device's largest texture is 2048x2048 (one value per texel)",
      });
      expect(() => checkFits('conv2d', 'output', [64, 24, 112, 112], limitsFor('headlessgl', { maxTextureSize: 2048 }))).toThrow(
        /^conv2d: output expects at most 4194304 elements on this gpu backend \(the device's largest texture is 2048x2048 \(one value per texel\)\); split the batch, got shape \[64, 24, 112, 112\] \(19267584 elements\)$/,
      );
    });

    it('refuses every call after destroy', async () => {
      const doomed = await createGpuBackend({ mode });
      const x = doomed.upload(randomUniform([1, 2, 2, 2], { seed: 14 }));
      await doomed.destroy();
      expect(x.disposed).toBe(true);
      expect(doomed.stats().liveTensors).toBe(0);
      await expect(doomed.relu(x)).rejects.toThrow(/^relu: the gpu backend gpu-\w+ was destroyed$/);
      expect(() => doomed.upload(randomUniform([1], { seed: 15 }))).toThrow(/was destroyed/);
    });
  });

  describe('what gpu.js would get silently wrong', () => {
    let runtime: GpuRuntime;
    beforeAll(async () => {
      runtime = await openGpuRuntime(mode);
    });
    afterAll(() => runtime.destroy());

    it('refuses an output grid of more than 3 dimensions', async () => {
      const x = runtime.upload(randomUniform([16], { seed: 16 }));
      await expect(runtime.launch({ op: 'test', kernel: COPY, inputs: [x], output: { shape: [16] }, grid: [2, 2, 2, 2] })).rejects.toThrow(
        /^gpu kernel 'copy': an output grid has 1 to 3 dimensions \(gpu.js silently truncates a 4-D output/,
      );
      x.dispose();
    });

    it('reads a 3-D grid output as the flat tensor it is', async () => {
      const INDEX3 = defineKernel('index3', function index3(this: KernelThis<'w' | 'h'>): number {
        return this.thread.x + this.constants.w * (this.thread.y + this.constants.h * this.thread.z);
      });
      const y = await runtime.launch({
        op: 'test',
        kernel: INDEX3,
        inputs: [],
        output: { shape: [5, 4, 3] },
        grid: [3, 4, 5],
        constants: { w: 3, h: 4 },
      });
      const copied = await runtime.launch({ op: 'test', kernel: COPY, inputs: [y], output: { shape: [60] } });
      const expected = Array.from({ length: 60 }, (_, i) => i);
      expect(Array.from((await y.read()).data)).toEqual(expected);
      expect(Array.from((await copied.read()).data)).toEqual(expected);
      y.dispose();
      copied.dispose();
    });

    it('runs every iteration of a loop gpu.js cannot prove bounded by constants (it would stop at 1000)', async () => {
      // `n` is computed from a constant, so gpu.js treats the loop as unbounded and caps it at its
      // loopMaxIterations (1000 by default, on every mode); the cache raises the cap to the sizes involved.
      const SUM = defineKernel('sumFirst', function sumFirst(this: KernelThis<'half'>, x: any): number {
        let sum = 0;
        const n = this.constants.half * 2;
        for (let j = 0; j < n; j++) sum += x[j];
        return sum;
      });
      const ones = runtime.upload(new Tensor(new Float32Array(2500).fill(1), [2500]));
      const y = await runtime.launch({ op: 'test', kernel: SUM, inputs: [ones], output: { shape: [2] }, constants: { half: 1200 } });
      expect(Array.from((await y.read()).data)).toEqual([2400, 2400]);
      ones.dispose();
      y.dispose();
    });

    it('refuses a constant that is not a finite number, and one kernel name for two functions', async () => {
      const x = runtime.upload(randomUniform([4], { seed: 17 }));
      await expect(
        runtime.launch({ op: 'test', kernel: COPY, inputs: [x], output: { shape: [4] }, constants: { scale: Number.NaN } }),
      ).rejects.toThrow(/^gpu kernel 'copy': constant scale must be a finite number, got NaN$/);
      await runtime.launch({ op: 'test', kernel: COPY, inputs: [x], output: { shape: [4] } }).then((t) => t.dispose());
      const impostor = defineKernel('copy', function notCopy(this: KernelThis, v: any): number {
        return v[this.thread.x] + 1;
      });
      await expect(runtime.launch({ op: 'test', kernel: impostor, inputs: [x], output: { shape: [4] } })).rejects.toThrow(
        /^gpu kernel name 'copy' is used by two different kernel functions$/,
      );
      x.dispose();
    });
  });
}

async function readAndDispose(t: { read(): Promise<Tensor>; dispose(): void }): Promise<Tensor> {
  const host = await t.read();
  t.dispose();
  return host;
}

function compare(a: Tensor, b: Tensor, tolerance: { atol: number; rtol: number }): boolean {
  return compareTensors(a, b, tolerance).ok;
}
