import { randomUniform, type Tensor, tensor } from '@shuffle/core';
import type { AvgPool2dOptions } from '@shuffle/kernels';
import fc from 'fast-check';
import { type ConformanceSpec, defineSpec } from '../spec.js';
import { poolCase, poolSample } from './max-pool2d.js';

const x4 = randomUniform([1, 1, 4, 4], { seed: 1 });
const x22 = randomUniform([1, 1, 2, 2], { seed: 2 });
const forwardError = (name: string, options: unknown, message: RegExp): ConformanceSpec<AvgPool2dOptions>['errors'][number] => ({
  name,
  sample: { inputs: { x: x4 }, options: options as AvgPool2dOptions },
  call: (b, { inputs, options }) => b.avgPool2d(inputs.x!, options),
  message,
});

export default defineSpec<AvgPool2dOptions>({
  op: 'avgPool2d',
  // The max-pool cases without dilation (average pooling has none), with countIncludePad true, false or left out.
  samples: fc.tuple(poolCase({ maxDilation: 1 }), fc.constantFrom(undefined, true, false)).chain(([c, countIncludePad]) => {
    const { dilation: _, ...shared } = c.options;
    const options: AvgPool2dOptions = countIncludePad === undefined ? shared : { ...shared, countIncludePad };
    return poolSample(c, options);
  }),
  forward: (b, { inputs, options }) => b.avgPool2d(inputs.x!, options),
  backward: (b, dy, { inputs, options }) => ({ x: b.avgPool2dBackward(dy as Tensor, inputs.x!, options).dx }),
  differentiable: ['x'],
  golden: [
    {
      // Windows [[1, 2], [5, 6]] and [[3, 4], [7, 8]]: sums 14 and 22 over 4 elements.
      name: '2x2 windows, no padding',
      sample: { inputs: { x: tensor([1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 2, 4]) }, options: { kernelSize: 2 } },
      expected: tensor([3.5, 5.5], [1, 1, 1, 2]),
    },
    {
      // x = [[1, 2], [3, 4]], 2x2 windows at stride 1 with padding 1: the padded input is 4x4 and all 9
      // windows lie inside it, so with countIncludePad every divisor is 4. The window sums are the real
      // elements each covers: corners 1, 2, 3, 4 (one element), edges 1+2, 1+3, 2+4, 3+4, centre 10.
      name: 'padding 1, countIncludePad (default): every window divides by 4',
      sample: { inputs: { x: tensor([1, 2, 3, 4], [1, 1, 2, 2]) }, options: { kernelSize: 2, stride: 1, padding: 1 } },
      expected: tensor([1 / 4, 3 / 4, 2 / 4, 4 / 4, 10 / 4, 6 / 4, 3 / 4, 7 / 4, 4 / 4], [1, 1, 3, 3]),
    },
    {
      // The same sums divided by how many real elements each window holds: 1 at the corners, 2 on the
      // edges, 4 in the centre; each output is the mean of the input it actually covers.
      name: 'padding 1, countIncludePad false: divide by the real elements',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4], [1, 1, 2, 2]) },
        options: { kernelSize: 2, stride: 1, padding: 1, countIncludePad: false },
      },
      expected: tensor([1, 3 / 2, 2, 4 / 2, 10 / 4, 6 / 2, 3, 7 / 2, 4], [1, 1, 3, 3]),
    },
    {
      // 3x3 input, kernel 2, stride 2, ceil mode: 2x2 windows starting at 0 and 2. Without padding the
      // padded edge is the input's edge, so PyTorch cuts a window running past it before counting:
      // rows/cols [2, 4) become [2, 3). Divisors 4, 2, 2, 1 with or without countIncludePad:
      // (1+2+4+5)/4 = 3, (3+6)/2 = 4.5, (7+8)/2 = 7.5, 9/1 = 9.
      name: 'ceil mode without padding: partial windows divide by their real size',
      sample: { inputs: { x: tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]) }, options: { kernelSize: 2, ceilMode: true } },
      expected: tensor([3, 4.5, 7.5, 9], [1, 1, 2, 2]),
    },
    {
      // Width 4, kernel 3, stride 2, padding 1, ceil mode: ceil((4 + 2 - 3) / 2) + 1 = 3 windows, starting
      // at -1, 1 and 3 (3 < 4 + 1, so the last one stays). With countIncludePad the divisor is the window
      // cut to the PADDED input [-1, 5):
      //   [-1, 2): 3 positions (one padding), sum 1 + 2 = 3   -> 3 / 3 = 1
      //   [1, 4):  3 positions,               sum 2 + 3 + 4 = 9 -> 3
      //   [3, 6) cut to [3, 5): 2 positions (x3 and the right padding; position 5 lies beyond the padding
      //          and is not counted), sum 4 -> 4 / 2 = 2
      name: 'ceil mode with padding, countIncludePad: the divisor stops at the padded edge',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4], [1, 1, 1, 4]) },
        options: { kernelSize: [1, 3], stride: [1, 2], padding: [0, 1], ceilMode: true },
      },
      expected: tensor([1, 3, 2], [1, 1, 1, 3]),
    },
    {
      // The same windows divided by their real elements: 2, 3 and 1 -> 3/2, 9/3, 4/1.
      name: 'ceil mode with padding, countIncludePad false',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4], [1, 1, 1, 4]) },
        options: { kernelSize: [1, 3], stride: [1, 2], padding: [0, 1], ceilMode: true, countIncludePad: false },
      },
      expected: tensor([1.5, 3, 4], [1, 1, 1, 3]),
    },
    {
      // Height 1 and kernel 3 with padding 1: the one window row reads [-1, 2), only row 0 real. With
      // countIncludePad each of the 2 windows along the width (stride 2: [0, 2) and [2, 4)) divides by
      // 3 x 2 = 6: (1 + 2) / 6 = 0.5, (3 + 4) / 6 = 7/6, in channel 0; channel 1 holds 10x the values.
      name: 'kernel taller than the unpadded input, two channels',
      sample: {
        inputs: { x: tensor([1, 2, 3, 4, 10, 20, 30, 40], [1, 2, 1, 4]) },
        options: { kernelSize: [3, 2], stride: 2, padding: [1, 0] },
      },
      expected: tensor([0.5, 7 / 6, 5, 70 / 6], [1, 2, 1, 2]),
    },
  ],
  errors: [
    {
      name: 'x of rank 5',
      sample: { inputs: { x: randomUniform([1, 1, 1, 4, 4], { seed: 3 }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.avgPool2d(inputs.x!, options),
      message: /^avgPool2d: x expects a 4-D \[N, C, H, W\] tensor, got shape \[1, 1, 1, 4, 4\]$/,
    },
    forwardError('no options', undefined, /^avgPool2d: options expects an object with kernelSize, got undefined$/),
    forwardError(
      'kernelSize 1.5',
      { kernelSize: 1.5 },
      /^avgPool2d: kernelSize expects a positive integer or \[h, w\] of positive integers, got 1\.5$/,
    ),
    forwardError('kernelSize 0', { kernelSize: 0 }, /^avgPool2d: kernelSize expects a positive integer .*, got 0$/),
    forwardError('kernelSize NaN', { kernelSize: Number.NaN }, /^avgPool2d: kernelSize expects a positive integer .*, got NaN$/),
    forwardError('kernelSize [-1, 2]', { kernelSize: [-1, 2] }, /^avgPool2d: kernelSize expects a positive integer .*, got \[-1, 2\]$/),
    forwardError('stride 0.5', { kernelSize: 2, stride: 0.5 }, /^avgPool2d: stride expects a positive integer .*, got 0\.5$/),
    forwardError('stride 0', { kernelSize: 2, stride: 0 }, /^avgPool2d: stride expects a positive integer .*, got 0$/),
    forwardError('stride [-1, 1]', { kernelSize: 2, stride: [-1, 1] }, /^avgPool2d: stride expects a positive integer .*, got \[-1, 1\]$/),
    forwardError(
      'negative padding',
      { kernelSize: 2, padding: [-1, 0] },
      /^avgPool2d: padding expects a non-negative integer, .*, got \[-1, 0\]$/,
    ),
    forwardError(
      'padding more than half the kernel',
      { kernelSize: [2, 3], padding: [1, 2] },
      /^avgPool2d: padding expects at most half the kernel on each side \(<= 1 for kernel height 2, <= 1 for kernel width 3\), got \[1, 2\]$/,
    ),
    forwardError(
      'padding 1 with kernel 1',
      { kernelSize: 1, padding: 1 },
      /^avgPool2d: padding expects at most half the kernel .*, got 1$/,
    ),
    forwardError(
      "padding 'same'",
      { kernelSize: 3, padding: 'same' },
      /^avgPool2d: padding expects .*\(pooling has no 'same'\), got same$/,
    ),
    forwardError(
      'dilation (average pooling has none)',
      { kernelSize: 2, dilation: 2 },
      /^avgPool2d: options expects only the keys kernelSize, stride, padding, ceilMode, countIncludePad, got dilation$/,
    ),
    forwardError(
      'countIncludePad not a boolean',
      { kernelSize: 2, countIncludePad: 'no' },
      /^avgPool2d: countIncludePad expects a boolean, got no$/,
    ),
    forwardError('ceilMode not a boolean', { kernelSize: 2, ceilMode: null }, /^avgPool2d: ceilMode expects a boolean, got null$/),
    {
      // Width 2 + 1 + 1 = 4 with padding, still short of the 5-wide window.
      name: 'kernel bigger than the padded input (output size 0)',
      sample: { inputs: { x: x22 }, options: { kernelSize: [2, 5], padding: [0, 1] } },
      call: (b, { inputs, options }) => b.avgPool2d(inputs.x!, options),
      message: /^avgPool2d: kernel width expects a window \(5 with dilation\) that fits the padded input \(4\), got 5$/,
    },
    {
      name: 'kernel bigger than the input, no padding',
      sample: { inputs: { x: x22 }, options: { kernelSize: 3, stride: 1 } },
      call: (b, { inputs, options }) => b.avgPool2d(inputs.x!, options),
      message: /^avgPool2d: kernel height expects a window \(3 with dilation\) that fits the padded input \(2\), got 3$/,
    },
    {
      name: 'dy of another shape',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 3, 3], { seed: 4 }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.avgPool2dBackward(inputs.dy!, inputs.x!, options),
      message: /^avgPool2dBackward: dy expects shape \[1, 1, 2, 2\] \(avgPool2d's output shape\), got \[1, 1, 3, 3\]$/,
    },
    {
      name: 'x in another layout than dy',
      sample: { inputs: { x: x4.toLayout('NHWC'), dy: randomUniform([1, 1, 2, 2], { seed: 4 }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.avgPool2dBackward(inputs.dy!, inputs.x!, options),
      message: /^avgPool2dBackward: dy expects the layout of x \(NHWC\); convert one with toLayout\(\), got NCHW$/,
    },
    {
      name: 'dy in another dtype than x',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 2, 2], { seed: 4, dtype: 'float64' }) }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.avgPool2dBackward(inputs.dy!, inputs.x!, options),
      message: /^avgPool2dBackward: dy expects the dtype of x \(float32\), got float64$/,
    },
    {
      name: 'dy not a tensor',
      sample: { inputs: { x: x4 }, options: { kernelSize: 2 } },
      call: (b, { inputs, options }) => b.avgPool2dBackward([1, 2, 3, 4] as never, inputs.x!, options),
      message: /^avgPool2dBackward: dy expects a Tensor, got \[1, 2, 3, 4\]$/,
    },
    {
      name: 'bad options in the backward',
      sample: { inputs: { x: x4, dy: randomUniform([1, 1, 2, 2], { seed: 4 }) }, options: { kernelSize: 2, stride: 0 } },
      call: (b, { inputs, options }) => b.avgPool2dBackward(inputs.dy!, inputs.x!, options),
      message: /^avgPool2dBackward: stride expects a positive integer/,
    },
  ],
});
