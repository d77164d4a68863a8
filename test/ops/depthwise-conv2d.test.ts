import { assertClose, type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { conv2d, conv2dBackward, type DepthwiseConv2dOptions, depthwiseConv2d, depthwiseConv2dBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Sample } from '../conformance/spec.js';
import { edgeFrequencies, type WindowOptions, windowEdges, windowSamples } from '../conformance/specs/conv2d.js';
import depthwiseSpec, { type DepthwiseSampleOptions } from '../conformance/specs/depthwise-conv2d.js';

const layouts = fc.constantFrom<Layout>('NCHW', 'NHWC');
const seeds = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const tight = { atol: 1e-6, rtol: 1e-5 };
const random = (shape: readonly number[], seed: number, layout: Layout = 'NCHW') =>
  randomUniform(shape, { seed, low: -1, high: 1, layout: shape.length === 4 ? layout : 'NCHW' });

interface Call {
  x: Tensor;
  weight: Tensor;
  bias: Tensor | undefined;
  window: WindowOptions;
}

const calls = (multiplier: fc.Arbitrary<number>) =>
  fc
    .record({
      window: windowSamples(),
      batch: fc.integer({ min: 1, max: 3 }),
      channels: fc.integer({ min: 1, max: 5 }),
      multiplier,
      bias: fc.boolean(),
      layout: layouts,
      weightLayout: layouts,
      seed: seeds,
    })
    .map(
      ({ window: { kernel, input, ...window }, batch, channels, multiplier, bias, layout, weightLayout, seed }): Call => ({
        x: random([batch, channels, ...input], seed, layout),
        weight: random([channels * multiplier, 1, ...kernel], seed + 1, weightLayout),
        bias: bias ? random([channels * multiplier], seed + 2) : undefined,
        window,
      }),
    );

describe('depthwiseConv2d', () => {
  // conv2d with groups = C splits x into C one-channel blocks and the C*m outputs into C blocks of m, so output
  // o = c*m + k reads channel c = floor(o / m) through the 1-channel kernel w[o, 0]: the depthwise definition.
  it.each([
    ['1', fc.constant(1)],
    ['> 1', fc.integer({ min: 2, max: 3 })],
  ])('equals conv2d with groups = C, multiplier %s (forward and backward)', (_m, multiplier) => {
    fc.assert(
      fc.property(calls(multiplier), seeds, ({ x, weight, bias, window }, seed) => {
        const channels = x.shape[1] as number;
        const options: DepthwiseConv2dOptions = { ...window, ...(bias ? { bias } : {}) };
        const grouped = { ...options, groups: channels };
        const y = depthwiseConv2d(x, weight, options);
        assertClose(y, conv2d(x, weight, grouped), tight, 'y');
        expect(y.layout).toBe(x.layout);
        const dy = random(y.shape, seed, y.layout);
        const got = depthwiseConv2dBackward(dy, x, weight, options);
        const want = conv2dBackward(dy, x, weight, grouped);
        assertClose(got.dx, want.dx, tight, 'dx');
        assertClose(got.dweight, want.dweight, tight, 'dweight');
        expect(got.dweight.layout).toBe(weight.layout);
        if (bias) assertClose(got.dbias!, want.dbias!, tight, 'dbias');
        else expect(got.dbias).toBeUndefined();
      }),
      { numRuns: 60 },
    );
  });

  it("'same' padding keeps H and W at stride 1 and gives ceil(H / s), ceil(W / s) at stride s", () => {
    fc.assert(
      fc.property(
        fc.record({
          height: fc.integer({ min: 1, max: 9 }),
          width: fc.integer({ min: 1, max: 9 }),
          multiplier: fc.integer({ min: 1, max: 3 }),
          kernel: fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 })),
          stride: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })),
          dilation: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
          seed: seeds,
        }),
        ({ height, width, multiplier, kernel, stride, dilation, seed }) => {
          const x = random([2, 3, height, width], seed);
          const weight = random([3 * multiplier, 1, ...kernel], seed + 1);
          expect(depthwiseConv2d(x, weight, { padding: 'same', dilation }).shape).toEqual([2, 3 * multiplier, height, width]);
          expect(depthwiseConv2d(x, weight, { padding: 'same', dilation, stride }).shape).toEqual([
            2,
            3 * multiplier,
            Math.ceil(height / stride[0]),
            Math.ceil(width / stride[1]),
          ]);
        },
      ),
    );
  });
});

describe('the depthwiseConv2d conformance samples', () => {
  it('reach every edge often enough that 30 random runs all but surely meet each one', () => {
    const frequencies = edgeFrequencies(depthwiseSpec.samples as fc.Arbitrary<Sample<DepthwiseSampleOptions>>, (s) => {
      const [batch, channels, height, width] = s.inputs.x!.shape as [number, number, number, number];
      const [outChannels, , kernelHeight, kernelWidth] = s.inputs.weight!.shape as [number, number, number, number];
      return {
        ...windowEdges({ ...s.options, kernel: [kernelHeight, kernelWidth], input: [height, width] }),
        'batch > 1': batch > 1,
        'one channel': channels === 1,
        'channels not a multiple of 4': channels % 4 !== 0 && outChannels % 4 !== 0,
        'multiplier 1': outChannels === channels,
        'multiplier > 1': outChannels > channels,
        'with bias': s.options.bias,
        'without bias': !s.options.bias,
      };
    });
    // 30 runs miss an edge of frequency 0.1 with probability 0.9^30 < 5%.
    for (const [edge, frequency] of Object.entries(frequencies)) expect(frequency, edge).toBeGreaterThanOrEqual(0.1);
  });
});
