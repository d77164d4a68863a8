import { assertClose, type Layout, randomUniform, type Tensor, tensor, zeros } from '@shuffle/core';
import { type Conv2dOptions, conv2d, conv2dBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Sample } from '../conformance/spec.js';
import conv2dSpec, { type Conv2dSampleOptions, edgeFrequencies, windowEdges, windowSamples } from '../conformance/specs/conv2d.js';

const layouts = fc.constantFrom<Layout>('NCHW', 'NHWC');
const seeds = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const tight = { atol: 1e-6, rtol: 1e-5 };
const random = (shape: readonly number[], seed: number, layout: Layout = 'NCHW') =>
  randomUniform(shape, { seed, low: -1, high: 1, layout: shape.length === 4 ? layout : 'NCHW' });

/** The elements [from, from + count) of a 4-D tensor along dimension `dim`, copied element by element, in t's layout. */
function slice4(t: Tensor, dim: 0 | 1, from: number, count: number): Tensor {
  const shape = [...t.shape];
  shape[dim] = count;
  const out = zeros(shape, { dtype: t.dtype, layout: t.layout });
  const [a, b, c, d] = shape as [number, number, number, number];
  for (let i = 0; i < a; i++)
    for (let j = 0; j < b; j++)
      for (let k = 0; k < c; k++)
        for (let l = 0; l < d; l++) out.set([i, j, k, l], t.get(dim === 0 ? [from + i, j, k, l] : [i, from + j, k, l]));
  return out;
}

const slice1 = (t: Tensor, from: number, count: number) => tensor(t.data.slice(from, from + count), [count]);

/** A conv2d call: options from a window sample plus groups and an optional bias. */
interface Call {
  x: Tensor;
  weight: Tensor;
  options: Conv2dOptions & { groups: number };
}

const calls = fc
  .record({
    window: windowSamples(),
    batch: fc.integer({ min: 1, max: 3 }),
    groups: fc.integer({ min: 1, max: 4 }),
    inPerGroup: fc.integer({ min: 1, max: 3 }),
    outPerGroup: fc.integer({ min: 1, max: 3 }),
    bias: fc.boolean(),
    layout: layouts,
    weightLayout: layouts,
    seed: seeds,
  })
  .map(({ window: { kernel, input, ...window }, batch, groups, inPerGroup, outPerGroup, bias, layout, weightLayout, seed }): Call => {
    const outChannels = groups * outPerGroup;
    const x = random([batch, groups * inPerGroup, ...input], seed, layout);
    const weight = random([outChannels, inPerGroup, ...kernel], seed + 1, weightLayout);
    return { x, weight, options: { ...window, groups, ...(bias ? { bias: random([outChannels], seed + 2) } : {}) } };
  });

