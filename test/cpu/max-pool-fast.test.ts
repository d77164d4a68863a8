import { type Layout, Rng, type Tensor, tensor } from '@shuffle/core';
import { cpu, type MaxPool2dOptions, reference } from '@shuffle/kernels';
import { describe, expect, it } from 'vitest';

/*
 * The cpu's plain maxPool2d (no argmax) is separable (row maxima, then their maximum over the window's
 * rows), compares int32 keys, and hands the windows whose maximum is +0 or a NaN to a per-window loop.
 * These shapes reach its edges, which the random suites meet only by chance: inputs with no interior
 * (every window at a border), ceil mode's partial windows, single-row windows, dilated and non-3 widths,
 * -0 before +0 in window order (row-major, so not column-major), NaNs with different bits at the borders.
 * Compared with the reference bit for bit, NaN payloads included.
 */

const layouts: Layout[] = ['NCHW', 'NHWC'];

/** The output's bits, in logical [N, C, H, W] order, so that a difference names a logical position. */
function logicalBits(t: Tensor): Int32Array {
  const nchw = t.toLayout('NCHW').data as Float32Array;
  return new Int32Array(nchw.buffer, nchw.byteOffset, nchw.length);
}

function expectSameBits(x: Tensor, options: MaxPool2dOptions, label: string): void {
  const expected = reference.maxPool2d(x, options);
  const actual = cpu.maxPool2d(x, options);
  expect(actual.shape, label).toEqual(expected.shape);
  expect(actual.layout, label).toBe(x.layout);
  const a = logicalBits(actual);
  const b = logicalBits(expected);
  const first = a.findIndex((bits, i) => bits !== b[i]);
  const hex = (v: number | undefined) => `0x${((v ?? 0) >>> 0).toString(16)}`;
  expect(first, `${label}: first difference at ${first}: ${hex(a[first])} vs ${hex(b[first])}`).toBe(-1);
}

/** Float32 NaNs of other bit patterns: negative, with payloads, signalling. */
const NAN_BITS = [0x7fc00000, 0xffc00000, 0x7fc00123, 0xffc00077, 0x7f800001, 0xff800005];

/** A float32 tensor of `shape` in `layout` whose NCHW bits come from `draw(rng)`. */
function fromBits(shape: number[], layout: Layout, seed: number, draw: (rng: Rng) => number): Tensor {
  const rng = new Rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const bits = new Int32Array(size);
  for (let e = 0; e < size; e++) bits[e] = draw(rng);
  return tensor(new Float32Array(bits.buffer), shape).toLayout(layout);
}

const f32bits = (v: number) => new Int32Array(Float32Array.of(v).buffer)[0] as number;

/** Few distinct values, so windows tie; -0, +0, +-Infinity and odd NaNs often. */
function tieHeavy(rng: Rng): number {
  const r = rng.int(20);
  if (r < 2) return NAN_BITS[rng.int(NAN_BITS.length)] as number;
  if (r < 6) return f32bits(-0);
  if (r < 9) return f32bits(0);
  if (r === 9) return f32bits(Number.NEGATIVE_INFINITY);
  if (r === 10) return f32bits(Number.POSITIVE_INFINITY);
  return f32bits(rng.int(4) - 3); // -3..0, so that zero is often the maximum
}

