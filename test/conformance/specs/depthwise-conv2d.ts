import { describe, randomUniform, type Tensor, tensor, zerosLike } from '@shuffle/core';
import type { Backend, DepthwiseConv2dOptions } from '@shuffle/kernels';
import fc from 'fast-check';
import { defineSpec, type Sample } from '../spec.js';
import { withInputs } from '../support/arbitraries.js';
import { exact, PADDING_EXPECTED, type WindowOptions, windowSamples } from './conv2d.js';

export interface DepthwiseSampleOptions extends WindowOptions {
  /** Whether inputs.bias is passed. When it is not, it is an input the output ignores: its gradient is zero. */
  bias: boolean;
}

export function depthwiseOptions({ inputs, options }: Sample<DepthwiseSampleOptions>): DepthwiseConv2dOptions {
  const { stride, padding, dilation } = options;
  return options.bias ? { stride, padding, dilation, bias: inputs.bias! } : { stride, padding, dilation };
}

/** [1, 1, 3, 3] holding 1..9 row by row. */
const ramp3x3 = () => tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
const ones = (shape: number[]) => tensor(new Array(shape.reduce((a, b) => a * b, 1)).fill(1), shape);
const noWindow = { stride: 1, padding: 0, dilation: 1, bias: false } satisfies DepthwiseSampleOptions;
const random = (shape: number[], seed: number) => randomUniform(shape, { seed, low: -1, high: 1 });

type Inputs = Record<string, Tensor>;
type Call = (b: Backend, inputs: Inputs) => unknown;

/** An error case: `call` on `inputs` must throw a ShuffleArgumentError matching `message`. */
function rejects(name: string, inputs: Inputs, call: Call, message: RegExp) {
  return {
    name,
    sample: { inputs, options: noWindow },
    call: (b: Backend, sample: Sample<DepthwiseSampleOptions>) => call(b, sample.inputs),
    message,
  };
}
/** depthwiseConv2d(x, weight, options), with inputs.bias added to the options when the inputs hold one. */
const forward =
  (options?: unknown): Call =>
  (b, { x, weight, bias }) =>
    b.depthwiseConv2d(x!, weight!, (bias ? { ...(options as object), bias } : options) as DepthwiseConv2dOptions);
const backward =
  (options?: unknown): Call =>
  (b, { dy, x, weight }) =>
    b.depthwiseConv2dBackward(dy!, x!, weight!, options as DepthwiseConv2dOptions);

/** x [1, 3, 4, 4] and a multiplier-2 weight [6, 1, 3, 3] for it: the output is [1, 6, 2, 2]. */
const x3 = () => random([1, 3, 4, 4], 1);
const w6 = () => random([6, 1, 3, 3], 2);