describe('conv2d', () => {
  it('grouped equals the per-group convolutions of the channel blocks, concatenated (forward and backward)', () => {
    fc.assert(
      fc.property(calls, seeds, ({ x, weight, options }, seed) => {
        const { groups, bias } = options;
        const y = conv2d(x, weight, options);
        const dy = random(y.shape, seed, y.layout);
        const grads = conv2dBackward(dy, x, weight, options);
        const inPerGroup = (x.shape[1] as number) / groups;
        const outPerGroup = (weight.shape[0] as number) / groups;
        for (let g = 0; g < groups; g++) {
          const xg = slice4(x, 1, g * inPerGroup, inPerGroup);
          const wg = slice4(weight, 0, g * outPerGroup, outPerGroup);
          const single = { ...options, groups: 1, ...(bias ? { bias: slice1(bias, g * outPerGroup, outPerGroup) } : {}) };
          assertClose(slice4(y, 1, g * outPerGroup, outPerGroup), conv2d(xg, wg, single), tight, `y of group ${g}`);
          const dyg = slice4(dy, 1, g * outPerGroup, outPerGroup);
          const part = conv2dBackward(dyg, xg, wg, single);
          assertClose(slice4(grads.dx, 1, g * inPerGroup, inPerGroup), part.dx, tight, `dx of group ${g}`);
          assertClose(slice4(grads.dweight, 0, g * outPerGroup, outPerGroup), part.dweight, tight, `dweight of group ${g}`);
          if (bias) assertClose(slice1(grads.dbias!, g * outPerGroup, outPerGroup), part.dbias!, tight, `dbias of group ${g}`);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('1x1, stride 1, no padding is a matrix product at every pixel: y[n,:,h,w] = W x[n,:,h,w] + b', () => {
    fc.assert(
      fc.property(
        fc.record({
          batch: fc.integer({ min: 1, max: 3 }),
          inChannels: fc.integer({ min: 1, max: 6 }),
          outChannels: fc.integer({ min: 1, max: 6 }),
          height: fc.integer({ min: 1, max: 5 }),
          width: fc.integer({ min: 1, max: 5 }),
          bias: fc.boolean(),
          layout: layouts,
          seed: seeds,
        }),
        ({ batch, inChannels, outChannels, height, width, bias, layout, seed }) => {
          const x = random([batch, inChannels, height, width], seed, layout);
          const weight = random([outChannels, inChannels, 1, 1], seed + 1, layout);
          const b = bias ? random([outChannels], seed + 2) : undefined;
          const y = conv2d(x, weight, b ? { bias: b } : {});
          const expected = zeros([batch, outChannels, height, width]);
          for (let n = 0; n < batch; n++)
            for (let h = 0; h < height; h++)
              for (let w = 0; w < width; w++)
                for (let o = 0; o < outChannels; o++) {
                  let sum = b ? b.get([o]) : 0;
                  for (let c = 0; c < inChannels; c++) sum += weight.get([o, c, 0, 0]) * x.get([n, c, h, w]);
                  expected.set([n, o, h, w], sum);
                }
          expect(y.layout).toBe(layout);
          assertClose(y, expected, tight, 'y');
        },
      ),
    );
  });

  it("'same' padding keeps H and W at stride 1 and gives ceil(H / s), ceil(W / s) at stride s", () => {
    fc.assert(
      fc.property(
        fc.record({
          height: fc.integer({ min: 1, max: 9 }),
          width: fc.integer({ min: 1, max: 9 }),
          kernel: fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 })),
          stride: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })),
          dilation: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
          seed: seeds,
        }),
        ({ height, width, kernel, stride, dilation, seed }) => {
          const x = random([1, 2, height, width], seed);
          const weight = random([3, 2, ...kernel], seed + 1);
          expect(conv2d(x, weight, { padding: 'same', dilation }).shape).toEqual([1, 3, height, width]);
          expect(conv2d(x, weight, { padding: 'same', dilation, stride }).shape).toEqual([
            1,
            3,
            Math.ceil(height / stride[0]),
            Math.ceil(width / stride[1]),
          ]);
        },
      ),
    );
  });

  it("reads a weight stored in another layout than x by logical index, and returns dweight in the weight's layout", () => {
    fc.assert(
      fc.property(calls, seeds, ({ x, weight, options }, seed) => {
        const other = weight.toLayout(weight.layout === 'NCHW' ? 'NHWC' : 'NCHW');
        const y = conv2d(x, weight, options);
        assertClose(conv2d(x, other, options), y, tight, 'y');
        const dy = random(y.shape, seed, y.layout);
        const grads = conv2dBackward(dy, x, weight, options);
        const otherGrads = conv2dBackward(dy, x, other, options);
        expect(grads.dweight.layout).toBe(weight.layout);
        expect(otherGrads.dweight.layout).toBe(other.layout);
        expect(grads.dx.layout).toBe(x.layout);
        assertClose(otherGrads.dweight, grads.dweight, tight, 'dweight');
        assertClose(otherGrads.dx, grads.dx, tight, 'dx');
      }),
      { numRuns: 30 },
    );
  });

  it('backward of a 2x2 kernel over a 3x3 ramp, by hand', () => {
    // y[i, j] = sum_{p,q} w[p, q] x[i + p, j + q] with dy = 1 everywhere:
    // dw[p, q] = sum of the 2x2 block of x starting at (p, q): 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9;
    // dx[h, v] = sum of w[p, q] over the outputs (h - p, v - q) that exist: a corner sees one tap, an edge
    // two, the centre all four (1+2+3+4); db = number of outputs.
    const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
    const weight = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
    const dy = tensor([1, 1, 1, 1], [1, 1, 2, 2]);
    const { dx, dweight, dbias } = conv2dBackward(dy, x, weight, { bias: tensor([0], [1]) });
    expect(dweight.toArray()).toEqual([12, 16, 24, 28]);
    expect(dx.toArray()).toEqual([1, 3, 2, 4, 10, 6, 3, 7, 4]);
    expect(dbias!.toArray()).toEqual([4]);
    expect(conv2dBackward(dy, x, weight).dbias).toBeUndefined();
  });

  it('takes an empty batch (N = 0) and returns empty outputs and zero weight gradients', () => {
    const x = zeros([0, 2, 3, 3]);
    const weight = random([4, 2, 2, 2], 1);
    const bias = random([4], 2);
    expect(conv2d(x, weight, { bias }).shape).toEqual([0, 4, 2, 2]);
    const { dx, dweight, dbias } = conv2dBackward(zeros([0, 4, 2, 2]), x, weight, { bias });
    expect(dx.shape).toEqual([0, 2, 3, 3]);
    expect(dweight.toArray().every((v) => v === 0)).toBe(true);
    expect(dbias!.toArray()).toEqual([0, 0, 0, 0]);
  });
});

describe('the conv2d conformance samples', () => {
  it('reach every edge often enough that 30 random runs all but surely meet each one', () => {
    const frequencies = edgeFrequencies(conv2dSpec.samples as fc.Arbitrary<Sample<Conv2dSampleOptions>>, (s) => {
      const [batch, channels, height, width] = s.inputs.x!.shape as [number, number, number, number];
      const [outChannels, , kernelHeight, kernelWidth] = s.inputs.weight!.shape as [number, number, number, number];
      return {
        ...windowEdges({ ...s.options, kernel: [kernelHeight, kernelWidth], input: [height, width] }),
        'batch > 1': batch > 1,
        'groups = channels > 1': s.options.groups === channels && channels > 1,
        'channels not a multiple of 4': channels % 4 !== 0 && outChannels % 4 !== 0,
        'with bias': s.options.bias,
        'without bias': !s.options.bias,
      };
    });
    // 30 runs miss an edge of frequency 0.1 with probability 0.9^30 < 5%.
    for (const [edge, frequency] of Object.entries(frequencies)) expect(frequency, edge).toBeGreaterThanOrEqual(0.1);
  });
});
