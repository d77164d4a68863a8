import { assertClose, type Layout, randomUniform, Tensor, tensor } from '@shuffle/core';
import { cpu, reference } from '@shuffle/kernels';
import { describe, expect, it } from 'vitest';

/*
 * What the fast relu, add, concat, split, flatten and softmaxCrossEntropy do that the conformance suite's
 * small random calls do not reach: relu's branch-free bit masks on special values and on tensors that
 * view part of a larger buffer; concat/split's two NHWC row paths (set() for rows of 48 channels or more, a
 * loop below) at ShuffleNet's channel counts; flatten's NHWC transpose and its copy fast paths; and the
 * loss over 1000 classes with large logits. Moves must equal the reference exactly; arithmetic is
 * compared with the float64 reference.
 */

const layouts: Layout[] = ['NCHW', 'NHWC'];
const same = (a: Tensor, b: Tensor) => {
  expect(a.shape).toEqual(b.shape);
  expect(a.layout).toBe(b.layout);
  expect(Array.from(a.data)).toEqual(Array.from(b.data));
};

describe('cpu relu', () => {
  const specials = [Number.NaN, -0, 0, Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, -1e-45, 1e-45, -3.4e38, 3.4e38, 2, -2];

  it('matches the reference bit for bit on special values (NaN kept, -0 and -Infinity to +0)', () => {
    const x = tensor(specials, [specials.length]);
    // A NaN with its sign bit set, as x86 produces for 0 * Infinity.
    const negativeNaN = new Float32Array(1);
    new Int32Array(negativeNaN.buffer)[0] = 0xffc00000 | 0;
    x.data[0] = negativeNaN[0] as number;
    const y = cpu.relu(x);
    const want = reference.relu(x);
    for (let i = 0; i < specials.length; i++)
      expect(Object.is(y.data[i], want.data[i]), `element ${i}: ${y.data[i]} vs ${want.data[i]}`).toBe(true);
  });

  it('backward passes dy where x > 0 and +0 elsewhere, even where dy is not finite', () => {
    const x = tensor(specials, [specials.length]);
    const dy = tensor(
      specials.map((_, i) => [Number.NaN, Number.POSITIVE_INFINITY, -5, Number.NEGATIVE_INFINITY][i % 4] as number),
      [specials.length],
    );
    const { dx } = cpu.reluBackward(dy, x);
    const want = reference.reluBackward(dy, x).dx;
    for (let i = 0; i < specials.length; i++)
      expect(Object.is(dx.data[i], want.data[i]), `element ${i}: ${dx.data[i]} vs ${want.data[i]}`).toBe(true);
  });

  it.each(layouts)('equals the reference on a ShuffleNet-sized %s tensor that views part of a larger buffer', (layout) => {
    const values = randomUniform([2, 240, 5, 5], { seed: 3, low: -1, high: 1 }).data;
    const buffer = new Float32Array(values.length + 7);
    buffer.set(values, 3);
    const x = new Tensor(buffer.subarray(3, 3 + values.length), [2, 240, 5, 5], layout);
    const dyBuffer = new Float32Array(values.length + 5);
    dyBuffer.set(randomUniform([values.length], { seed: 4, low: -1, high: 1 }).data, 5);
    const dy = new Tensor(dyBuffer.subarray(5), [2, 240, 5, 5], layout);
    same(cpu.relu(x), reference.relu(x));
    same(cpu.reluBackward(dy, x).dx, reference.reluBackward(dy, x).dx);
  });
});

describe('cpu add', () => {
  it.each(layouts)('equals the reference in %s (float32 sums round once either way)', (layout) => {
    const a = randomUniform([2, 120, 7, 7], { seed: 1, low: -1, high: 1, layout });
    const b = randomUniform([2, 120, 7, 7], { seed: 2, low: -1, high: 1, layout });
    same(cpu.add(a, b), reference.add(a, b));
    const dy = randomUniform([2, 120, 7, 7], { seed: 3, low: -1, high: 1, layout });
    const { da, db } = cpu.addBackward(dy, a, b);
    same(da, dy);
    same(db, dy);
    da.data[0] = 42;
    expect(db.data[0]).not.toBe(42);
    expect(dy.data[0]).not.toBe(42);
  });
});