export default defineSpec<DepthwiseSampleOptions>({
  op: 'depthwiseConv2d',
  // Channels 1..5 (not a multiple of 4, and 1), multiplier 1..3, batch > 1, with and without bias, over
  // every window windowSamples() reaches (1x1 inputs, kernels larger than the unpadded input, stride >
  // kernel, dilation 2, asymmetric padding, 'same', 'valid').
  samples: fc
    .record({
      window: windowSamples(),
      batch: fc.integer({ min: 1, max: 3 }),
      channels: fc.integer({ min: 1, max: 5 }),
      multiplier: fc.integer({ min: 1, max: 3 }),
      bias: fc.boolean(),
    })
    .chain(({ window: { kernel, input, ...window }, batch, channels, multiplier, bias }) =>
      withInputs(
        { x: [batch, channels, ...input], weight: [channels * multiplier, 1, ...kernel], bias: [channels * multiplier] },
        { ...window, bias },
      ),
    ),
  forward: (b, sample) => b.depthwiseConv2d(sample.inputs.x!, sample.inputs.weight!, depthwiseOptions(sample)),
  backward: (b, dy, sample) => {
    const { dx, dweight, dbias } = b.depthwiseConv2dBackward(
      dy as Tensor,
      sample.inputs.x!,
      sample.inputs.weight!,
      depthwiseOptions(sample),
    );
    if (sample.options.bias !== (dbias !== undefined))
      throw new Error('depthwiseConv2dBackward: dbias must come exactly when bias is given');
    return { x: dx, weight: dweight, bias: dbias ?? zerosLike(sample.inputs.bias!) };
  },
  differentiable: ['x', 'weight', 'bias'],
  golden: [
    {
      // Channel 0 (1, 2, 3) with (1, -1): 1 - 2, 2 - 3; channel 1 (10, 20, 30) with (2, 1): 20 + 20, 40 + 30.
      name: 'two channels, each with its own 1x2 kernel',
      sample: {
        inputs: { x: tensor([1, 2, 3, 10, 20, 30], [1, 2, 1, 3]), weight: tensor([1, -1, 2, 1], [2, 1, 1, 2]) },
        options: noWindow,
      },
      expected: tensor([-1, -1, 40, 70], [1, 2, 1, 2]),
    },
    {
      // m = 2: outputs 0, 1 read channel 0 (1, 2) times 1 and 10; outputs 2, 3 read channel 1 (3, 4) times
      // 100 and 1000; then biases 1, 2, 3, 4.
      name: 'multiplier 2 with bias: output o reads channel floor(o / 2)',
      sample: {
        inputs: {
          x: tensor([1, 2, 3, 4], [1, 2, 1, 2]),
          weight: tensor([1, 10, 100, 1000], [4, 1, 1, 1]),
          bias: tensor([1, 2, 3, 4], [4]),
        },
        options: { ...noWindow, bias: true },
      },
      expected: tensor([1 + 1, 2 + 1, 10 + 2, 20 + 2, 300 + 3, 400 + 3, 3000 + 4, 4000 + 4], [1, 4, 1, 2]),
    },
    {
      // Every 3x3 window over the 2x2 input padded by 1 covers all of it: 1 + 2 + 3 + 4.
      name: '3x3 kernel over a 2x2 input with padding 1',
      sample: { inputs: { x: tensor([1, 2, 3, 4], [1, 1, 2, 2]), weight: ones([1, 1, 3, 3]) }, options: { ...noWindow, padding: 1 } },
      expected: tensor([10, 10, 10, 10], [1, 1, 2, 2]),
    },
    {
      // Taps at rows and columns 0 and 2: the ramp's corners 1 + 3 + 7 + 9.
      name: 'dilation 2 reads the corners of a 3x3 ramp',
      sample: { inputs: { x: ramp3x3(), weight: ones([1, 1, 2, 2]) }, options: { ...noWindow, dilation: 2 } },
      expected: tensor([20], [1, 1, 1, 1]),
    },
    {
      // ceil(3/2) = 2 needs (2-1)*2 + 3 - 3 = 2 pixels of padding per axis, one on each side; windows start at
      // -1 and 1, so each covers a 2x2 corner of the ramp: 1+2+4+5, 2+3+5+6, 4+5+7+8, 5+6+8+9.
      name: "'same' at stride 2",
      sample: { inputs: { x: ramp3x3(), weight: ones([1, 1, 3, 3]) }, options: { ...noWindow, padding: 'same', stride: 2 } },
      expected: tensor([12, 16, 24, 28], [1, 1, 2, 2]),
    },
    {
      // [top 1, bottom 0, left 0, right 2] around [1, 2]: a 2x4 output with the input at row 1, columns 0..1.
      name: 'asymmetric padding [1, 0, 0, 2] with a 1x1 kernel 3',
      sample: {
        inputs: { x: tensor([1, 2], [1, 1, 1, 2]), weight: tensor([3], [1, 1, 1, 1]) },
        options: { ...noWindow, padding: [1, 0, 0, 2] },
      },
      expected: tensor([0, 0, 0, 0, 3, 6, 0, 0], [1, 1, 2, 4]),
    },
    {
      name: 'batch 2: images do not mix',
      sample: { inputs: { x: tensor([3, 5], [2, 1, 1, 1]), weight: tensor([2], [1, 1, 1, 1]) }, options: noWindow },
      expected: tensor([6, 10], [2, 1, 1, 1]),
    },
  ],
  errors: [
    rejects(
      'x not a tensor',
      { weight: w6() },
      (b, { weight }) => b.depthwiseConv2d([1, 2] as never, weight!),
      /^depthwiseConv2d: x expects a Tensor, got \[1, 2\]$/,
    ),
    rejects(
      'x of rank 3',
      { x: random([3, 4, 4], 3), weight: w6() },
      forward(),
      /^depthwiseConv2d: x expects a 4-D \[N, C, H, W\] tensor, got shape \[3, 4, 4\]$/,
    ),
    rejects(
      'x with no channels',
      { x: random([1, 0, 4, 4], 3), weight: w6() },
      forward(),
      /^depthwiseConv2d: x expects at least one channel, row and column, got shape \[1, 0, 4, 4\]$/,
    ),
    rejects(
      'weight of rank 3',
      { x: x3(), weight: random([6, 3, 3], 4) },
      forward(),
      /^depthwiseConv2d: weight expects a 4-D \[C\*m, 1, kH, kW\] tensor, got shape \[6, 3, 3\]$/,
    ),
    rejects(
      'weight with a second dimension of 2',
      { x: x3(), weight: random([6, 2, 3, 3], 5) },
      forward(),
      /^depthwiseConv2d: weight expects 1 input channel per filter \(\[C\*m, 1, kH, kW\]; conv2d with groups takes more\), got 2$/,
    ),
    ...(
      [
        ['weight rows not a multiple of the channels', [4, 1, 3, 3]],
        ['weight with fewer rows than channels', [2, 1, 3, 3]],
        ['weight with no rows', [0, 1, 3, 3]],
      ] satisfies [string, number[]][]
    ).map(([name, shape]) =>
      rejects(
        name,
        { x: x3(), weight: random(shape, 6) },
        forward(),
        exact(
          `depthwiseConv2d: weight expects a positive multiple of x's 3 channels as its first dimension (C * multiplier), ` +
            `got ${shape[0]} (shape ${describe(shape)})`,
        ),
      ),
    ),
    rejects(
      'weight with a zero kernel width',
      { x: x3(), weight: random([3, 1, 3, 0], 7) },
      forward(),
      /^depthwiseConv2d: weight expects a kernel of positive height and width, got shape \[3, 1, 3, 0\]$/,
    ),
    rejects(
      'bias of rank 2',
      { x: x3(), weight: w6(), bias: random([6, 1], 8) },
      forward(),
      /^depthwiseConv2d: bias expects a 1-D tensor, got shape \[6, 1\]$/,
    ),
    rejects(
      'bias with one value per input channel when m = 2',
      { x: x3(), weight: w6(), bias: random([3], 8) },
      forward(),
      /^depthwiseConv2d: bias expects shape \[6\] \(one per output channel\), got \[3\]$/,
    ),
    rejects(
      'kernel larger than the padded input',
      { x: random([1, 3, 4, 1], 9), weight: w6() },
      forward({ padding: [1, 0, 0, 1] }),
      /^depthwiseConv2d: kernel width expects a window \(3 with dilation\) that fits the padded input \(2\), got 3$/,
    ),
    rejects(
      'dilation that spreads the kernel past the input',
      { x: x3(), weight: w6() },
      forward({ dilation: [1, 3] }),
      /^depthwiseConv2d: kernel width expects a window \(7 with dilation\) that fits the padded input \(4\), got 3$/,
    ),
    ...[0, 1.5, Number.NaN, [1, -1]].map((stride) =>
      rejects(
        `stride ${describe(stride)}`,
        { x: x3(), weight: w6() },
        forward({ stride }),
        exact(`depthwiseConv2d: stride expects a positive integer or [h, w] of positive integers, got ${describe(stride)}`),
      ),
    ),
    ...[0, 2.5, Number.NaN, [0, 1]].map((dilation) =>
      rejects(
        `dilation ${describe(dilation)}`,
        { x: x3(), weight: w6() },
        forward({ dilation }),
        exact(`depthwiseConv2d: dilation expects a positive integer or [h, w] of positive integers, got ${describe(dilation)}`),
      ),
    ),
    ...[-1, Number.NaN, [0, -1], [0, 0, -1, 0], 'full'].map((padding) =>
      rejects(
        `padding ${describe(padding)}`,
        { x: x3(), weight: w6() },
        forward({ padding }),
        exact(`depthwiseConv2d: padding expects ${PADDING_EXPECTED}, got ${describe(padding)}`),
      ),
    ),
    rejects(
      'groups (depthwise has none)',
      { x: x3(), weight: w6() },
      forward({ groups: 3 }),
      /^depthwiseConv2d: options expects only the keys stride, padding, dilation, bias, got groups$/,
    ),
    rejects(
      'weight of another dtype',
      { x: x3(), weight: w6().astype('float64') },
      forward(),
      /^depthwiseConv2d: weight expects the dtype of x \(float32\), got float64$/,
    ),
    rejects(
      'bias of another dtype',
      { x: x3(), weight: w6(), bias: random([6], 10).astype('float64') },
      forward(),
      /^depthwiseConv2d: bias expects the dtype of x \(float32\), got float64$/,
    ),
    rejects(
      "backward: dy not depthwiseConv2d's output shape",
      { x: x3(), weight: w6(), dy: random([1, 3, 2, 2], 11) },
      backward(),
      /^depthwiseConv2dBackward: dy expects shape \[1, 6, 2, 2\] \(depthwiseConv2d's output shape\), got \[1, 3, 2, 2\]$/,
    ),
    rejects(
      'backward: dy in another layout than x',
      { x: x3().toLayout('NHWC'), weight: w6(), dy: random([1, 6, 2, 2], 12) },
      backward(),
      /^depthwiseConv2dBackward: dy expects the layout of x \(NHWC\); convert one with toLayout\(\), got NCHW$/,
    ),
    rejects(
      'backward: dy of another dtype',
      { x: x3(), weight: w6(), dy: random([1, 6, 2, 2], 13).astype('float64') },
      backward(),
      /^depthwiseConv2dBackward: dy expects the dtype of x \(float32\), got float64$/,
    ),
    rejects(
      "backward: the forward's checks",
      { x: x3(), weight: random([6, 2, 3, 3], 14), dy: random([1, 6, 2, 2], 15) },
      backward(),
      /^depthwiseConv2dBackward: weight expects 1 input channel per filter/,
    ),
  ],
});
