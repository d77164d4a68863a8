import { assertClose, type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { type Conv2dOptions, cpu, type Padding, reference } from '@shuffle/kernels';
import { describe, expect, it } from 'vitest';
import { releaseScratch } from '../../packages/kernels/src/common/scratch.js';

/*
 * The conformance suite's random convolutions have a few channels and pixels (at most 3 output channels
 * per group, which mostly take the direct path), so they rarely fill a GEMM tile, and never cross a cache
 * block or an im2col chunk, nor store the weight in the other layout. These calls do,
 * at ShuffleNet's channel counts and at sizes chosen for each path, checked against the float64
 * reference in both layouts, forward and backward.
 */

const tolerance = { atol: 5e-5, rtol: 2e-4 };
const layouts: Layout[] = ['NCHW', 'NHWC'];

interface Case {
  name: string;
  batch: number;
  inChannels: number;
  outChannels: number;
  size: [number, number];
  kernel: [number, number];
  stride?: number | [number, number];
  padding?: Padding;
  dilation?: number | [number, number];
  groups?: number;
  bias: boolean;
  /** Store the weight in the other layout than x (OHWI for NCHW x, OIHW for NHWC x). */
  crossWeight?: boolean;
}

const cases: Case[] = [
  // The 1x1 path: x viewed as the GEMM operand, no copy.
  {
    name: 'ShuffleNet grouped 1x1 240->60 g=3',
    batch: 2,
    inChannels: 240,
    outChannels: 60,
    size: [5, 6],
    kernel: [1, 1],
    groups: 3,
    bias: false,
  },
  {
    name: 'ShuffleNet grouped 1x1 120->480 g=3 (160 rows per group)',
    batch: 1,
    inChannels: 120,
    outChannels: 480,
    size: [7, 7],
    kernel: [1, 1],
    groups: 3,
    bias: true,
  },
  { name: 'ShuffleNet 1x1 24->54 g=1 (first unit)', batch: 3, inChannels: 24, outChannels: 54, size: [9, 9], kernel: [1, 1], bias: true },
  {
    name: '1x1 with 300 input channels per group (two K blocks)',
    batch: 1,
    inChannels: 600,
    outChannels: 10,
    size: [3, 3],
    kernel: [1, 1],
    groups: 2,
    bias: false,
  },
  {
    name: '1x1 odd sizes, no full tile',
    batch: 2,
    inChannels: 5,
    outChannels: 7,
    size: [3, 1],
    kernel: [1, 1],
    bias: true,
    crossWeight: true,
  },
  // The im2col path.
  {
    name: 'ShuffleNet stem 3x3 s2 p1 3->24',
    batch: 2,
    inChannels: 3,
    outChannels: 24,
    size: [17, 16],
    kernel: [3, 3],
    stride: 2,
    padding: 1,
    bias: true,
  },
  {
    name: '3x3 64->8 (576 terms: chunks end mid-row, and cross images in NHWC)',
    batch: 2,
    inChannels: 64,
    outChannels: 8,
    size: [12, 13],
    kernel: [3, 3],
    padding: 1,
    bias: false,
  },
  {
    name: '3x3 grouped, weight stored in the other layout',
    batch: 2,
    inChannels: 12,
    outChannels: 8,
    size: [6, 7],
    kernel: [3, 3],
    padding: 1,
    groups: 2,
    bias: true,
    crossWeight: true,
  },
  {
    name: '2x3 kernel, dilation [2, 1], asymmetric padding, stride [1, 2]',
    batch: 1,
    inChannels: 6,
    outChannels: 5,
    size: [9, 11],
    kernel: [2, 3],
    stride: [1, 2],
    padding: [2, 0, 1, 3],
    dilation: [2, 1],
    bias: true,
  },
  {
    name: "'same' 5x5 stride 2",
    batch: 2,
    inChannels: 4,
    outChannels: 6,
    size: [10, 9],
    kernel: [5, 5],
    stride: 2,
    padding: 'same',
    bias: false,
    crossWeight: true,
  },
  {
    name: '1x1 stride 2 (no im2col shortcut: a strided view)',
    batch: 2,
    inChannels: 9,
    outChannels: 11,
    size: [7, 8],
    kernel: [1, 1],
    stride: 2,
    bias: true,
  },
  {
    name: '1x1 with padding 1 (border of bias-only outputs)',
    batch: 1,
    inChannels: 6,
    outChannels: 6,
    size: [4, 5],
    kernel: [1, 1],
    padding: 1,
    groups: 3,
    bias: true,
  },
  {
    name: '1x1 padded on top only',
    batch: 2,
    inChannels: 4,
    outChannels: 8,
    size: [3, 4],
    kernel: [1, 1],
    padding: [1, 0, 0, 0],
    bias: false,
  },
  // The direct path (one or two output channels per group).
  {
    name: 'depthwise through conv2d (groups = channels)',
    batch: 2,
    inChannels: 12,
    outChannels: 12,
    size: [8, 8],
    kernel: [3, 3],
    padding: 1,
    groups: 12,
    bias: true,
  },
  {
    name: 'thin groups of 3 in, 2 out: strided, dilated, asymmetric padding, weight in the other layout',
    batch: 2,
    inChannels: 9,
    outChannels: 6,
    size: [9, 10],
    kernel: [3, 2],
    stride: [2, 1],
    padding: [1, 2, 0, 1],
    dilation: [1, 2],
    groups: 3,
    bias: true,
    crossWeight: true,
  },
  { name: 'thin 1x1 groups (2 out each)', batch: 1, inChannels: 8, outChannels: 8, size: [5, 3], kernel: [1, 1], groups: 4, bias: false },
  {
    name: 'kernel larger than the input (all taps at the border)',
    batch: 1,
    inChannels: 3,
    outChannels: 4,
    size: [2, 3],
    kernel: [5, 5],
    padding: 2,
    bias: false,
  },
];

function call(c: Case, layout: Layout, seed: number) {
  const x = randomUniform([c.batch, c.inChannels, ...c.size], { seed, low: -1, high: 1, layout });
  const groups = c.groups ?? 1;
  const weightLayout: Layout = c.crossWeight ? (layout === 'NCHW' ? 'NHWC' : 'NCHW') : layout;
  const weight = randomUniform([c.outChannels, c.inChannels / groups, ...c.kernel], {
    seed: seed + 1,
    low: -1,
    high: 1,
    layout: weightLayout,
  });
  const bias = c.bias ? randomUniform([c.outChannels], { seed: seed + 2, low: -1, high: 1 }) : undefined;
  const options: Conv2dOptions = {
    stride: c.stride ?? 1,
    padding: c.padding ?? 0,
    dilation: c.dilation ?? 1,
    groups,
    ...(bias ? { bias } : {}),
  };
  return { x, weight, bias, options };
}

const f64 = (t: Tensor) => t.astype('float64');

function checkAgainstReference(c: Case, layout: Layout, seed: number): void {
  const { x, weight, bias, options } = call(c, layout, seed);
  const options64: Conv2dOptions = bias ? { ...options, bias: f64(bias) } : options;
  const y = cpu.conv2d(x, weight, options);
  expect(y.layout).toBe(layout);
  expect(y.dtype).toBe('float32');
  assertClose(y, reference.conv2d(f64(x), f64(weight), options64), tolerance, `${c.name} forward`);

  const dy = randomUniform([...y.shape], { seed: seed + 3, low: -1, high: 1, layout });
  const grads = cpu.conv2dBackward(dy, x, weight, options);
  const expected = reference.conv2dBackward(f64(dy), f64(x), f64(weight), options64);
  expect(grads.dx.layout).toBe(layout);
  expect(grads.dweight.layout).toBe(weight.layout);
  assertClose(grads.dx, expected.dx, tolerance, `${c.name} dx`);
  assertClose(grads.dweight, expected.dweight, tolerance, `${c.name} dweight`);
  if (bias) assertClose(grads.dbias!, expected.dbias!, tolerance, `${c.name} dbias`);
  else expect(grads.dbias).toBeUndefined();
}

describe('cpu conv2d at sizes that reach the fast paths', () => {
  for (const layout of layouts) {
    describe(layout, () => {
      it.each(cases)('$name', (c) => checkAgainstReference(c, layout, 11));
    });
  }

  it('gives the same results whatever ran before it (scratch reused at other sizes, or released)', () => {
    const big = cases[6] as Case;
    const small = cases[4] as Case;
    for (const layout of layouts) {
      const run = (c: Case) => {
        const { x, weight, options } = call(c, layout, 5);
        const y = cpu.conv2d(x, weight, options);
        const { dx, dweight } = cpu.conv2dBackward(y, x, weight, options);
        return [y.data, dx.data, dweight.data];
      };
      const smallFirst = run(small);
      const bigFirst = run(big);
      expect(run(small)).toEqual(smallFirst);
      releaseScratch();
      expect(run(big)).toEqual(bigFirst);
      expect(run(small)).toEqual(smallFirst);
    }
  });

  it('returns zero-batch outputs and gradients of the right shapes', () => {
    for (const layout of layouts) {
      const x = randomUniform([0, 6, 5, 5], { seed: 1, layout });
      const weight = randomUniform([4, 3, 3, 3], { seed: 2 });
      const bias = randomUniform([4], { seed: 3 });
      const y = cpu.conv2d(x, weight, { groups: 2, padding: 1, bias });
      expect(y.shape).toEqual([0, 4, 5, 5]);
      const { dx, dweight, dbias } = cpu.conv2dBackward(y, x, weight, { groups: 2, padding: 1, bias });
      expect(dx.shape).toEqual([0, 6, 5, 5]);
      expect(Array.from(dweight.data)).toEqual(new Array(weight.size).fill(0));
      expect(Array.from(dbias!.data)).toEqual([0, 0, 0, 0]);
    }
  });

  it('computes float64 inputs (gradient checks) like the reference', () => {
    const { x, weight, options } = call(cases[7] as Case, 'NHWC', 3);
    const x64 = f64(x);
    const w64 = f64(weight);
    const options64 = { ...options, bias: f64(options.bias!) };
    const y = cpu.conv2d(x64, w64, options64);
    expect(y.dtype).toBe('float64');
    assertClose(y, reference.conv2d(x64, w64, options64), { atol: 1e-12, rtol: 1e-12 });
  });
});
