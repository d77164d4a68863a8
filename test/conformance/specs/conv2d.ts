import { describe, randomUniform, type Tensor, tensor, zerosLike } from '@shuffle/core';
import type { Backend, Conv2dOptions, Padding, Pair } from '@shuffle/kernels';
import fc from 'fast-check';
import { defineSpec, type Sample } from '../spec.js';
import { withInputs } from '../support/arbitraries.js';

/** Where a kernel slides (shared with depthwise-conv2d.ts). */
export interface WindowOptions {
  stride: Pair;
  padding: Padding;
  dilation: Pair;
}

/** A window, the kernel size and an input size that the dilated kernel fits once padded. */
export interface WindowSample extends WindowOptions {
  kernel: [number, number];
  input: [number, number];
}

const amount = fc.integer({ min: 0, max: 2 });
const paddings: fc.Arbitrary<Padding> = fc.oneof(
  fc.constant<Padding>('valid'),
  fc.constant<Padding>('same'),
  amount,
  fc.tuple(amount, amount),
  fc.tuple(amount, amount, amount, amount),
);
const pairs = (max: number): fc.Arbitrary<Pair> =>
  fc.oneof(fc.integer({ min: 1, max }), fc.tuple(fc.integer({ min: 1, max }), fc.integer({ min: 1, max })));
const pairOf = (p: Pair): [number, number] => (typeof p === 'number' ? [p, p] : [p[0], p[1]]);

/** [top, bottom, left, right] of numeric padding; 'same' fits any input, so it counts as unbounded. */
function padAmounts(padding: Padding): [number, number, number, number] {
  if (padding === 'valid') return [0, 0, 0, 0];
  if (padding === 'same') return [Infinity, Infinity, Infinity, Infinity];
  if (typeof padding === 'number') return [padding, padding, padding, padding];
  if (padding.length === 2) return [padding[0], padding[0], padding[1], padding[1]];
  return [padding[0], padding[1], padding[2], padding[3]];
}

/**
 * Kernels 1..3 per axis, strides 1..3 (so stride > kernel), dilation 1..2, padding of every form
 * (number, [h, w], asymmetric [t, b, l, r], 'valid', 'same'), inputs 1..5, raised just enough for the
 * dilated kernel to fit the padded input. One draw in five is a 1x1 input, padded (when the drawn padding
 * is too small) by exactly what the kernel needs, the odd pixel at the bottom/right: a kernel larger than
 * the unpadded input. test/ops/conv2d.test.ts checks how often each edge comes up.
 */
export function windowSamples(): fc.Arbitrary<WindowSample> {
  return fc
    .record({
      kernel: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
      input: fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 })),
      onePixel: fc.integer({ min: 0, max: 4 }).map((k) => k === 0),
      stride: pairs(3),
      dilation: pairs(2),
      padding: paddings,
    })
    .map(({ kernel, input, onePixel, stride, dilation, padding }) => {
      const [dilationHeight, dilationWidth] = pairOf(dilation);
      const spanHeight = dilationHeight * (kernel[0] - 1) + 1;
      const spanWidth = dilationWidth * (kernel[1] - 1) + 1;
      const [top, bottom, left, right] = padAmounts(padding);
      if (onePixel) {
        const fits = 1 + top + bottom >= spanHeight && 1 + left + right >= spanWidth;
        const half = (span: number) => [Math.floor((span - 1) / 2), Math.ceil((span - 1) / 2)] as const;
        const needed: Padding = [...half(spanHeight), ...half(spanWidth)];
        return { kernel, input: [1, 1], stride, dilation, padding: fits ? padding : needed };
      }
      const sizeThatFits = (size: number, span: number, pads: number) => Math.max(size, span - pads);
      return {
        kernel,
        input: [sizeThatFits(input[0], spanHeight, top + bottom), sizeThatFits(input[1], spanWidth, left + right)],
        stride,
        dilation,
        padding,
      };
    });
}

