import { assertClose, type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { cpu, type DepthwiseConv2dOptions, type Padding, reference } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/*
 * The conformance suite's random calls are small (inputs of a few pixels), so they rarely reach the fast
 * kernel's interior paths: the unrolled 3x3 NCHW interior, the NHWC 3x3 channel loop, the unchecked
 * interior of other kernels, and the per-tap rectangles of the backward. These calls are big enough to
 * have an interior and a border, at ShuffleNet's channel counts, and are checked against the float64
 * reference.
 */

const tolerance = { atol: 5e-5, rtol: 2e-4 };
const layouts: Layout[] = ['NCHW', 'NHWC'];

interface Case {
  name: string;
  batch: number;
  channels: number;
  multiplier: number;
  size: [number, number];
  kernel: [number, number];
  stride: number | [number, number];
  padding: Padding;
  dilation?: number | [number, number];
  bias: boolean;
}

const cases: Case[] = [
  // Large enough planes that the interior is computed in place and the border strips through windows.
  {
    name: '3x3 s1 at 28 (interior + strips)',
    batch: 2,
    channels: 12,
    multiplier: 1,
    size: [28, 28],
    kernel: [3, 3],
    stride: 1,
    padding: 1,
    bias: true,
  },
  {
    name: '3x3 s2 at 28 (interior + strips)',
    batch: 1,
    channels: 13,
    multiplier: 1,
    size: [28, 27],
    kernel: [3, 3],
    stride: 2,
    padding: 1,
    bias: false,
  },
  {
    name: '5x5 s1 at 24, multiplier 2 (interior + strips)',
    batch: 1,
    channels: 3,
    multiplier: 2,
    size: [24, 26],
    kernel: [5, 5],
    stride: 1,
    padding: [2, 1],
    bias: true,
  },
  {
    name: '3x3 s1 at 30, padding on the top and left only',
    batch: 1,
    channels: 5,
    multiplier: 1,
    size: [30, 30],
    kernel: [3, 3],
    stride: 1,
    padding: [2, 0, 1, 0],
    bias: true,
  },
  // Small planes, where the whole padded input is copied once.
  {
    name: 'ShuffleNet 3x3 s1 60ch',
    batch: 2,
    channels: 60,
    multiplier: 1,
    size: [9, 9],
    kernel: [3, 3],
    stride: 1,
    padding: 1,
    bias: false,
  },
  {
    name: 'ShuffleNet 3x3 s2 120ch',
    batch: 1,
    channels: 120,
    multiplier: 1,
    size: [10, 10],
    kernel: [3, 3],
    stride: 2,
    padding: 1,
    bias: true,
  },
  {
    name: 'ShuffleNet 3x3 s1 240ch at 7',
    batch: 2,
    channels: 240,
    multiplier: 1,
    size: [7, 7],
    kernel: [3, 3],
    stride: 1,
    padding: 1,
    bias: true,
  },
  { name: '3x3 s2 odd input', batch: 1, channels: 7, multiplier: 1, size: [11, 8], kernel: [3, 3], stride: 2, padding: 1, bias: true },
  { name: '3x3 no padding', batch: 1, channels: 5, multiplier: 1, size: [8, 9], kernel: [3, 3], stride: 1, padding: 0, bias: false },
  {
    name: '3x3 dilation 2',
    batch: 2,
    channels: 3,
    multiplier: 1,
    size: [10, 11],
    kernel: [3, 3],
    stride: 1,
    padding: 2,
    dilation: 2,
    bias: true,
  },
  {
    name: '3x3 stride [1, 3]',
    batch: 1,
    channels: 4,
    multiplier: 1,
    size: [9, 13],
    kernel: [3, 3],
    stride: [1, 3],
    padding: 1,
    bias: false,
  },
  { name: '3x3 multiplier 2', batch: 2, channels: 5, multiplier: 2, size: [8, 8], kernel: [3, 3], stride: 1, padding: 1, bias: true },
  { name: '5x5 kernel', batch: 1, channels: 6, multiplier: 1, size: [12, 10], kernel: [5, 5], stride: 1, padding: 2, bias: true },
  {
    name: '2x4 kernel, asymmetric padding',
    batch: 2,
    channels: 3,
    multiplier: 3,
    size: [9, 10],
    kernel: [2, 4],
    stride: 2,
    padding: [1, 0, 2, 1],
    bias: true,
  },
  {
    name: "'same' 3x3 stride 2",
    batch: 1,
    channels: 9,
    multiplier: 1,
    size: [12, 12],
    kernel: [3, 3],
    stride: 2,
    padding: 'same',
    bias: false,
  },
  {
    name: '3x3 kernel on a 2x2 input (no interior)',
    batch: 1,
    channels: 4,
    multiplier: 1,
    size: [2, 2],
    kernel: [3, 3],
    stride: 1,
    padding: 1,
    bias: true,
  },
  {
    name: '3x3 kernel over a 1x1 input (overhangs both sides)',
    batch: 2,
    channels: 3,
    multiplier: 1,
    size: [1, 1],
    kernel: [3, 3],
    stride: 1,
    padding: 1,
    bias: true,
  },
  {
    name: '5x3 kernel over a 2x9 input, stride 2',
    batch: 1,
    channels: 2,
    multiplier: 2,
    size: [2, 9],
    kernel: [5, 3],
    stride: 2,
    padding: [2, 1],
    bias: false,
  },
];

function call(c: Case, layout: Layout, seed: number) {
  const x = randomUniform([c.batch, c.channels, ...c.size], { seed, low: -1, high: 1, layout });
  const weight = randomUniform([c.channels * c.multiplier, 1, ...c.kernel], { seed: seed + 1, low: -1, high: 1 });
  const bias = c.bias ? randomUniform([c.channels * c.multiplier], { seed: seed + 2, low: -1, high: 1 }) : undefined;
  const options: DepthwiseConv2dOptions = { stride: c.stride, padding: c.padding, dilation: c.dilation ?? 1, ...(bias ? { bias } : {}) };
  return { x, weight, bias, options };
}

const f64 = (t: Tensor) => t.astype('float64');

function checkAgainstReference(c: Case, layout: Layout, seed: number): void {
  const { x, weight, bias, options } = call(c, layout, seed);
  const options64 = bias ? { ...options, bias: f64(bias) } : options;
  const y = cpu.depthwiseConv2d(x, weight, options);
  const expected = reference.depthwiseConv2d(f64(x), f64(weight), options64);
  expect(y.layout).toBe(layout);
  assertClose(y, expected, tolerance, `${c.name} ${layout} forward`);

  const dy = randomUniform(expected.shape, { seed: seed + 3, low: -1, high: 1, layout });
  const grads = cpu.depthwiseConv2dBackward(dy, x, weight, options);
  const want = reference.depthwiseConv2dBackward(f64(dy), f64(x), f64(weight), options64);
  assertClose(grads.dx, want.dx, tolerance, `${c.name} ${layout} dx`);
  assertClose(grads.dweight, want.dweight, tolerance, `${c.name} ${layout} dweight`);
  expect(grads.dbias === undefined).toBe(want.dbias === undefined);
  if (grads.dbias && want.dbias) assertClose(grads.dbias, want.dbias, tolerance, `${c.name} ${layout} dbias`);
}

describe('cpu depthwiseConv2d: interior and border paths', () => {
  for (const c of cases) {
    for (const layout of layouts) {
      it(`${c.name}, ${layout}`, () => checkAgainstReference(c, layout, 11));
    }
  }

  it('random geometries with an interior, both layouts', () => {
    const geometry = fc
      .record({
        kernel: fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 })),
        stride: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
        dilation: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
        pad: fc.tuple(fc.nat(2), fc.nat(2), fc.nat(2), fc.nat(2)),
        extra: fc.tuple(fc.integer({ min: -4, max: 8 }), fc.integer({ min: -4, max: 8 })),
        channels: fc.integer({ min: 1, max: 19 }),
        multiplier: fc.integer({ min: 1, max: 3 }),
        batch: fc.integer({ min: 1, max: 2 }),
        bias: fc.boolean(),
        layout: fc.constantFrom<Layout>('NCHW', 'NHWC'),
        seed: fc.integer({ min: 0, max: 1e6 }),
      })
      .map(({ kernel, stride, dilation, pad, extra, ...rest }) => {
        const span = (a: 0 | 1) => dilation[a] * (kernel[a] - 1) + 1;
        // Often smaller than the kernel's span (down to what the padding lets fit): no interior at all.
        const size: [number, number] = [
          Math.max(1, span(0) - pad[0] - pad[1], span(0) + extra[0]),
          Math.max(1, span(1) - pad[2] - pad[3], span(1) + extra[1]),
        ];
        return { ...rest, kernel, stride, dilation, padding: pad as Padding, size, name: 'random' };
      });
    fc.assert(
      fc.property(geometry, ({ layout, seed, ...c }) => checkAgainstReference(c, layout, seed)),
      { numRuns: 150, seed: 6 },
    );
  });

  it('reuses its scratch buffers across calls of different sizes', () => {
    const big = cases[2]!;
    const small = { ...cases[3]!, multiplier: 2 };
    for (const c of [big, small, big, small]) {
      checkAgainstReference(c, 'NHWC', 5);
      checkAgainstReference(c, 'NCHW', 5);
    }
  });

  it('takes weights stored in NHWC like NCHW ones', () => {
    const { x, weight, options } = call(cases[0]!, 'NHWC', 3);
    const y = cpu.depthwiseConv2d(x, weight.toLayout('NHWC'), options);
    assertClose(y, cpu.depthwiseConv2d(x, weight, options), { atol: 0, rtol: 0 });
    const dy = randomUniform(y.shape, { seed: 4, low: -1, high: 1, layout: 'NHWC' });
    const { dweight } = cpu.depthwiseConv2dBackward(dy, x, weight.toLayout('NHWC'), options);
    expect(dweight.layout).toBe('NHWC');
    assertClose(dweight, cpu.depthwiseConv2dBackward(dy, x, weight, options).dweight, { atol: 0, rtol: 0 });
  });
});
