import { tensor } from '@shuffle/core';
import type { ParameterKind } from '@shuffle/models';
import { cosineDecay, linearDecay, Sgd } from '@shuffle/models';
import { describe, expect, it } from 'vitest';

/** A float64 parameter (so hand-computed decimals compare tightly) with its gradient. */
function param(name: string, kind: ParameterKind, values: number[], grads: number[] = values.map(() => 0)) {
  return {
    name,
    kind,
    value: tensor(values, [values.length], 'NCHW', 'float64'),
    grad: tensor(grads, [grads.length], 'NCHW', 'float64'),
  };
}

function expectValues(actual: ArrayLike<number>, expected: number[]) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i] as number, 12);
}

describe('Sgd', () => {
  it('plain gradient descent: w = w - lr * g', () => {
    const p = param('w', 'conv', [2, -1], [0.5, -4]);
    new Sgd([p], { lr: 0.1 }).step();
    expectValues(p.value.data, [1.95, -0.6]);
  });

  it('momentum: buf = mu * buf + g, w = w - lr * buf (buf starts at g)', () => {
    // g = 1 every step, mu = 0.9, lr = 0.1: buf = 1, 1.9, 2.71; w = -0.1, -0.29, -0.561.
    const p = param('w', 'conv', [0], [1]);
    const sgd = new Sgd([p], { lr: 0.1, momentum: 0.9 });
    const seen: number[] = [];
    for (let t = 0; t < 3; t++) {
      sgd.step();
      seen.push(p.value.data[0] as number);
    }
    expectValues(seen, [-0.1, -0.29, -0.561]);
    expectValues(sgd.momentumBuffer('w') as Float64Array, [2.71]);
    expect(sgd.steps).toBe(3);
  });

  it('Nesterov: the update is g + mu * buf', () => {
    // buf = 1 then 1.9; updates 1 + 0.9 = 1.9 then 1 + 1.71 = 2.71; w = -0.19, -0.461.
    const p = param('w', 'conv', [0], [1]);
    const sgd = new Sgd([p], { lr: 0.1, momentum: 0.9, nesterov: true });
    sgd.step();
    expectValues(p.value.data, [-0.19]);
    sgd.step();
    expectValues(p.value.data, [-0.461]);
  });

  it('reads the gradient afresh at each step', () => {
    // mu = 0.5: buf = 2, then 0.5 * 2 - 4 = -3; w = 1 - 0.1 * 2 = 0.8, then 0.8 + 0.3 = 1.1.
    const p = param('w', 'linear', [1], [2]);
    const sgd = new Sgd([p], { lr: 0.1, momentum: 0.5 });
    sgd.step();
    p.grad.data[0] = -4;
    sgd.step();
    expectValues(p.value.data, [1.1]);
  });

  it('weight decay is added to the gradient before the momentum', () => {
    // w = 1, g = 0, lambda = 0.1, lr = 0.5, mu = 0.5: g' = 0.1, buf = 0.1, w = 0.95;
    // g' = 0.095, buf = 0.05 + 0.095 = 0.145, w = 0.95 - 0.0725 = 0.8775.
    const p = param('w', 'conv', [1]);
    const sgd = new Sgd([p], { lr: 0.5, momentum: 0.5, weightDecay: 0.1 });
    sgd.step();
    expectValues(p.value.data, [0.95]);
    sgd.step();
    expectValues(p.value.data, [0.8775]);
  });

  it('skips weight decay for the excluded kinds only', () => {
    const conv = param('conv.weight', 'conv', [1]);
    const depthwise = param('dw.weight', 'depthwise', [1]);
    const gamma = param('bn.weight', 'batchnorm', [1]);
    const bias = param('fc.bias', 'bias', [1]);
    const sgd = new Sgd([conv, depthwise, gamma, bias], { lr: 0.5, weightDecay: 0.1, noDecay: ['batchnorm', 'depthwise'] });
    sgd.step();
    expectValues(conv.value.data, [0.95]);
    expectValues(depthwise.value.data, [1]);
    expectValues(gamma.value.data, [1]);
    expectValues(bias.value.data, [0.95]);
    expect(sgd.decays(gamma)).toBe(false);
    expect(sgd.decays(conv)).toBe(true);
  });

  it('step(lr) overrides the learning rate for that step; lr can be set', () => {
    const p = param('w', 'conv', [0], [1]);
    const sgd = new Sgd([p], { lr: 0.1 });
    sgd.step(0.5);
    expectValues(p.value.data, [-0.5]);
    sgd.lr = 0.25;
    sgd.step();
    expectValues(p.value.data, [-0.75]);
  });

  it('float32 parameters are updated in float32 storage', () => {
    const p = { name: 'w', kind: 'conv' as const, value: tensor([0.1], [1]), grad: tensor([0.3], [1]) };
    new Sgd([p], { lr: 0.1 }).step();
    expect(p.value.data[0]).toBe(Math.fround(Math.fround(0.1) - 0.1 * Math.fround(0.3)));
  });

  it('rejects bad options and parameters at once', () => {
    const p = param('w', 'conv', [1]);
    expect(() => new Sgd([p], { lr: -1 })).toThrow(/Sgd: options.lr expects a finite number >= 0, got -1/);
    expect(() => new Sgd([p], { lr: Number.NaN })).toThrow(/options.lr/);
    expect(() => new Sgd([p], { lr: 0.1, momentum: 1 })).toThrow(/options.momentum expects a number in \[0, 1\)/);
    expect(() => new Sgd([p], { lr: 0.1, nesterov: true })).toThrow(/options.nesterov expects momentum > 0/);
    expect(() => new Sgd([p], { lr: 0.1, weightDecay: -0.1 })).toThrow(/options.weightDecay/);
    expect(() => new Sgd([p], { lr: 0.1, noDecay: ['bn' as ParameterKind] })).toThrow(
      /options.noDecay expects an array of parameter kinds/,
    );
    expect(() => new Sgd([], { lr: 0.1 })).toThrow(/parameters expects a non-empty array/);
    expect(() => new Sgd([p, param('w', 'conv', [2])], { lr: 0.1 })).toThrow(
      /parameters\[1\].name expects a name no other parameter has, got w/,
    );
    expect(() => new Sgd([{ ...p, kind: 'weird' as ParameterKind }], { lr: 0.1 })).toThrow(/parameters\[0\].kind/);
    const mismatched = { ...p, grad: tensor([1, 2], [2], 'NCHW', 'float64') };
    expect(() => new Sgd([mismatched], { lr: 0.1 })).toThrow(
      /parameters\[0\].grad expects the shape, layout and dtype of the value \(w: \[1\]/,
    );
    const sgd = new Sgd([p], { lr: 0.1 });
    expect(() => sgd.step(Number.POSITIVE_INFINITY)).toThrow(/Sgd.step: lr expects a finite number >= 0/);
    expect(p.value.data[0]).toBe(1);
    expect(() => sgd.momentumBuffer('nope')).toThrow(/Sgd.momentumBuffer: name/);
  });
});

describe('learning-rate schedules', () => {
  const run = (schedule: (t: number) => number, steps: number) => Array.from({ length: steps }, (_, t) => schedule(t));

  it('linearDecay falls in equal steps to 0 and stays there', () => {
    expectValues(run(linearDecay({ lr: 1, totalSteps: 4 }), 6), [1, 0.75, 0.5, 0.25, 0, 0]);
  });

  it('linearDecay to a floor', () => {
    expectValues(run(linearDecay({ lr: 1, totalSteps: 4, floor: 0.2 }), 5), [1, 0.8, 0.6, 0.4, 0.2]);
  });

  it('linearDecay after a linear warmup', () => {
    expectValues(run(linearDecay({ lr: 1, totalSteps: 6, warmupSteps: 2 }), 7), [0.5, 1, 1, 0.75, 0.5, 0.25, 0]);
  });

  it('cosineDecay follows half a cosine', () => {
    // (1 + cos(pi/4)) / 2 = 0.853553390593..., (1 + cos(3pi/4)) / 2 = 0.146446609406...
    expectValues(run(cosineDecay({ lr: 1, totalSteps: 4 }), 5), [1, 0.8535533905932737, 0.5, 0.14644660940672624, 0]);
  });

  it('cosineDecay with warmup and a floor', () => {
    // floor + 0.9 * (the values above), after one warmup step.
    expectValues(
      run(cosineDecay({ lr: 1, totalSteps: 5, warmupSteps: 1, floor: 0.1 }), 6),
      [1, 1, 0.8681980515339464, 0.55, 0.23180194846605362, 0.1],
    );
  });

  it('rejects bad options and steps', () => {
    expect(() => linearDecay({ lr: 0, totalSteps: 4 })).toThrow(/linearDecay: options.lr expects a finite number > 0, got 0/);
    expect(() => cosineDecay({ lr: 1, totalSteps: 0 })).toThrow(/cosineDecay: options.totalSteps expects a positive integer/);
    expect(() => cosineDecay({ lr: 1, totalSteps: 4, floor: 2 })).toThrow(/options.floor expects a number in \[0, lr = 1\]/);
    expect(() => linearDecay({ lr: 1, totalSteps: 4, warmupSteps: 4 })).toThrow(
      /options.warmupSteps expects an integer in \[0, totalSteps - 1 = 3\]/,
    );
    expect(() => linearDecay({ lr: 1, totalSteps: 4 })(-1)).toThrow(/linearDecay: step expects a non-negative integer, got -1/);
    expect(() => cosineDecay({ lr: 1, totalSteps: 4 })(0.5)).toThrow(/step/);
  });
});
