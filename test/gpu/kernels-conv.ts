/**
 * What the conformance suite's small random calls do not reach in the gpu convolutions (conv2d,
 * depthwiseConv2d, linear): gradient reductions long enough to be cut into chunks and summed in one or
 * more further passes, empty batches and feature sets, a weight stored in another layout than x, and a
 * ShuffleNet shape. Each result is compared with the float64 reference.
 */
import { assertClose, type Layout, randomUniform, type Tensor, type Tolerance, tensor } from '@shuffle/core';
import { createGpuBackend, type DeviceTensor, type GpuBackend, type GpuMode, reference } from '@shuffle/kernels';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { planChunks, TERMS_PER_THREAD } from '../../packages/kernels/src/conv2d/gpu.js';
import { describeGpuMode } from './support.js';

const random = (shape: number[], seed: number, layout: Layout = 'NCHW') => randomUniform(shape, { seed, low: -1, high: 1, layout });
const as64 = (t: Tensor) => t.astype('float64');

/** Reads a device result (and disposes it). */
async function read(t: DeviceTensor | undefined): Promise<Tensor> {
  if (!t) throw new Error('missing result');
  const host = await t.read();
  t.dispose();
  return host;
}

export function convKernelTests(mode: GpuMode): Promise<void> {
  return describeGpuMode(mode, () => {
    let backend: GpuBackend | undefined;
    const gpu = () => backend as GpuBackend;
    beforeAll(async () => {
      backend = await createGpuBackend({ mode });
    });
    afterAll(async () => {
      await backend?.destroy();
    });
    /** float32 sums of up to a few hundred thousand terms of size 1 against float64. */
    const tolerance: Tolerance = { atol: 2e-3, rtol: 2e-4 };

    it('cuts long gradient reductions into chunks and sums them in one or two further passes', async () => {
      // 60 rows of 17: two chunks of 30 rows and one summing pass.
      expect(planChunks(24, 60, 17)).toEqual({ rowsPerChunk: 30, chunks: 2 });
      // 270,000 rows of one: 528 chunks of 512 rows, summed to 2 and then to 1.
      expect(planChunks(1, 270_000, 1)).toEqual({ rowsPerChunk: TERMS_PER_THREAD, chunks: 528 });
      const cases = [
        { x: random([3, 6, 20, 17], 1, 'NHWC'), weight: random([6, 2, 3, 3], 2), bias: random([6], 3), options: { padding: 1, groups: 3 } },
        { x: random([1, 1, 270_000, 1], 4), weight: random([1, 1, 1, 1], 5), bias: random([1], 6), options: {} },
      ];
      for (const { x, weight, bias, options } of cases) {
        const live = gpu().stats().liveTensors;
        const dy = random([...reference.conv2d(x, weight, { ...options, bias }).shape], 7, x.layout);
        const want = reference.conv2dBackward(as64(dy), as64(x), as64(weight), { ...options, bias: as64(bias) });
        const got = await gpu().conv2dBackward(dy, x, weight, { ...options, bias });
        assertClose(await read(got.dx), want.dx, tolerance, 'dx');
        assertClose(await read(got.dweight), want.dweight, tolerance, 'dweight');
        assertClose(await read(got.dbias), want.dbias as Tensor, tolerance, 'dbias');
        expect(gpu().stats().liveTensors, 'intermediates disposed').toBe(live);
      }
      // linear's weight and bias gradients sum over the batch: 1,100 samples make 3 chunks.
      const x = random([1100, 5], 8);
      const weight = random([3, 5], 9);
      const bias = random([3], 10);
      const dy = random([1100, 3], 11);
      const want = reference.linearBackward(as64(dy), as64(x), as64(weight), { bias: as64(bias) });
      const got = await gpu().linearBackward(dy, x, weight, { bias });
      assertClose(await read(got.dx), want.dx, tolerance, 'linear dx');
      assertClose(await read(got.dweight), want.dweight, tolerance, 'linear dweight');
      assertClose(await read(got.dbias), want.dbias as Tensor, tolerance, 'linear dbias');
    });

    it('reads a weight stored in another layout than x, and returns its gradient in the weight layout', async () => {
      for (const [xLayout, weightLayout] of [
        ['NCHW', 'NHWC'],
        ['NHWC', 'NCHW'],
      ] as const) {
        const x = random([2, 4, 5, 6], 12, xLayout);
        const weight = random([6, 2, 3, 2], 13, weightLayout);
        const options = { stride: [2, 1] as [number, number], padding: [1, 0, 0, 1] as [number, number, number, number], groups: 2 };
        const y = await read(await gpu().conv2d(x, weight, options));
        expect(y.layout).toBe(xLayout);
        assertClose(y, reference.conv2d(as64(x), as64(weight), options), tolerance, 'conv2d');
        const dy = random([...y.shape], 14, xLayout);
        const want = reference.conv2dBackward(as64(dy), as64(x), as64(weight), options);
        const got = await gpu().conv2dBackward(dy, x, weight, options);
        assertClose(await read(got.dx), want.dx, tolerance, 'dx');
        const dweight = await read(got.dweight);
        expect(dweight.layout).toBe(weightLayout);
        assertClose(dweight, want.dweight, tolerance, 'dweight');

        const depthwise = random([8, 1, 3, 3], 15, weightLayout);
        assertClose(
          await read(await gpu().depthwiseConv2d(x, depthwise, { padding: 'same' })),
          reference.depthwiseConv2d(as64(x), as64(depthwise), { padding: 'same' }),
          tolerance,
          'depthwiseConv2d',
        );
      }
    });

    it('returns empty sums for an empty batch, and linear with no input or output features', async () => {
      const x = random([0, 6, 5, 5], 16, 'NHWC');
      const weight = random([6, 2, 3, 3], 17);
      const bias = random([6], 18);
      const y = await read(await gpu().conv2d(x, weight, { groups: 3, padding: 1, bias }));
      expect(y.shape).toEqual([0, 6, 5, 5]);
      const conv = await gpu().conv2dBackward(random([0, 6, 5, 5], 19, 'NHWC'), x, weight, { groups: 3, padding: 1, bias });
      expect((await read(conv.dx)).shape).toEqual([0, 6, 5, 5]);
      expect(Array.from((await read(conv.dweight)).data)).toEqual(new Array(6 * 2 * 9).fill(0));
      expect(Array.from((await read(conv.dbias)).data)).toEqual([0, 0, 0, 0, 0, 0]);

      const [dyDepthwise, xDepthwise, weightDepthwise] = [random([0, 12, 5, 5], 20), random([0, 6, 5, 5], 21), random([12, 1, 3, 3], 22)];
      const depthwise = await gpu().depthwiseConv2dBackward(dyDepthwise, xDepthwise, weightDepthwise, { padding: 1 });
      expect((await read(depthwise.dx)).shape).toEqual([0, 6, 5, 5]);
      expect(Array.from((await read(depthwise.dweight)).data)).toEqual(new Array(12 * 9).fill(0));

      const linear = await gpu().linearBackward(random([0, 5], 23), random([0, 6], 24), random([5, 6], 25), { bias: random([5], 26) });
      expect((await read(linear.dx)).shape).toEqual([0, 6]);
      expect(Array.from((await read(linear.dweight)).data)).toEqual(new Array(30).fill(0));
      expect(Array.from((await read(linear.dbias)).data)).toEqual(new Array(5).fill(0));

      // in = 0: y = b, and dx is empty; out = 0: y is empty, and dx = 0.
      const noFeatures = random([3, 0], 27);
      const emptyWeight = random([2, 0], 28);
      const biasOnly = tensor([0.5, -2], [2]);
      const y2 = await read(await gpu().linear(noFeatures, emptyWeight, { bias: biasOnly }));
      expect(Array.from(y2.data)).toEqual([0.5, -2, 0.5, -2, 0.5, -2]);
      expect(Array.from((await read(await gpu().linear(noFeatures, emptyWeight))).data)).toEqual(new Array(6).fill(0));
      const noOutputs = await gpu().linearBackward(random([3, 0], 30), random([3, 4], 31), random([0, 4], 32));
      expect(Array.from((await read(noOutputs.dx)).data)).toEqual(new Array(12).fill(0));
      expect((await read(noOutputs.dweight)).shape).toEqual([0, 4]);
      expect(gpu().stats().liveTensors).toBe(0);
    });

    it('computes the ShuffleNet grouped 1x1 conv (240 -> 60, g = 3, 28x28) and its gradients', async () => {
      const x = random([2, 240, 28, 28], 33, 'NHWC');
      const weight = random([60, 80, 1, 1], 34);
      const bias = random([60], 35);
      const options = { groups: 3, bias };
      const y = await read(await gpu().conv2d(x, weight, options));
      assertClose(y, reference.conv2d(as64(x), as64(weight), { groups: 3, bias: as64(bias) }), tolerance, 'y');
      const dy = random([2, 60, 28, 28], 36, 'NHWC');
      const want = reference.conv2dBackward(as64(dy), as64(x), as64(weight), { groups: 3, bias: as64(bias) });
      const got = await gpu().conv2dBackward(dy, x, weight, options);
      assertClose(await read(got.dx), want.dx, tolerance, 'dx');
      assertClose(await read(got.dweight), want.dweight, tolerance, 'dweight');
      assertClose(await read(got.dbias), want.dbias as Tensor, tolerance, 'dbias');
    });
  });
}
