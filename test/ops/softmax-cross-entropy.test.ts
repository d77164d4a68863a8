import { full, randomUniform, tensor } from '@shuffle/core';
import { softmaxCrossEntropy, softmaxCrossEntropyBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

/** logits [N, K] in float64, labels, and a smoothing that is 0 half the time. */
const calls = fc.record({ batch: fc.integer({ min: 1, max: 4 }), classes: fc.integer({ min: 1, max: 6 }) }).chain(({ batch, classes }) =>
  fc.record({
    logits: fc.integer().map((seed) => randomUniform([batch, classes], { seed, low: -5, high: 5, dtype: 'float64' })),
    labels: fc.array(fc.integer({ min: 0, max: classes - 1 }), { minLength: batch, maxLength: batch }),
    labelSmoothing: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.95, noNaN: true })),
  }),
);

const one = tensor([1], [], 'NCHW', 'float64');

describe('softmaxCrossEntropy', () => {
  it('returns a 0-D tensor in the dtype of the logits', () => {
    const loss = softmaxCrossEntropy(randomUniform([3, 4], { seed: 1 }), [0, 1, 2]);
    expect(loss.shape).toEqual([]);
    expect(loss.size).toBe(1);
    expect(loss.dtype).toBe('float32');
  });

  it('gives log(classes) for uniform logits, whatever the labels, smoothing and common value', () => {
    fc.assert(
      fc.property(calls, fc.double({ min: -50, max: 50, noNaN: true }), ({ logits, labels, labelSmoothing }, value) => {
        const loss = softmaxCrossEntropy(full(logits.shape, value, { dtype: 'float64' }), labels, { labelSmoothing });
        expect(loss.data[0]).toBeCloseTo(Math.log(logits.shape[1] as number), 12);
      }),
    );
  });

  it('is, without smoothing, the mean of -log softmax(z)[label] computed naively', () => {
    fc.assert(
      fc.property(calls, ({ logits, labels }) => {
        const [batch, classes] = logits.shape as [number, number];
        let expected = 0;
        for (let n = 0; n < batch; n++) {
          const row = Array.from(logits.data.subarray(n * classes, (n + 1) * classes));
          const p = Math.exp(row[labels[n] as number] as number) / row.reduce((s, z) => s + Math.exp(z), 0);
          expected -= Math.log(p) / batch;
        }
        expect(softmaxCrossEntropy(logits, labels).data[0]).toBeCloseTo(expected, 12);
      }),
    );
  });

  it('does not change when a constant is added to a row of logits', () => {
    fc.assert(
      fc.property(calls, fc.double({ min: -100, max: 100, noNaN: true }), fc.nat(), ({ logits, labels, labelSmoothing }, shift, r) => {
        const [batch, classes] = logits.shape as [number, number];
        const row = r % batch;
        const shifted = logits.clone();
        for (let k = 0; k < classes; k++) shifted.data[row * classes + k] = (shifted.data[row * classes + k] as number) + shift;
        const before = softmaxCrossEntropy(logits, labels, { labelSmoothing }).data[0] as number;
        expect(softmaxCrossEntropy(shifted, labels, { labelSmoothing }).data[0]).toBeCloseTo(before, 9);
      }),
    );
  });

  it('has a gradient whose every row sums to zero (p and the target both sum to 1)', () => {
    fc.assert(
      fc.property(calls, fc.double({ min: -3, max: 3, noNaN: true }), ({ logits, labels, labelSmoothing }, dy) => {
        const [batch, classes] = logits.shape as [number, number];
        const { dlogits } = softmaxCrossEntropyBackward(tensor([dy], [], 'NCHW', 'float64'), logits, labels, { labelSmoothing });
        expect(dlogits.shape).toEqual(logits.shape);
        for (let n = 0; n < batch; n++) {
          let sum = 0;
          for (let k = 0; k < classes; k++) sum += dlogits.data[n * classes + k] as number;
          expect(sum).toBeCloseTo(0, 12);
        }
      }),
    );
  });

  it('gives (softmax - onehot) / N at dy = 1: uniform logits on 4 classes, batch of 2', () => {
    const { dlogits } = softmaxCrossEntropyBackward(one, full([2, 4], 0, { dtype: 'float64' }), [1, 3]);
    // p = 1/4 everywhere; divided by N = 2: 1/8 off the label, (1/4 - 1)/2 = -3/8 on it.
    expect(Array.from(dlogits.data)).toEqual([0.125, -0.375, 0.125, 0.125, 0.125, 0.125, 0.125, -0.375]);
  });

  it('takes labels as an Int32Array or a plain array alike', () => {
    fc.assert(
      fc.property(calls, ({ logits, labels, labelSmoothing }) => {
        const plain = softmaxCrossEntropy(logits, labels, { labelSmoothing });
        const typed = softmaxCrossEntropy(logits, Int32Array.from(labels), { labelSmoothing });
        expect(typed.data[0]).toBe(plain.data[0]);
      }),
    );
  });

  it('stays finite for huge logits and ignores a -Infinity logit (probability 0) off the label', () => {
    const huge = tensor([1e4, -1e4, 0, 3e4], [2, 2], 'NCHW', 'float64');
    const loss = softmaxCrossEntropy(huge, [1, 0]);
    // Row 0 loses 2e4 (lse = 1e4), row 1 loses 3e4; the mean is 2.5e4.
    expect(loss.data[0]).toBeCloseTo(2.5e4, 8);
    const { dlogits } = softmaxCrossEntropyBackward(one, huge, [1, 0]);
    expect(Array.from(dlogits.data)).toEqual([0.5, -0.5, -0.5, 0.5]);

    const withMinusInfinity = tensor([Math.log(3), Number.NEGATIVE_INFINITY, 0], [1, 3], 'NCHW', 'float64');
    expect(softmaxCrossEntropy(withMinusInfinity, [0]).data[0]).toBeCloseTo(Math.log(4 / 3), 14);
    const { dlogits: d } = softmaxCrossEntropyBackward(one, withMinusInfinity, [0]);
    expect(Array.from(d.data).map((v) => Number(v.toFixed(12)))).toEqual([-0.25, 0, 0.25]);
  });

  it('scales the gradient by dy', () => {
    const logits = randomUniform([3, 5], { seed: 9, dtype: 'float64' });
    const base = softmaxCrossEntropyBackward(one, logits, [4, 0, 2], { labelSmoothing: 0.1 }).dlogits;
    const scaled = softmaxCrossEntropyBackward(tensor([-2.5], [], 'NCHW', 'float64'), logits, [4, 0, 2], {
      labelSmoothing: 0.1,
    }).dlogits;
    scaled.data.forEach((v, i) => {
      expect(v).toBeCloseTo(-2.5 * (base.data[i] as number), 14);
    });
  });
});
