/**
 * What the conformance suite does not see of the ops whose backward uses forward state, per mode: the
 * saved state as device tensors (max pooling's argmax, batch norm's statistics) agrees with the
 * reference's host form and either form feeds the backward; training updates device running statistics
 * in place without a readback (and host ones by writing their data), leaving nothing behind; an op in
 * flight keeps reading the values it started with; and the checks that need values a device tensor
 * keeps on the device (saved argmax, an inference running variance) behave as documented.
 */
import { assertClose, randomUniform, ShuffleArgumentError, Tensor, tensor } from '@shuffle/core';
import { type BatchNorm2dSaved, createGpuBackend, type GpuBackend, type GpuMode, type MaxPool2dOptions, reference } from '@shuffle/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGpuRuntime } from '../../packages/kernels/src/gpu/backend.js';
import { pin, replaceMemory, unpin } from '../../packages/kernels/src/gpu/device-tensor.js';
import { GPU_TOLERANCES } from './conformance.js';

export function savedStateTests(mode: GpuMode): void {
  let gpu: GpuBackend;
  beforeAll(async () => {
    gpu = await createGpuBackend({ mode });
  });
  afterAll(() => gpu.destroy());
  const tolerance = GPU_TOLERANCES[mode];

  describe('maxPool2d', () => {
    const options: MaxPool2dOptions = { kernelSize: 3, stride: 2, padding: 1 };

    it("saves the argmax as a device tensor holding the reference's indices, ties and NaN included, in both layouts", async () => {
      // Integers in [0, 4) make ties in most windows; the first maximum in row-major order must win.
      const base = randomUniform([2, 3, 7, 6], { seed: 1, low: 0, high: 4 });
      for (let i = 0; i < base.size; i++) base.data[i] = Math.floor(base.data[i] as number);
      base.data[17] = Number.NaN;
      base.data[40] = Number.NaN;
      base.data[41] = Number.NaN;
      for (const layout of ['NCHW', 'NHWC'] as const) {
        const host = base.toLayout(layout);
        const want = reference.maxPool2dWithSaved(host, options);
        const x = gpu.upload(host);
        const { y, saved } = await gpu.maxPool2dWithSaved(x, options);
        const argmax = await saved.argmax.read();
        expect(saved.argmax.shape).toEqual([2, 3, 4, 3]);
        expect(argmax.layout).toBe('NCHW');
        expect(Array.from(argmax.data)).toEqual(Array.from(want.saved.argmax));
        assertClose(await y.read(), want.y, { atol: 0, rtol: 0 }, 'y');
        for (const t of [x, y, saved.argmax]) t.dispose();
      }
    });

    it('takes a device argmax or the host Int32Array in the backward, with the same result', async () => {
      const host = randomUniform([1, 2, 6, 5], { seed: 2, low: -1, high: 1, layout: 'NHWC' });
      const { saved: hostSaved } = reference.maxPool2dWithSaved(host, options);
      const dy = randomUniform([1, 2, 3, 3], { seed: 3, low: -1, high: 1, layout: 'NHWC' });
      const want = reference.maxPool2dBackward(dy, host, options, hostSaved).dx;
      const { y, saved } = await gpu.maxPool2dWithSaved(host, options);
      const fromDevice = await gpu.maxPool2dBackward(dy, host, options, saved);
      const fromHost = await gpu.maxPool2dBackward(dy, host, options, hostSaved);
      assertClose(await fromDevice.dx.read(), want, tolerance, 'dx from the device argmax');
      assertClose(await fromHost.dx.read(), want, tolerance, 'dx from the host argmax');
      for (const t of [y, saved.argmax, fromDevice.dx, fromHost.dx]) t.dispose();
      expect(gpu.stats().liveTensors).toBe(0);
    });

    it('rejects a device argmax of another shape or layout', async () => {
      const x = randomUniform([1, 1, 4, 4], { seed: 4 });
      const dy = randomUniform([1, 1, 2, 2], { seed: 5 });
      const wrong = gpu.upload(randomUniform([1, 1, 2, 3], { seed: 6 }));
      const nhwc = gpu.upload(randomUniform([1, 1, 2, 2], { seed: 6, layout: 'NHWC' }));
      await expect(gpu.maxPool2dBackward(dy, x, { kernelSize: 2 }, { argmax: wrong })).rejects.toThrow(
        /^maxPool2dBackward: saved\.argmax expects the device tensor \[1, 1, 2, 2\] in NCHW from maxPool2dWithSaved, got DeviceTensor\(\[1, 1, 2, 3\], NCHW, float32\)$/,
      );
      await expect(gpu.maxPool2dBackward(dy, x, { kernelSize: 2 }, { argmax: nhwc })).rejects.toBeInstanceOf(ShuffleArgumentError);
      wrong.dispose();
      nhwc.dispose();
    });
  });

  describe('batchNorm2d', () => {
    const shape = [2, 3, 4, 5];
    const inputs = (layout: 'NCHW' | 'NHWC') => ({
      x: randomUniform(shape, { seed: 7, low: -2, high: 3, layout }),
      gamma: randomUniform([3], { seed: 8, low: -1, high: 1 }),
      beta: randomUniform([3], { seed: 9, low: -1, high: 1 }),
      runningMean: randomUniform([3], { seed: 10, low: -1, high: 1 }),
      runningVar: randomUniform([3], { seed: 11, low: 0.5, high: 2 }),
    });
    const training = { training: true, momentum: 0.3 };

    it('updates device running statistics in place in training, with no readback and nothing left behind', async () => {
      for (const layout of ['NCHW', 'NHWC'] as const) {
        const h = inputs(layout);
        const wantMean = h.runningMean.clone();
        const wantVar = h.runningVar.clone();
        const want = reference.batchNorm2dWithSaved(h.x, h.gamma, h.beta, wantMean, wantVar, training);
        const [x, gamma, beta, runningMean, runningVar] = [h.x, h.gamma, h.beta, h.runningMean, h.runningVar].map((t) => gpu.upload(t));
        const live = gpu.stats().liveTensors;
        const reads = gpu.stats().reads;
        const { y, saved } = await gpu.batchNorm2dWithSaved(x!, gamma!, beta!, runningMean!, runningVar!, training);
        expect(gpu.stats().reads).toBe(reads);
        expect(gpu.stats().liveTensors).toBe(live + 3);
        assertClose(await runningMean!.read(), wantMean, tolerance, 'runningMean');
        assertClose(await runningVar!.read(), wantVar, tolerance, 'runningVar');
        assertClose(await y.read(), want.y, tolerance, 'y');
        assertClose(await saved.mean.read(), new Tensor(Float32Array.from(want.saved.mean), [3]), tolerance, 'saved.mean');
        assertClose(await saved.invStd.read(), new Tensor(Float32Array.from(want.saved.invStd), [3]), tolerance, 'saved.invStd');
        // A second step moves them again, from the updated values.
        const second = await gpu.batchNorm2d(x!, gamma!, beta!, runningMean!, runningVar!, training);
        reference.batchNorm2d(h.x, h.gamma, h.beta, wantMean, wantVar, training);
        assertClose(await runningVar!.read(), wantVar, tolerance, 'runningVar after two steps');
        for (const t of [x, gamma, beta, runningMean, runningVar, y, saved.mean, saved.invStd, second]) t!.dispose();
        expect(gpu.stats().liveTensors).toBe(0);
        expect(gpu.stats().liveBytes).toBe(0);
      }
    });

    it("overwrites host running statistics' data in training, and leaves them alone in inference", async () => {
      const h = inputs('NCHW');
      const wantMean = h.runningMean.clone();
      const wantVar = h.runningVar.clone();
      reference.batchNorm2d(h.x, h.gamma, h.beta, wantMean, wantVar, training);
      const y = await gpu.batchNorm2d(h.x, h.gamma, h.beta, h.runningMean, h.runningVar, training);
      assertClose(h.runningMean, wantMean, tolerance, 'runningMean');
      assertClose(h.runningVar, wantVar, tolerance, 'runningVar');
      const before = [h.runningMean.clone(), h.runningVar.clone()];
      const inference = await gpu.batchNorm2d(h.x, h.gamma, h.beta, h.runningMean, h.runningVar);
      expect(Array.from(h.runningMean.data)).toEqual(Array.from(before[0]!.data));
      expect(Array.from(h.runningVar.data)).toEqual(Array.from(before[1]!.data));
      y.dispose();
      inference.dispose();
    });

    it('an op started on a running statistic before a training step reads the values it started with', async () => {
      const h = inputs('NCHW');
      const old = h.runningMean.clone();
      const runningMean = gpu.upload(h.runningMean);
      const runningVar = gpu.upload(h.runningVar);
      const doubled = gpu.add(runningMean, runningMean);
      const y = await gpu.batchNorm2d(h.x, h.gamma, h.beta, runningMean, runningVar, training);
      const sum = await doubled;
      assertClose(await sum.read(), reference.add(old, old), { atol: 0, rtol: 0 }, 'the sum of the old values');
      expect(Array.from((await runningMean.read()).data)).not.toEqual(Array.from(old.data));
      for (const t of [runningMean, runningVar, y, sum]) t.dispose();
      expect(gpu.stats().liveTensors).toBe(0);
      expect(gpu.stats().liveBytes).toBe(0);
    });

    it('replaceMemory frees the memory it replaces only once the ops that pinned it are done', async () => {
      const runtime = await openGpuRuntime(mode);
      try {
        const target = runtime.upload(tensor([1, 2, 3], [3]));
        const source = runtime.upload(tensor([4, 5, 6], [3]));
        const old = pin(target, 'test');
        replaceMemory(target, source);
        expect(source.disposed).toBe(true);
        expect(Array.from((await target.read()).data)).toEqual([4, 5, 6]);
        expect(Array.from(await old.read())).toEqual([1, 2, 3]);
        unpin(target);
        await expect(old.read()).rejects.toThrow(/device memory used after it was freed/);
        expect(runtime.stats().liveTensors).toBe(1);
        target.dispose();
        expect(runtime.stats().liveBytes).toBe(0);
      } finally {
        await runtime.destroy();
      }
    });

    it('checks a device running variance in inference once per value, with the host message', async () => {
      const h = inputs('NCHW');
      const negative = gpu.upload(tensor([1, -0.5, 1], [3]));
      await expect(gpu.batchNorm2d(h.x, h.gamma, h.beta, h.runningMean, negative)).rejects.toThrow(
        /^batchNorm2d: runningVar\[1\] expects a variance >= 0, got -0\.5$/,
      );
      const runningVar = gpu.upload(h.runningVar);
      const first = await gpu.batchNorm2d(h.x, h.gamma, h.beta, h.runningMean, runningVar);
      const reads = gpu.stats().reads;
      const second = await gpu.batchNorm2d(h.x, h.gamma, h.beta, h.runningMean, runningVar);
      expect(gpu.stats().reads).toBe(reads);
      assertClose(await second.read(), reference.batchNorm2d(h.x, h.gamma, h.beta, h.runningMean, h.runningVar), tolerance, 'y');
      for (const t of [negative, runningVar, first, second]) t.dispose();
    });

    it('takes device or host saved statistics in the backward, in both modes, and rejects device ones of another shape', async () => {
      for (const options of [training, {}]) {
        const h = inputs('NHWC');
        const want = reference.batchNorm2dWithSaved(h.x, h.gamma, h.beta, h.runningMean.clone(), h.runningVar.clone(), options);
        const dy = randomUniform(shape, { seed: 12, low: -1, high: 1, layout: 'NHWC' });
        const grads = reference.batchNorm2dBackward(dy, h.x, h.gamma, want.saved, options);
        const { y, saved } = await gpu.batchNorm2dWithSaved(h.x, h.gamma, h.beta, h.runningMean.clone(), h.runningVar.clone(), options);
        const hostSaved: BatchNorm2dSaved = {
          mean: Float64Array.from((await saved.mean.read()).data),
          invStd: Float64Array.from((await saved.invStd.read()).data),
        };
        for (const form of [saved, hostSaved]) {
          const { dx, dgamma, dbeta } = await gpu.batchNorm2dBackward(dy, h.x, h.gamma, form, options);
          assertClose(await dx.read(), grads.dx, tolerance, 'dx');
          assertClose(await dgamma.read(), grads.dgamma, tolerance, 'dgamma');
          assertClose(await dbeta.read(), grads.dbeta, tolerance, 'dbeta');
          for (const t of [dx, dgamma, dbeta]) t.dispose();
        }
        const short = gpu.upload(tensor([1, 2], [2]));
        await expect(gpu.batchNorm2dBackward(dy, h.x, h.gamma, { mean: saved.mean, invStd: short }, options)).rejects.toThrow(
          /^batchNorm2dBackward: saved\.invStd expects a device tensor \[3\] \(one per channel, from batchNorm2dWithSaved\), got DeviceTensor\(\[2\], NCHW, float32\)$/,
        );
        for (const t of [y, saved.mean, saved.invStd, short]) t.dispose();
      }
      expect(gpu.stats().liveTensors).toBe(0);
    });
  });
}
