import { assertClose, describe, randomUniform, type Tensor, tensor } from '@shuffle/core';
import type { MaxPool2dOptions, Pair } from '@shuffle/kernels';
import fc from 'fast-check';
import { type ConformanceSpec, defineSpec } from '../spec.js';
import { randomInputs } from '../support/arbitraries.js';

/** One spatial axis of a pooling call; `size` is the input's extent along it. */
export interface PoolAxis {
  kernel: number;
  stride: number;
  dilation: number;
  padBefore: number;
  padAfter: number;
  size: number;
}

/** A pooling call's geometry, drawn independently of the code under test. */
export interface PoolCase {
  batch: number;
  channels: number;
  height: PoolAxis;
  width: PoolAxis;
  /** The options exactly as passed: stride, padding, dilation and ceilMode sometimes left to their defaults. */
  options: MaxPool2dOptions;
}

/**
 * PyTorch's output length (aten Pool.h pooling_output_shape_pad_lr), written out again here so the
 * arbitraries do not lean on the code they test.
 */
export function pooledLength(a: PoolAxis, ceilMode: boolean): number {
  const room = a.size + a.padBefore + a.padAfter - a.dilation * (a.kernel - 1) - 1;
  let out = (ceilMode ? Math.ceil(room / a.stride) : Math.floor(room / a.stride)) + 1;
  if (ceilMode && (out - 1) * a.stride >= a.size + a.padBefore) out--;
  return out;
}

/** With dilation, a window's taps can skip over a small input and land on padding only (the op rejects that). */
function everyWindowTouchesInput(a: PoolAxis, ceilMode: boolean): boolean {
  for (let o = 0; o < pooledLength(a, ceilMode); o++) {
    const start = o * a.stride - a.padBefore;
    const taps = Array.from({ length: a.kernel }, (_, k) => start + k * a.dilation);
    if (!taps.some((i) => i >= 0 && i < a.size)) return false;
  }
  return true;
}

/**
 * One axis: kernel 1..4, stride 1..5 (so sometimes bigger than the kernel), padding up to half the
 * kernel (PyTorch's limit), and an input from the smallest that the padded window fits (often smaller
 * than the kernel itself, 1 when the padding allows it; half the time) to 4 more, so odd sizes come up too.
 */
function poolAxis(maxDilation: number, symmetric: boolean): fc.Arbitrary<PoolAxis> {
  return fc
    .record({
      kernel: fc.integer({ min: 1, max: 4 }),
      stride: fc.integer({ min: 1, max: 5 }),
      dilation: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: maxDilation })),
    })
    .chain(({ kernel, stride, dilation }) =>
      fc
        .record({
          padBefore: fc.integer({ min: 0, max: Math.floor(kernel / 2) }),
          padAfter: fc.integer({ min: 0, max: Math.floor(kernel / 2) }),
          extra: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4 })),
        })
        .map(({ padBefore, padAfter, extra }) => {
          if (symmetric) padAfter = padBefore;
          const span = dilation * (kernel - 1) + 1;
          return { kernel, stride, dilation, padBefore, padAfter, size: Math.max(1, span - padBefore - padAfter) + extra };
        }),
    );
}

const pair = (h: number, w: number, preferNumber: boolean): Pair => (h === w && preferNumber ? h : [h, w]);

/**
 * Valid pooling calls reaching the edges: 1x1 inputs, kernels bigger than the unpadded input, stride
 * bigger than the kernel, batch > 1, odd sizes, ceil mode both ways, asymmetric [top, bottom, left,
 * right] padding now and then, dilation up to 3 when `maxDilation` allows, and every option sometimes
 * left out or spelled as a number, a pair or 'valid'.
 */