describe('cpu maxPool2d, separable fast path', () => {
  const geometries: { name: string; shape: number[]; options: MaxPool2dOptions }[] = [
    { name: '1x1 input, 3x3 pad 1', shape: [1, 3, 1, 1], options: { kernelSize: 3, stride: 2, padding: 1 } },
    { name: '2x2 input, no interior', shape: [2, 3, 2, 2], options: { kernelSize: 3, stride: 1, padding: 1 } },
    { name: '2x5 input: one window row inside', shape: [1, 2, 2, 5], options: { kernelSize: 3, stride: 2, padding: 1 } },
    { name: 'ceil mode overhang, odd sizes', shape: [1, 5, 8, 9], options: { kernelSize: 3, stride: 2, padding: 1, ceilMode: true } },
    { name: 'ceil mode, no padding', shape: [2, 3, 6, 7], options: { kernelSize: 3, stride: 2, ceilMode: true } },
    { name: 'stem pool, 24 channels', shape: [1, 24, 13, 12], options: { kernelSize: 3, stride: 2, padding: 1 } },
    { name: 'stride 1 (no key carried over)', shape: [1, 4, 7, 8], options: { kernelSize: 3, stride: 1, padding: 1 } },
    { name: 'dilation 2, stride 4 (key carried)', shape: [1, 3, 11, 13], options: { kernelSize: 3, stride: 4, dilation: 2, padding: 1 } },
    { name: 'dilation 3, ceil mode', shape: [1, 2, 10, 12], options: { kernelSize: 3, stride: 2, dilation: 3, ceilMode: true } },
    { name: 'asymmetric padding', shape: [1, 3, 9, 9], options: { kernelSize: 3, stride: 2, padding: [0, 1, 1, 0] } },
    { name: '2x2 windows (no unrolled columns)', shape: [2, 3, 7, 9], options: { kernelSize: 2, stride: 1, padding: 1 } },
    { name: '1x4 and 4x1 windows', shape: [1, 3, 9, 9], options: { kernelSize: [1, 4], stride: [1, 3], padding: [0, 2] } },
    { name: '4x1 windows, dilated rows', shape: [1, 3, 12, 5], options: { kernelSize: [4, 1], stride: [2, 1], dilation: [2, 1] } },
    { name: '3x1 windows with padding', shape: [1, 2, 7, 6], options: { kernelSize: [3, 1], stride: [2, 1], padding: [1, 0] } },
  ];

  for (const layout of layouts) {
    for (const { name, shape, options } of geometries) {
      it(`${name}, ${layout}`, () => {
        for (let seed = 0; seed < 20; seed++) expectSameBits(fromBits(shape, layout, seed, tieHeavy), options, `seed ${seed}`);
      });
    }

    it(`takes the first zero in row-major order, not column-major, ${layout}`, () => {
      // One 3x3 window over 3x3: row 0 = [-1, +0, -1], row 1 = [-0, -1, -1]: row-major meets +0 first
      // (column-major would meet -0). And the mirror case, -0 first.
      const options = { kernelSize: 3 };
      const z = [-1, 0, -1, -0, -1, -1, -1, -1, -1];
      const mirrored = [-1, -0, -1, 0, -1, -1, -1, -1, -1];
      for (const values of [z, mirrored]) {
        const x = tensor(values, [1, 1, 3, 3]).toLayout(layout);
        expectSameBits(x, options, `${values}`);
        expect(Object.is(cpu.maxPool2d(x, options).data[0], values[1])).toBe(true);
      }
    });

    it(`keeps the first NaN's bits, at every border and inside, ${layout}`, () => {
      // Two NaNs per window, the second with the larger key, planted at each position of a small input.
      const shape = [1, 2, 5, 6];
      for (let at = 0; at < 30; at++) {
        const x = fromBits(shape, layout, at, (rng) => f32bits(rng.int(5) - 2));
        const nchw = x.toLayout('NCHW');
        const bits = new Int32Array(nchw.data.buffer, nchw.data.byteOffset, nchw.size);
        bits[at] = 0xffc00001 | 0;
        bits[(at + 1) % 30] = 0x7fc00123;
        bits[30 + at] = 0x7f800001;
        bits[30 + ((at + 7) % 30)] = 0xffc00000 | 0;
        expectSameBits(nchw.toLayout(layout), { kernelSize: 3, stride: 2, padding: 1 }, `NaNs at ${at}`);
        expectSameBits(nchw.toLayout(layout), { kernelSize: 3, stride: 1, padding: 1, ceilMode: true }, `NaNs at ${at}, stride 1`);
      }
    });

    it(`pools -Infinity and the largest and smallest floats without letting padding win, ${layout}`, () => {
      const extremes = [Number.NEGATIVE_INFINITY, -3.4028234663852886e38, -1.401298464324817e-45, 1.401298464324817e-45];
      const x = fromBits([1, 3, 7, 8], layout, 5, (rng) => f32bits(extremes[rng.int(extremes.length)] as number));
      expectSameBits(x, { kernelSize: 3, stride: 2, padding: 1 }, 'extremes');
      const allMinusInfinity = tensor(new Array(2 * 5 * 5).fill(Number.NEGATIVE_INFINITY), [1, 2, 5, 5]).toLayout(layout);
      expectSameBits(allMinusInfinity, { kernelSize: 3, stride: 2, padding: 1, ceilMode: true }, '-Infinity');
    });
  }
});