/** The edges every conv arbitrary must reach (the conformance brief's list), as predicates on one window and call. */
export function windowEdges(w: WindowSample): Record<string, boolean> {
  const [kernelHeight, kernelWidth] = w.kernel;
  const [height, width] = w.input;
  const [strideHeight, strideWidth] = pairOf(w.stride);
  const [dilationHeight, dilationWidth] = pairOf(w.dilation);
  const spanHeight = dilationHeight * (kernelHeight - 1) + 1;
  const spanWidth = dilationWidth * (kernelWidth - 1) + 1;
  const p = w.padding;
  return {
    '1x1 spatial': height === 1 && width === 1,
    'kernel larger than the unpadded input': spanHeight > height || spanWidth > width,
    'stride larger than the kernel': strideHeight > kernelHeight || strideWidth > kernelWidth,
    'dilation > 1': dilationHeight > 1 || dilationWidth > 1,
    'odd sizes > 1': (height > 1 && height % 2 === 1) || (width > 1 && width % 2 === 1),
    'asymmetric [t, b, l, r] padding': Array.isArray(p) && p.length === 4 && (p[0] !== p[1] || p[2] !== p[3]),
    "'same' padding": p === 'same',
    "'valid' padding": p === 'valid',
  };
}

/** How often each edge comes up in `runs` draws of `arbitrary` (fixed seed, so the test is deterministic). */
export function edgeFrequencies<T>(arbitrary: fc.Arbitrary<T>, edges: (value: T) => Record<string, boolean>, runs = 1000) {
  const counts: Record<string, number> = {};
  for (const value of fc.sample(arbitrary, { numRuns: runs, seed: 20240601 })) {
    for (const [edge, hit] of Object.entries(edges(value))) counts[edge] = (counts[edge] ?? 0) + (hit ? 1 : 0);
  }
  return Object.fromEntries(Object.entries(counts).map(([edge, count]) => [edge, count / runs]));
}

export interface Conv2dSampleOptions extends WindowOptions {
  groups: number;
  /** Whether inputs.bias is passed. When it is not, it is an input the output ignores: its gradient is zero. */
  bias: boolean;
}

export function conv2dOptions({ inputs, options }: Sample<Conv2dSampleOptions>): Conv2dOptions {
  const { stride, padding, dilation, groups } = options;
  return options.bias ? { stride, padding, dilation, groups, bias: inputs.bias! } : { stride, padding, dilation, groups };
}

/** [1, 1, 3, 3] holding 1..9 row by row. */
const ramp3x3 = () => tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
const noWindow = { stride: 1, padding: 0, dilation: 1, groups: 1, bias: false } satisfies Conv2dSampleOptions;
const random = (shape: number[], seed: number) => randomUniform(shape, { seed, low: -1, high: 1 });

type Inputs = Record<string, Tensor>;
type Call = (b: Backend, inputs: Inputs) => unknown;

/** An error case: `call` on `inputs` must throw a ShuffleArgumentError matching `message`. */
function rejects(name: string, inputs: Inputs, call: Call, message: RegExp) {
  return {
    name,
    sample: { inputs, options: noWindow },
    call: (b: Backend, sample: Sample<Conv2dSampleOptions>) => call(b, sample.inputs),
    message,
  };
}
/** conv2d(x, weight, options), with inputs.bias added to the options when the inputs hold one. */
const forward =
  (options?: unknown): Call =>
  (b, { x, weight, bias }) =>
    b.conv2d(x!, weight!, (bias ? { ...(options as object), bias } : options) as Conv2dOptions);
const backward =
  (options?: unknown): Call =>
  (b, { dy, x, weight }) =>
    b.conv2dBackward(dy!, x!, weight!, options as Conv2dOptions);

/** x [1, 3, 4, 4] and a weight [2, 3, 3, 3] that fits it: the output is [1, 2, 2, 2]. */
const smallX = () => random([1, 3, 4, 4], 1);
const smallWeight = () => random([2, 3, 3, 3], 2);
export const PADDING_EXPECTED = "a non-negative integer, [h, w], [top, bottom, left, right], 'valid' or 'same'";