describe.each(layouts)('cpu concat and split in %s', (layout) => {
  const pieces: [string, number[], number, number, number][] = [
    ['ShuffleNet stride-2 unit 24 + 216 at 5x5, batch 2 (loop and set rows)', [24, 216], 2, 5, 5],
    ['240 + 240 at 3x3', [240, 240], 1, 3, 3],
    ['47 + 48 + 49 + 1 channels (both sides of the row threshold)', [47, 48, 49, 1], 2, 3, 2],
    ['one piece', [5], 3, 2, 2],
  ];
  for (const [name, sizes, batch, height, width] of pieces) {
    it(name, () => {
      const xs = sizes.map((c, i) => randomUniform([batch, c, height, width], { seed: 10 + i, low: -1, high: 1, layout }));
      const y = cpu.concat(xs);
      same(y, reference.concat(xs));
      const dy = randomUniform(y.shape, { seed: 20, low: -1, high: 1, layout });
      const wantDxs = reference.concatBackward(dy, xs).dxs;
      cpu.concatBackward(dy, xs).dxs.forEach((dx, i) => {
        same(dx, wantDxs[i] as Tensor);
      });

      const parts = cpu.split(y, sizes);
      parts.forEach((part, i) => {
        same(part, xs[i] as Tensor);
      });
      same(cpu.splitBackward(xs, y, sizes).dx, reference.splitBackward(xs, y, sizes).dx);
    });
  }
});

describe('cpu flatten', () => {
  const shapes: [string, number[], Layout][] = [
    ['NHWC with spatial extent (transpose)', [2, 7, 3, 5], 'NHWC'],
    ['NHWC at 1x1 (copy)', [3, 960, 1, 1], 'NHWC'],
    ['NHWC with one channel (copy)', [2, 1, 4, 3], 'NHWC'],
    ['NCHW (copy)', [2, 6, 3, 2], 'NCHW'],
    ['rank 3', [2, 3, 4], 'NCHW'],
    ['rank 2', [4, 9], 'NCHW'],
  ];
  for (const [name, shape, layout] of shapes) {
    it(name, () => {
      const x = randomUniform(shape, { seed: 5, low: -1, high: 1, ...(shape.length === 4 ? { layout } : {}) });
      const y = cpu.flatten(x);
      same(y, reference.flatten(x));
      // Fresh data: writing the result does not touch x.
      const before = x.data[0];
      y.data[0] = 123;
      expect(x.data[0]).toBe(before);
      const dy = randomUniform(y.shape, { seed: 6, low: -1, high: 1 });
      same(cpu.flattenBackward(dy, x).dx, reference.flattenBackward(dy, x).dx);
    });
  }
});

describe('cpu softmaxCrossEntropy', () => {
  const f64 = (t: Tensor) => t.astype('float64');
  const tolerance = { atol: 5e-5, rtol: 2e-4 };

  it.each([0, 0.1])('1000 classes, batch 4, logits in [-20, 80], label smoothing %s: matches the float64 reference', (labelSmoothing) => {
    // Logits far from 0 on average, so the smoothing term (s / K) sum_k z_k weighs in the loss.
    const logits = randomUniform([4, 1000], { seed: 9, low: -20, high: 80 });
    const labels = [0, 999, 517, 3];
    const options = { labelSmoothing };
    assertClose(
      cpu.softmaxCrossEntropy(logits, labels, options),
      reference.softmaxCrossEntropy(f64(logits), labels, options),
      tolerance,
      'loss',
    );
    const dy = tensor([0.7], []);
    assertClose(
      cpu.softmaxCrossEntropyBackward(dy, logits, labels, options).dlogits,
      reference.softmaxCrossEntropyBackward(f64(dy), f64(logits), labels, options).dlogits,
      { atol: 1e-7, rtol: 2e-4 },
      'dlogits',
    );
  });

  it('a -Infinity logit (probability 0) gives a finite loss and a zero gradient without smoothing', () => {
    const logits = tensor([Number.NEGATIVE_INFINITY, 1, 2, 0.5, Number.NEGATIVE_INFINITY, 3], [2, 3]);
    const loss = cpu.softmaxCrossEntropy(logits, [1, 2]);
    expect(loss.data[0]).toBeCloseTo(reference.softmaxCrossEntropy(logits, [1, 2]).data[0] as number, 6);
    const { dlogits } = cpu.softmaxCrossEntropyBackward(tensor([1], []), logits, [1, 2]);
    expect(dlogits.data[0]).toBe(0);
    assertClose(dlogits, reference.softmaxCrossEntropyBackward(tensor([1], []), logits, [1, 2]).dlogits, tolerance);
  });
});