export function poolCase({ maxDilation }: { maxDilation: number }): fc.Arbitrary<PoolCase> {
  return (
    fc
      // Asymmetric padding is our extension (PyTorch has none), drawn one time in four.
      .record({ symmetric: fc.integer({ min: 0, max: 3 }).map((i) => i > 0), spelling: fc.boolean() })
      .chain(({ symmetric, spelling }) =>
        fc.record({
          batch: fc.integer({ min: 1, max: 3 }),
          channels: fc.integer({ min: 1, max: 3 }),
          height: poolAxis(maxDilation, symmetric),
          width: poolAxis(maxDilation, symmetric),
          symmetric: fc.constant(symmetric),
          preferNumber: fc.constant(spelling),
          defaultStride: fc.boolean(),
          ceilMode: fc.constantFrom(undefined, false, true),
          zeroPadding: fc.constantFrom<'omit' | 'valid' | 'number'>('omit', 'valid', 'number'),
        }),
      )
      .map(({ batch, channels, height, width, symmetric, preferNumber, defaultStride, ceilMode, zeroPadding }) => {
        if (defaultStride) {
          height = { ...height, stride: height.kernel };
          width = { ...width, stride: width.kernel };
        }
        const options: MaxPool2dOptions = { kernelSize: pair(height.kernel, width.kernel, preferNumber) };
        if (!defaultStride) options.stride = pair(height.stride, width.stride, preferNumber);
        const noPadding = height.padBefore + height.padAfter + width.padBefore + width.padAfter === 0;
        if (noPadding) {
          if (zeroPadding === 'valid') options.padding = 'valid';
          if (zeroPadding === 'number') options.padding = 0;
        } else if (symmetric) {
          options.padding = pair(height.padBefore, width.padBefore, preferNumber);
        } else {
          options.padding = [height.padBefore, height.padAfter, width.padBefore, width.padAfter];
        }
        if (height.dilation !== 1 || width.dilation !== 1 || preferNumber)
          options.dilation = pair(height.dilation, width.dilation, preferNumber);
        if (ceilMode !== undefined) options.ceilMode = ceilMode;
        return { batch, channels, height, width, options };
      })
      .filter(
        ({ height, width, options }) =>
          everyWindowTouchesInput(height, options.ceilMode ?? false) && everyWindowTouchesInput(width, options.ceilMode ?? false),
      )
  );
}

/** A sample for a pooling case: uniform [-1, 1) input drawn from a seed. */
export function poolSample<O>(c: PoolCase, options: O) {
  return fc.integer({ min: 0, max: 2 ** 31 - 1 }).map((seed) => ({
    inputs: randomInputs({ x: [c.batch, c.channels, c.height.size, c.width.size] }, seed),
    options,
  }));
}

const x4 = randomUniform([1, 1, 4, 4], { seed: 1 });
const x22 = randomUniform([1, 1, 2, 2], { seed: 2 });
const bad = (options: unknown) => ({ inputs: { x: x4 }, options: options as MaxPool2dOptions });
const forwardError = (name: string, options: unknown, message: RegExp): ConformanceSpec<MaxPool2dOptions>['errors'][number] => ({
  name,
  sample: bad(options),
  call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
  message,
});

/**
 * Finite differences flip a max when two elements of a window are within the step of each other, so
 * the gradient check replaces x by its ranks times 0.01: the same order (a random permutation of
 * well-separated values), and no two elements closer than 0.01, far above the 1e-6 step.
 */
function separated(x: Tensor): Tensor {
  const order = [...Array(x.size).keys()].sort((a, b) => (x.data[a] as number) - (x.data[b] as number) || a - b);
  const y = x.clone();
  order.forEach((position, rank) => {
    y.data[position] = 0.01 * (rank - order.length / 2);
  });
  return y;
}