/** A regex matching exactly `text`. */
export const exact = (text: string) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);

export default defineSpec<Conv2dSampleOptions>({
  op: 'conv2d',
  // groups 1..3 with 1..3 input and output channels per group: reaches groups = C (one channel per group),
  // C not a multiple of 4, batch > 1, with and without bias, over every window windowSamples() reaches.
  samples: fc
    .record({
      window: windowSamples(),
      batch: fc.integer({ min: 1, max: 3 }),
      groups: fc.integer({ min: 1, max: 3 }),
      inPerGroup: fc.integer({ min: 1, max: 3 }),
      outPerGroup: fc.integer({ min: 1, max: 3 }),
      bias: fc.boolean(),
    })
    .chain(({ window: { kernel, input, ...window }, batch, groups, inPerGroup, outPerGroup, bias }) =>
      withInputs(
        { x: [batch, groups * inPerGroup, ...input], weight: [groups * outPerGroup, inPerGroup, ...kernel], bias: [groups * outPerGroup] },
        { ...window, groups, bias },
      ),
    ),
  forward: (b, sample) => b.conv2d(sample.inputs.x!, sample.inputs.weight!, conv2dOptions(sample)),
  backward: (b, dy, sample) => {
    const { dx, dweight, dbias } = b.conv2dBackward(dy as Tensor, sample.inputs.x!, sample.inputs.weight!, conv2dOptions(sample));
    if (sample.options.bias !== (dbias !== undefined)) throw new Error(`conv2dBackward: dbias must come exactly when bias is given`);
    return { x: dx, weight: dweight, bias: dbias ?? zerosLike(sample.inputs.bias!) };
  },
  differentiable: ['x', 'weight', 'bias'],
  golden: [
    {
      // [[1,2],[4,5]].[[1,2],[3,4]] = 1+4+12+20 = 37; each step right adds 1+2+3+4 = 10, each step down 3*10.
      name: '2x2 kernel over a 3x3 ramp, no padding',
      sample: { inputs: { x: ramp3x3(), weight: tensor([1, 2, 3, 4], [1, 1, 2, 2]) }, options: noWindow },
      expected: tensor([37, 47, 67, 77], [1, 1, 2, 2]),
    },
    {
      // Windows start at -1 and 1 on both axes, so each covers a 2x2 corner of the ramp: 1+2+4+5, 2+3+5+6, ...
      name: '3x3 box filter, padding 1, stride 2, bias -1',
      sample: {
        inputs: { x: ramp3x3(), weight: tensor(new Array(9).fill(1), [1, 1, 3, 3]), bias: tensor([-1], [1]) },
        options: { ...noWindow, padding: 1, stride: 2, bias: true },
      },
      expected: tensor([11, 15, 23, 27], [1, 1, 2, 2]),
    },
    {
      // Group 0 (outputs 0, 1) reads x0 = 1, x1 = 2; group 1 (outputs 2, 3) reads x2 = 3, x3 = 4.
      name: 'groups 2: each output block reads its own input block',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4], [1, 4, 1, 1]), weight: tensor([1, 10, 2, 20, 100, 1000, 200, 2000], [4, 2, 1, 1]) },
        options: { ...noWindow, groups: 2 },
      },
      expected: tensor([1 + 20, 2 + 40, 300 + 4000, 600 + 8000], [1, 4, 1, 1]),
    },
    {
      // Width dilation 2: taps at j and j + 2, so y[j] = 1 * x[j] + 10 * x[j + 2] over x = 1..5.
      name: 'dilation [1, 2]',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4, 5], [1, 1, 1, 5]), weight: tensor([1, 10], [1, 1, 1, 2]) },
        options: { ...noWindow, dilation: [1, 2] },
      },
      expected: tensor([31, 42, 53], [1, 1, 1, 3]),
    },
    {
      // [top 0, bottom 1, left 2, right 0] around a 2x2 input: 3x4 output, the input in the top-right corner;
      // the bias lands on padded positions too.
      name: 'asymmetric padding [0, 1, 2, 0], 1x1 kernel 2, bias 0.5',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4], [1, 1, 2, 2]), weight: tensor([2], [1, 1, 1, 1]), bias: tensor([0.5], [1]) },
        options: { ...noWindow, padding: [0, 1, 2, 0], bias: true },
      },
      expected: tensor([0.5, 0.5, 2.5, 4.5, 0.5, 0.5, 6.5, 8.5, 0.5, 0.5, 0.5, 0.5], [1, 1, 3, 4]),
    },
    {
      // Each output is the sum of the ramp's 3x3 neighbourhood inside the input.
      name: "'same' at stride 1: 3x3 box filter keeps 3x3",
      sample: { inputs: { x: ramp3x3(), weight: tensor(new Array(9).fill(1), [1, 1, 3, 3]) }, options: { ...noWindow, padding: 'same' } },
      expected: tensor([12, 21, 16, 27, 45, 33, 24, 39, 28], [1, 1, 3, 3]),
    },
    {
      // Width 4, kernel 3, stride 2: out = ceil(4/2) = 2 needs (2-1)*2 + 3 - 4 = 1 pixel of padding, which
      // goes to the right; windows start at 0 and 2: 1+2+3 and 3+4+0.
      name: "'same' at stride 2 puts the odd padding pixel on the right",
      sample: {
        inputs: { x: tensor([1, 2, 3, 4], [1, 1, 1, 4]), weight: tensor([1, 1, 1], [1, 1, 1, 3]) },
        options: { ...noWindow, padding: 'same', stride: 2 },
      },
      expected: tensor([6, 7], [1, 1, 1, 2]),
    },
    {
      // Windows at 0 and 3 (the next, at 6, would leave the input): 3 * 1 and 3 * 4.
      name: 'stride 3 larger than a 1x1 kernel skips pixels',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4, 5], [1, 1, 1, 5]), weight: tensor([3], [1, 1, 1, 1]) },
        options: { ...noWindow, stride: 3 },
      },
      expected: tensor([3, 12], [1, 1, 1, 2]),
    },
    {
      // Image 0 holds (1, 2), image 1 holds (3, 4) in its two channels: 10*1 + 100*2 and 10*3 + 100*4.
      name: 'batch 2 of two channels: images do not mix',
      sample: { inputs: { x: tensor([1, 2, 3, 4], [2, 2, 1, 1]), weight: tensor([10, 100], [1, 2, 1, 1]) }, options: noWindow },
      expected: tensor([210, 430], [2, 1, 1, 1]),
    },
  ],
  errors: [
    rejects(
      'x not a tensor',
      { weight: smallWeight() },
      (b, { weight }) => b.conv2d([1, 2] as never, weight!),
      /^conv2d: x expects a Tensor, got \[1, 2\]$/,
    ),
    rejects(
      'x of rank 3',
      { x: random([3, 4, 4], 3), weight: smallWeight() },
      forward(),
      /^conv2d: x expects a 4-D \[N, C, H, W\] tensor, got shape \[3, 4, 4\]$/,
    ),
    rejects(
      'x with no rows',
      { x: random([1, 3, 0, 4], 3), weight: smallWeight() },
      forward(),
      /^conv2d: x expects at least one channel, row and column, got shape \[1, 3, 0, 4\]$/,
    ),
    rejects(
      'weight of rank 3',
      { x: smallX(), weight: random([2, 3, 3], 4) },
      forward(),
      /^conv2d: weight expects a 4-D \[Cout, Cin\/groups, kH, kW\] tensor, got shape \[2, 3, 3\]$/,
    ),
    rejects(
      'weight with a zero kernel height',
      { x: smallX(), weight: random([2, 3, 0, 3], 4) },
      forward(),
      /^conv2d: weight expects a shape \[Cout, Cin\/groups, kH, kW\] of positive sizes, got shape \[2, 3, 0, 3\]$/,
    ),
    rejects(
      'weight with no output channels',
      { x: smallX(), weight: random([0, 3, 3, 3], 4) },
      forward(),
      /^conv2d: weight expects a shape \[Cout, Cin\/groups, kH, kW\] of positive sizes, got shape \[0, 3, 3, 3\]$/,
    ),
    rejects(
      'weight input channels against groups (the design example)',
      { x: random([1, 8, 3, 3], 5), weight: random([4, 3, 3, 3], 6) },
      forward({ groups: 2 }),
      /^conv2d: weight expects 4 input channels per group \(x has 8 channels, groups=2\), got 3$/,
    ),
    rejects(
      'weight input channels without groups',
      { x: smallX(), weight: random([2, 2, 3, 3], 7) },
      forward(),
      /^conv2d: weight expects 3 input channels per group \(x has 3 channels, groups=1\), got 2$/,
    ),
    rejects(
      'input channels not divisible by groups',
      { x: random([1, 6, 3, 3], 8), weight: random([4, 1, 3, 3], 9) },
      forward({ groups: 4 }),
      /^conv2d: groups expects a divisor of the input channel count \(x has 6 channels\), got 4$/,
    ),
    rejects(
      'output channels not divisible by groups',
      { x: random([1, 4, 3, 3], 10), weight: random([3, 2, 1, 1], 11) },
      forward({ groups: 2 }),
      /^conv2d: weight expects a number of output channels \(dim 0\) divisible by groups=2, got 3 \(shape \[3, 2, 1, 1\]\)$/,
    ),
    rejects(
      'bias of rank 2',
      { x: smallX(), weight: smallWeight(), bias: random([1, 2], 12) },
      forward(),
      /^conv2d: bias expects a 1-D tensor, got shape \[1, 2\]$/,
    ),
    rejects(
      'bias of the wrong length',
      { x: smallX(), weight: smallWeight(), bias: random([3], 12) },
      forward(),
      /^conv2d: bias expects shape \[2\] \(one per output channel\), got \[3\]$/,
    ),
    rejects(
      'bias not a tensor',
      { x: smallX(), weight: smallWeight() },
      forward({ bias: [1, 2] }),
      /^conv2d: bias expects a Tensor, got \[1, 2\]$/,
    ),
    rejects(
      'kernel larger than the unpadded input',
      { x: random([1, 3, 2, 4], 13), weight: smallWeight() },
      forward(),
      /^conv2d: kernel height expects a window \(3 with dilation\) that fits the padded input \(2\), got 3$/,
    ),
    rejects(
      "kernel larger than the input with 'valid'",
      { x: random([1, 3, 4, 2], 13), weight: smallWeight() },
      forward({ padding: 'valid' }),
      /^conv2d: kernel width expects a window \(3 with dilation\) that fits the padded input \(2\), got 3$/,
    ),
    rejects(
      'dilation that spreads the kernel past the padded input',
      { x: smallX(), weight: smallWeight() },
      forward({ dilation: 2, padding: [0, 1] }),
      /^conv2d: kernel height expects a window \(5 with dilation\) that fits the padded input \(4\), got 3$/,
    ),
    ...[0, -1, 1.5, Number.NaN, [1, 0], [2, 1.5]].map((stride) =>
      rejects(
        `stride ${describe(stride)}`,
        { x: smallX(), weight: smallWeight() },
        forward({ stride }),
        exact(`conv2d: stride expects a positive integer or [h, w] of positive integers, got ${describe(stride)}`),
      ),
    ),
    rejects(
      'stride with three entries',
      { x: smallX(), weight: smallWeight() },
      forward({ stride: [1, 1, 1] }),
      /^conv2d: stride expects a number or \[h, w\], got \[1, 1, 1\]$/,
    ),
    ...[0, 2.5, Number.NaN, [1, -1]].map((dilation) =>
      rejects(
        `dilation ${describe(dilation)}`,
        { x: smallX(), weight: smallWeight() },
        forward({ dilation }),
        exact(`conv2d: dilation expects a positive integer or [h, w] of positive integers, got ${describe(dilation)}`),
      ),
    ),
    ...[0, -1, 1.5, Number.NaN].map((groups) =>
      rejects(
        `groups ${groups}`,
        { x: smallX(), weight: smallWeight() },
        forward({ groups }),
        exact(`conv2d: groups expects a positive integer, got ${groups}`),
      ),
    ),
    ...[-1, 0.5, Number.NaN, [1, -1], [0, 0, 0, -2], [1, 2, 3], 'full'].map((padding) =>
      rejects(
        `padding ${describe(padding)}`,
        { x: smallX(), weight: smallWeight() },
        forward({ padding }),
        exact(`conv2d: padding expects ${PADDING_EXPECTED}, got ${describe(padding)}`),
      ),
    ),
    rejects(
      'options not an object',
      { x: smallX(), weight: smallWeight() },
      forward(3),
      /^conv2d: options expects an object with some of stride, padding, dilation, groups, bias, got 3$/,
    ),
    rejects(
      'an unknown option',
      { x: smallX(), weight: smallWeight() },
      forward({ pad: 1 }),
      /^conv2d: options expects only the keys stride, padding, dilation, groups, bias, got pad$/,
    ),
    rejects(
      'weight of another dtype',
      { x: smallX().astype('float64'), weight: smallWeight() },
      forward(),
      /^conv2d: weight expects the dtype of x \(float64\), got float32$/,
    ),
    rejects(
      'bias of another dtype',
      { x: smallX(), weight: smallWeight(), bias: random([2], 14).astype('float64') },
      forward(),
      /^conv2d: bias expects the dtype of x \(float32\), got float64$/,
    ),
    rejects(
      'backward: dy not a tensor',
      { x: smallX(), weight: smallWeight() },
      (b, { x, weight }) => b.conv2dBackward([1] as never, x!, weight!),
      /^conv2dBackward: dy expects a Tensor, got \[1\]$/,
    ),
    rejects(
      'backward: dy of rank 3',
      { x: smallX(), weight: smallWeight(), dy: random([2, 2, 2], 15) },
      backward(),
      /^conv2dBackward: dy expects a 4-D \[N, C, H, W\] tensor, got shape \[2, 2, 2\]$/,
    ),
    rejects(
      "backward: dy not conv2d's output shape",
      { x: smallX(), weight: smallWeight(), dy: random([1, 2, 3, 3], 15) },
      backward(),
      /^conv2dBackward: dy expects shape \[1, 2, 2, 2\] \(conv2d's output shape\), got \[1, 2, 3, 3\]$/,
    ),
    rejects(
      'backward: dy in another layout than x',
      { x: smallX(), weight: smallWeight(), dy: random([1, 2, 2, 2], 16).toLayout('NHWC') },
      backward(),
      /^conv2dBackward: dy expects the layout of x \(NCHW\); convert one with toLayout\(\), got NHWC$/,
    ),
    rejects(
      'backward: dy of another dtype',
      { x: smallX(), weight: smallWeight(), dy: random([1, 2, 2, 2], 17).astype('float64') },
      backward(),
      /^conv2dBackward: dy expects the dtype of x \(float32\), got float64$/,
    ),
    rejects(
      "backward: the forward's checks",
      { x: random([1, 8, 3, 3], 5), weight: random([4, 3, 3, 3], 6), dy: random([1, 4, 1, 1], 18) },
      backward({ groups: 2 }),
      /^conv2dBackward: weight expects 4 input channels per group \(x has 8 channels, groups=2\), got 3$/,
    ),
  ],
});
