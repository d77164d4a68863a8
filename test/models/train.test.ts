import { Rng, type Tensor, tensor } from '@shuffle/core';
import { flatten, linear, linearBackward, reference } from '@shuffle/kernels';
import {
  argmaxRows,
  epochBatches,
  evaluate,
  type ImageDataset,
  type Model,
  makeBatch,
  type Parameter,
  Sgd,
  shuffleNetV1,
  trainEpoch,
  trainingCurvesSvg,
  trainStep,
} from '@shuffle/models';
import { describe, expect, it } from 'vitest';

/** `count` images of `side` x `side`, image i holding the values i*1000 + pixel (so any mix-up shows), labels i % classes. */
function numbered(count: number, side = 4, classes = 3): ImageDataset {
  const pixels = side * side;
  const images = Float32Array.from({ length: count * pixels }, (_, k) => Math.floor(k / pixels) * 1000 + (k % pixels));
  const labels = Int32Array.from({ length: count }, (_, i) => i % classes);
  return { images, labels, size: count, channels: 1, height: side, width: side, classes };
}

/** Tiny separable data: class c has a bright pixel in quadrant c of an 8x8 image, plus seeded noise. */
function quadrants(count: number, seed: number): ImageDataset {
  const rng = new Rng(seed);
  const images = new Float32Array(count * 64);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % 4;
    labels[i] = c;
    for (let p = 0; p < 64; p++) images[i * 64 + p] = 0.2 * rng.uniform();
    const y = (c >> 1) * 4 + 1 + rng.int(2);
    const x = (c & 1) * 4 + 1 + rng.int(2);
    images[i * 64 + y * 8 + x] = 1;
  }
  return { images, labels, size: count, channels: 1, height: 8, width: 8, classes: 4 };
}

/** A linear classifier on the flattened image: the smallest Model there is. */
function linearModel(inputs: number, classes: number): Model {
  const weight: Parameter = {
    name: 'fc.weight',
    kind: 'linear',
    value: tensor(new Float32Array(classes * inputs), [classes, inputs]),
    grad: tensor(new Float32Array(classes * inputs), [classes, inputs]),
  };
  let input: Tensor | null = null;
  return {
    forward(x) {
      input = flatten(x);
      return linear(input, weight.value);
    },
    backward(dLogits) {
      const { dweight } = linearBackward(dLogits, input as Tensor, weight.value);
      weight.grad.data.set(dweight.data);
    },
    parameters: () => [weight],
    buffers: () => [],
  };
}

describe('batches', () => {
  it('makeBatch copies the chosen images and labels into an NCHW tensor', () => {
    const data = numbered(5);
    const batch = makeBatch(data, [3, 0]);
    expect(batch.x.shape).toEqual([2, 1, 4, 4]);
    expect(batch.x.get([0, 0, 1, 2])).toBe(3006);
    expect(batch.x.get([1, 0, 3, 3])).toBe(15);
    expect(Array.from(batch.labels)).toEqual([0, 0]);
    expect(makeBatch(data, [1], { dtype: 'float64' }).x.dtype).toBe('float64');
    expect(() => makeBatch(data, [5])).toThrow(/makeBatch: indices\[0\] expects an integer in \[0, 4\], got 5/);
    expect(() => makeBatch(data, [0], { augment: { maxShift: 1 } })).toThrow(/options.rng expects an Rng/);
    expect(() => makeBatch(data, [0], { augment: { maxShift: 4 }, rng: new Rng(1) })).toThrow(
      /options.augment.maxShift expects an integer in \[0, 3\]/,
    );
  });

  it('augmentation moves each image by at most maxShift pixels, filling with zeros', () => {
    const data = numbered(40, 6);
    const rng = new Rng(3);
    const batch = makeBatch(
      data,
      Array.from({ length: 40 }, (_, i) => i),
      { augment: { maxShift: 2 }, rng },
    );
    const shifts = new Set<string>();
    for (let b = 0; b < 40; b++) {
      // Image b holds b*1000 + (y*6 + x); find the shift that explains the output.
      const found = [-2, -1, 0, 1, 2]
        .flatMap((dy) => [-2, -1, 0, 1, 2].map((dx) => [dy, dx] as const))
        .filter(([dy, dx]) => {
          for (let y = 0; y < 6; y++) {
            for (let x = 0; x < 6; x++) {
              const sy = y - dy;
              const sx = x - dx;
              const want = sy >= 0 && sy < 6 && sx >= 0 && sx < 6 ? b * 1000 + sy * 6 + sx : 0;
              if (batch.x.get([b, 0, y, x]) !== want) return false;
            }
          }
          return true;
        });
      expect(found, `image ${b}`).toHaveLength(1);
      shifts.add(found.join());
    }
    expect(shifts.size).toBeGreaterThan(10);
  });

  it('an epoch visits every image once, in a seeded order that changes between epochs', () => {
    const data = numbered(10);
    const order = (rng: Rng) => [...epochBatches(data, { batchSize: 4, rng })].map((b) => b.indices);
    const rng = new Rng(11);
    const first = order(rng);
    const second = order(rng);
    expect(first.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(first.flat().sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(second.flat()).not.toEqual(first.flat());
    expect(order(new Rng(11))).toEqual(first);
    expect([...epochBatches(data, { batchSize: 4, rng: new Rng(1), dropLast: true })].map((b) => b.indices.length)).toEqual([4, 4]);
    expect([...epochBatches(data, { batchSize: 4 })].map((b) => b.indices)).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
    ]);
    expect(() => [...epochBatches(data, { batchSize: 0 })]).toThrow(/epochBatches: options.batchSize expects a positive integer, got 0/);
  });
});