export default defineSpec<MaxPool2dOptions>({
  op: 'maxPool2d',
  samples: poolCase({ maxDilation: 3 }).chain((c) => poolSample(c, c.options)),
  forward: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
  // Both backward paths, with the forward's saved argmax and recomputing it, must give the same dx.
  backward: (b, dy, { inputs, options }) => {
    const { saved } = b.maxPool2dWithSaved(inputs.x!, options);
    const withSaved = b.maxPool2dBackward(dy as Tensor, inputs.x!, options, saved).dx;
    const recomputed = b.maxPool2dBackward(dy as Tensor, inputs.x!, options).dx;
    assertClose(recomputed, withSaved, { atol: 0, rtol: 0 }, 'maxPool2dBackward without saved vs with saved');
    return { x: withSaved };
  },
  differentiable: ['x'],
  golden: [
    {
      // Windows rows {0,1} x cols {0,1}, {0,1} x {2,3}, {2,3} x {0,1}, {2,3} x {2,3}: their largest
      // elements are 6, 8, 14, 16 for channel 0 and, with every value negated in channel 1, the
      // smallest magnitudes -1, -3, -9, -11.
      name: '2x2 windows, stride 2, two channels',
      sample: {
        inputs: {
          x: tensor(
            [
              ...[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
              ...[-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -15, -16],
            ],
            [1, 2, 4, 4],
          ),
        },
        options: { kernelSize: 2 },
      },
      expected: tensor([6, 8, 14, 16, -1, -3, -9, -11], [1, 2, 2, 2]),
    },
    {
      // x = [[-1, -2], [-3, -4]], padding 1, 2x2 windows at stride 1: the 3x3 windows start at rows and
      // columns -1, 0, 1. Padding is skipped, not a zero, so every output is the largest REAL element of
      // its window and stays negative: e.g. the corner window (rows -1..0, cols -1..0) holds only x00 = -1,
      // the one at (rows 1..2, cols 1..2) only x11 = -4, the middle one all four (-1).
      name: 'padding never wins: all-negative input with padding 1',
      sample: { inputs: { x: tensor([-1, -2, -3, -4], [1, 1, 2, 2]) }, options: { kernelSize: 2, stride: 1, padding: 1 } },
      expected: tensor([-1, -1, -2, -1, -1, -2, -3, -3, -4], [1, 1, 3, 3]),
    },
    {
      // Width 5, kernel 2, stride 2: floor mode gives floor(3/2) + 1 = 2 windows; ceil mode ceil(3/2) + 1 = 3,
      // the last one [4, 6) running past the edge and holding only x4 = 3.
      name: 'ceil mode keeps the partial window at the end',
      sample: { inputs: { x: tensor([1, 5, 2, 4, 3], [1, 1, 1, 5]) }, options: { kernelSize: [1, 2], ceilMode: true } },
      expected: tensor([5, 4, 3], [1, 1, 1, 3]),
    },
    {
      // Width 4, kernel 2, stride 3, padding 1: ceil((4 + 2 - 2) / 3) + 1 = 3 windows, but the third would
      // start at 2*3 - 1 = 5, inside the right padding, so PyTorch drops it: 2 windows, [-1, 0] -> x0 = 1
      // and [2, 3] -> max(3, 4) = 4.
      name: 'ceil mode drops a window that would start in the right padding',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4], [1, 1, 1, 4]) },
        options: { kernelSize: [1, 2], stride: [1, 3], padding: [0, 1], ceilMode: true },
      },
      expected: tensor([1, 4], [1, 1, 1, 2]),
    },
    {
      // Kernel 2 with dilation 2 spans 3x3 and reads only the corners x00 = 1, x02 = 2, x20 = 3, x22 = 5;
      // the larger 9, 8, 7, 6 sit between the taps and are never read.
      name: 'dilation 2 reads the corners only',
      sample: { inputs: { x: tensor([1, 9, 2, 8, 7, 6, 3, 4, 5], [1, 1, 3, 3]) }, options: { kernelSize: 2, dilation: 2 } },
      expected: tensor([5], [1, 1, 1, 1]),
    },
    {
      // A NaN anywhere in a window makes that window NaN, whatever the order (first: [NaN, 2];
      // after a larger value: [3, NaN]); windows without one are untouched ([4, 5] -> 5).
      name: 'NaN propagates',
      sample: {
        inputs: { x: tensor([Number.NaN, 2, 3, Number.NaN, 4, 5], [1, 1, 1, 6]) },
        options: { kernelSize: [1, 2] },
      },
      expected: tensor([Number.NaN, Number.NaN, 5], [1, 1, 1, 3]),
    },
  ],
  errors: [
    {
      name: 'x of rank 3',
      sample: { inputs: { x: randomUniform([1, 4, 4], { seed: 3 }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: x expects a 4-D \[N, C, H, W\] tensor, got shape \[1, 4, 4\]$/,
    },
    {
      name: 'x of rank 3 in maxPool2dWithSaved',
      sample: { inputs: { x: randomUniform([1, 4, 4], { seed: 3 }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.maxPool2dWithSaved(inputs.x!, options),
      message: /^maxPool2dWithSaved: x expects a 4-D \[N, C, H, W\] tensor, got shape \[1, 4, 4\]$/,
    },
    {
      name: 'no options',
      sample: bad(undefined),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: options expects an object with kernelSize, got undefined$/,
    },
    {
      name: 'no kernelSize',
      sample: bad({ stride: 2 }),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: kernelSize expects a number or \[h, w\], got undefined$/,
    },
    ...[2.5, 0, -1, Number.NaN, [2, 0]].map((kernelSize) =>
      forwardError(
        `kernelSize ${describe(kernelSize)}`,
        { kernelSize },
        new RegExp(`^maxPool2d: kernelSize expects a positive integer or \\[h, w\\] of positive integers, got ${esc(kernelSize)}$`),
      ),
    ),
    ...[1.5, 0, -2, [1, 0]].map((stride) =>
      forwardError(
        `stride ${describe(stride)}`,
        { kernelSize: 2, stride },
        new RegExp(`^maxPool2d: stride expects a positive integer or \\[h, w\\] of positive integers, got ${esc(stride)}$`),
      ),
    ),
    {
      name: 'negative padding',
      sample: bad({ kernelSize: 3, padding: -1 }),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: padding expects a non-negative integer, .*, got -1$/,
    },
    {
      name: 'padding more than half the kernel',
      sample: bad({ kernelSize: 3, padding: 2 }),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message:
        /^maxPool2d: padding expects at most half the kernel on each side \(<= 1 for kernel height 3, <= 1 for kernel width 3\), got 2$/,
    },
    {
      name: 'padding more than half the kernel on one side only',
      sample: bad({ kernelSize: [3, 2], padding: [1, 1, 0, 2] }),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message:
        /^maxPool2d: padding expects at most half the kernel on each side \(<= 1 for kernel height 3, <= 1 for kernel width 2\), got \[1, 1, 0, 2\]$/,
    },
    {
      // PyTorch checks the undilated kernel: a dilated 2-tap window still allows padding 1 only.
      name: 'padding more than half the kernel, whatever the dilation',
      sample: bad({ kernelSize: 2, dilation: 3, padding: 2 }),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message:
        /^maxPool2d: padding expects at most half the kernel on each side \(<= 1 for kernel height 2, <= 1 for kernel width 2\), got 2$/,
    },
    {
      name: "padding 'same'",
      sample: bad({ kernelSize: 3, padding: 'same' }),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: padding expects .*'valid' \(pooling has no 'same'\), got same$/,
    },
    {
      name: 'dilation 0',
      sample: bad({ kernelSize: 2, dilation: 0 }),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: dilation expects a positive integer or \[h, w\] of positive integers, got 0$/,
    },
    {
      name: 'ceilMode not a boolean',
      sample: bad({ kernelSize: 2, ceilMode: 1 }),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: ceilMode expects a boolean, got 1$/,
    },
    {
      name: 'an option max pooling does not have',
      sample: bad({ kernelSize: 2, countIncludePad: false }),
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: options expects only the keys kernelSize, stride, padding, dilation, ceilMode, got countIncludePad$/,
    },
    {
      name: 'kernel bigger than the padded input (output size 0)',
      sample: { inputs: { x: x22 }, options: { kernelSize: 3 } },
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: kernel height expects a window \(3 with dilation\) that fits the padded input \(2\), got 3$/,
    },
    {
      // PyTorch's ceil mode gives (2 - 3 + 0) / 1 + 1 = 0 windows at stride 1 as well.
      name: 'kernel bigger than the padded input in ceil mode at stride 1',
      sample: { inputs: { x: x22 }, options: { kernelSize: [1, 3], stride: 1, ceilMode: true } },
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: kernel width expects a window \(3 with dilation\) that fits the padded input \(2\), got 3$/,
    },
    {
      name: 'dilated kernel bigger than the padded input',
      sample: { inputs: { x: x22 }, options: { kernelSize: 2, dilation: [1, 2] } },
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message: /^maxPool2d: kernel width expects a window \(3 with dilation\) that fits the padded input \(2\), got 2$/,
    },
    {
      // Height 2, padding 1, 2 taps 3 apart: the only window reads rows -1 and 2, both padding.
      name: 'a dilated window that covers only padding',
      sample: { inputs: { x: x22 }, options: { kernelSize: [2, 1], padding: [1, 0], dilation: [3, 1] } },
      call: (b, { inputs, options }) => b.maxPool2d(inputs.x!, options),
      message:
        /^maxPool2d: dilation expects windows that each cover an input element \(along the height, window 0 of 1 covers only padding\), got \[3, 1\]$/,
    },
    {
      name: 'dy of another shape',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 2, 3], { seed: 4 }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.maxPool2dBackward(inputs.dy!, inputs.x!, options),
      message: /^maxPool2dBackward: dy expects shape \[1, 1, 2, 2\] \(maxPool2d's output shape\), got \[1, 1, 2, 3\]$/,
    },
    {
      name: 'dy in another layout than x',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 2, 2], { seed: 4, layout: 'NHWC' }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.maxPool2dBackward(inputs.dy!, inputs.x!, options),
      message: /^maxPool2dBackward: dy expects the layout of x \(NCHW\); convert one with toLayout\(\), got NHWC$/,
    },
    {
      name: 'dy in another dtype than x',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 2, 2], { seed: 4, dtype: 'float64' }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.maxPool2dBackward(inputs.dy!, inputs.x!, options),
      message: /^maxPool2dBackward: dy expects the dtype of x \(float32\), got float64$/,
    },
    {
      name: 'bad options in the backward',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 2, 2], { seed: 4 }) }, options: { kernelSize: 2, padding: 2 } },
      call: (b, { inputs, options }) => b.maxPool2dBackward(inputs.dy!, inputs.x!, options),
      message: /^maxPool2dBackward: padding expects at most half the kernel/,
    },
    {
      name: 'saved argmax of the wrong length',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 2, 2], { seed: 4 }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.maxPool2dBackward(inputs.dy!, inputs.x!, options, { argmax: new Int32Array(5) }),
      message: /^maxPool2dBackward: saved\.argmax expects 4 entries \(one per element of the output \[1, 1, 2, 2\]\), got 5$/,
    },
    {
      name: 'saved argmax pointing outside the input plane',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 2, 2], { seed: 4 }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.maxPool2dBackward(inputs.dy!, inputs.x!, options, { argmax: Int32Array.from([0, 3, 16, 15]) }),
      message: /^maxPool2dBackward: saved\.argmax\[2\] expects an index h \* W \+ w in \[0, 15\], got 16$/,
    },
    {
      name: 'saved without an Int32Array argmax',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 2, 2], { seed: 4 }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.maxPool2dBackward(inputs.dy!, inputs.x!, options, { argmax: [0, 2, 8, 10] } as never),
      message: /^maxPool2dBackward: saved expects an object \{ argmax: Int32Array \} from maxPool2dWithSaved, got \[object Object\]$/,
    },
  ],
  prepareForGradcheck: ({ inputs, options }) => ({ inputs: { x: separated(inputs.x!) }, options }),
});

function esc(value: unknown): string {
  return describe(value).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
