/**
 * Gradient checks: for every op spec and every differentiable input, the reference backward in float64
 * against central finite differences of L = sum(dy * forward(x)), on random calls from the spec.
 *
 *   dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / 2h, with error O(h^2) from the Taylor series
 *
 * With h = 1e-6 in float64 the truncation error is ~1e-12 and the rounding error ~1e-16 * |L| / h ~
 * 1e-10 * |L|, far below the tolerance.
 */
import { assertClose, Rng, type Tensor, tensor } from '@shuffle/core';
import { reference } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import type { ConformanceSpec, Output, Sample } from './spec.js';
import { loadSpecs } from './support/load-specs.js';
import { convertSample, outputs, randomGradient } from './support/samples.js';

const specs = await loadSpecs();
const STEP = 1e-6;
/** Elements perturbed per input per call: all of them for small inputs, a random subset otherwise. */
const MAX_PROBES = 24;

describe.each(specs.map((spec) => [spec.op, spec] as const))('%s', (_op, spec) => {
  it.each(spec.differentiable.map((name) => [name] as const))('d%s matches finite differences', (name) => {
    fc.assert(
      fc.property(spec.samples, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (rawSample, seed) => {
        let sample = convertSample(rawSample, 'NCHW', 'float64');
        if (spec.prepareForGradcheck) sample = spec.prepareForGradcheck(sample);
        const dy = randomGradient(spec.forward(reference, sample), seed);
        const analytic = spec.backward(reference, dy, sample)[name];
        if (!analytic) throw new Error(`no gradient for ${name}`);
        const numeric = finiteDifferences(spec, sample, name, dy, analytic, new Rng(seed));
        assertClose(analytic, numeric, { atol: 1e-6, rtol: 1e-5 }, `d${name}`);
      }),
      { numRuns: 12 },
    );
  });
});

/**
 * The numeric gradient at up to MAX_PROBES positions of input `name` (an NCHW float64 tensor, so data
 * position = logical position); the other positions copy `analytic`, so only the probes are compared.
 */
function finiteDifferences(spec: ConformanceSpec, sample: Sample, name: string, dy: Output, analytic: Tensor, rng: Rng): Tensor {
  const x = sample.inputs[name] as Tensor;
  const expected = tensor(analytic.toLayout('NCHW').data, x.shape, 'NCHW', 'float64');
  const positions = [...Array(x.size).keys()];
  const probes = x.size <= MAX_PROBES ? positions : rng.shuffle(positions).slice(0, MAX_PROBES);
  for (const i of probes) {
    const loss = (delta: number) => {
      const shifted = x.clone();
      shifted.data[i] = (shifted.data[i] as number) + delta;
      return dot(dy, spec.forward(reference, { inputs: { ...sample.inputs, [name]: shifted }, options: sample.options }));
    };
    expected.data[i] = (loss(STEP) - loss(-STEP)) / (2 * STEP);
  }
  return expected;
}

function dot(a: Output, b: Output): number {
  const as = outputs(a);
  const bs = outputs(b);
  let sum = 0;
  as.forEach((t, k) => {
    const u = (bs[k] as Tensor).toLayout('NCHW').data;
    const v = t.toLayout('NCHW').data;
    for (let i = 0; i < v.length; i++) sum += (v[i] as number) * (u[i] as number);
  });
  return sum;
}