describe('training', () => {
  it('trainStep: one SGD step on the mean cross-entropy', () => {
    // Zero weights: every logit is 0, the loss is log 3 and each class gets gradient (1/3 - onehot) / N.
    const data = numbered(3, 2);
    const model = linearModel(4, 3);
    const sgd = new Sgd(model.parameters(), { lr: 0.5 });
    const batch = makeBatch(data, [0, 1]);
    const result = trainStep(model, sgd, batch);
    expect(result.loss).toBeCloseTo(Math.log(3), 6);
    expect(result).toMatchObject({ size: 2, lr: 0.5, correct: 1 }); // argmax of equal logits is class 0; image 0 is class 0
    // dW[k, p] = sum_n (1/3 - [k = label_n]) / 2 * x[n, p]; x[0] = [0, 1, 2, 3], x[1] = [1000, 1001, 1002, 1003].
    const w = model.parameters()[0]?.value as Tensor;
    const dW = (k: number, p: number) => ((1 / 3 - (k === 0 ? 1 : 0)) * p + (1 / 3 - (k === 1 ? 1 : 0)) * (1000 + p)) / 2;
    for (const [k, p] of [
      [0, 0],
      [1, 3],
      [2, 2],
    ] as const) {
      expect(w.get([k, p])).toBeCloseTo(-0.5 * dW(k, p), 3);
    }
  });

  it('trainEpoch and evaluate: a linear model learns separable data', () => {
    const train = quadrants(64, 1);
    const test = quadrants(32, 2);
    const model = linearModel(64, 4);
    const sgd = new Sgd(model.parameters(), { lr: 0.5, momentum: 0.9 });
    const rng = new Rng(5);
    const seen: number[] = [];
    let firstStep = 0;
    for (let epoch = 0; epoch < 5; epoch++) {
      const result = trainEpoch(model, sgd, train, { batchSize: 16, rng, firstStep, onStep: (p) => seen.push(p.step) });
      expect(result).toMatchObject({ steps: 4, samples: 64, stopped: false });
      firstStep += result.steps;
    }
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const evaluation = evaluate(model, test, { batchSize: 10 });
    expect(evaluation.accuracy).toBe(1);
    expect(evaluation.total).toBe(32);
    expect(Array.from(evaluation.predictions)).toEqual(Array.from(test.labels));
  });

  it('the schedule sets each step learning rate; shouldStop ends an epoch early', () => {
    const model = linearModel(16, 3);
    const sgd = new Sgd(model.parameters(), { lr: 0.1 });
    const lrs: number[] = [];
    let calls = 0;
    const result = trainEpoch(model, sgd, numbered(12), {
      batchSize: 2,
      rng: new Rng(1),
      firstStep: 10,
      schedule: (step) => step / 1000,
      onStep: (p) => lrs.push(p.lr),
      shouldStop: () => ++calls > 3,
    });
    expect(lrs).toEqual([0.01, 0.011, 0.012]);
    expect(result).toMatchObject({ steps: 3, samples: 6, stopped: true });
  });

  it('argmaxRows takes the first maximum', () => {
    expect(Array.from(argmaxRows(tensor([1, 3, 3, -1, -2, -5], [2, 3])))).toEqual([1, 0]);
  });

  it('is reproducible: the same seeds give bit-identical weights, another seed does not', () => {
    const data = quadrants(24, 3);
    const run = (seed: number) => {
      const model = shuffleNetV1({
        groups: 2,
        channels: { conv1: 4, stages: [8, 16, 32] },
        repeats: [1, 1, 1],
        numClasses: 4,
        inputSize: 8,
        inChannels: 1,
        stem: 'small',
        backend: reference,
        seed,
      });
      const sgd = new Sgd(model.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4, noDecay: ['batchnorm'] });
      const rng = new Rng(seed);
      for (let epoch = 0; epoch < 2; epoch++) {
        trainEpoch(model, sgd, data, { batchSize: 8, rng, firstStep: epoch * 3, labelSmoothing: 0.1, augment: { maxShift: 1 } });
      }
      return [...model.parameters(), ...model.buffers()].map((t) => Array.from(t.value.data));
    };
    const a = run(1);
    expect(run(1)).toEqual(a);
    expect(run(2)).not.toEqual(a);
  });
});

describe('trainingCurvesSvg', () => {
  it('draws both panels with every point and the held-out markers', () => {
    const steps = Array.from({ length: 30 }, (_, i) => ({ step: i, loss: 2 / (i + 1), accuracy: i / 30 }));
    const svg = trainingCurvesSvg({ steps, epochs: [{ epoch: 1, step: 29, testLoss: 0.1, testAccuracy: 0.9 }] }, 'a <b> run');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('a &#60;b&#62; run');
    expect(svg.match(/<polyline /g)).toHaveLength(4);
    expect(svg.match(/<circle /g)).toHaveLength(2);
    const firstLine = /points="([^"]*)"/.exec(svg)?.[1]?.split(' ') ?? [];
    expect(firstLine).toHaveLength(30);
    expect(svg).not.toMatch(/NaN|Infinity|undefined/);
    expect(svg).toContain('<title>90%</title>');
  });
});
