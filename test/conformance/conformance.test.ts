/**
 * The op conformance suite: every op spec in specs/ x every backend in backends.ts x both layouts.
 * For each: the hand-checked golden values, random calls against the float64 reference in NCHW (which
 * also shows that the layout never changes a result), the backward on the same calls, and every error
 * case (a clear ShuffleArgumentError, inputs untouched).
 */
import { assertClose, LAYOUTS, ShuffleArgumentError, type Tensor } from '@shuffle/core';
import { reference } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backends } from './backends.js';
import { loadSpecs } from './support/load-specs.js';
import { convertSample, outputs, randomGradient, snapshot } from './support/samples.js';

const specs = await loadSpecs();
const NUM_RUNS = Number(process.env.SHUFFLE_CONFORMANCE_RUNS ?? 30);

describe.each(specs.map((spec) => [spec.op, spec] as const))('%s', (_op, spec) => {
  describe.each(backends.map((entry) => [entry.backend.name, entry] as const))(
    'on %s',
    (_name, { backend, tolerance: defaultTolerance }) => {
      const tolerance = spec.tolerance?.[backend.name] ?? defaultTolerance;

      describe.each(LAYOUTS)('in %s', (layout) => {
        it.each(spec.golden.map((g) => [g.name, g] as const))('golden: %s', (_g, { sample, expected }) => {
          const got = outputs(spec.forward(backend, convertSample(sample, layout, 'float32')));
          const want = outputs(expected);
          expect(got.length).toBe(want.length);
          got.forEach((y, i) => {
            if (y.rank === 4) expect(y.layout).toBe(layout);
            assertClose(y, want[i] as Tensor, tolerance, `output ${i}`);
          });
        });

        it('forward and backward of random calls match the float64 reference in NCHW', () => {
          fc.assert(
            fc.property(spec.samples, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (sample, seed) => {
              const expected = spec.forward(reference, convertSample(sample, 'NCHW', 'float64'));
              const under = convertSample(sample, layout, 'float32');
              const before = snapshot(under);
              const got = spec.forward(backend, under);
              compareOutputs(got, expected, layout, tolerance, 'forward');

              const dy = randomGradient(got, seed);
              const dy64 = randomGradient(expected, seed);
              const grads = spec.backward(backend, dy, under);
              const expectedGrads = spec.backward(reference, dy64, convertSample(sample, 'NCHW', 'float64'));
              for (const name of spec.differentiable) {
                const g = grads[name];
                if (!g) throw new Error(`${spec.op} backward on ${backend.name} returned no gradient for ${name}`);
                compareOutputs(g, expectedGrads[name] as Tensor, layout, tolerance, `d${name}`);
                const input = under.inputs[name];
                if (input) expect(g.shape).toEqual(input.shape);
              }
              for (const [name, data] of before) expect(under.inputs[name]?.data, `${name} was mutated`).toEqual(data);
            }),
            { numRuns: NUM_RUNS },
          );
        });
      });

      it.each(spec.errors.map((e) => [e.name, e] as const))('rejects %s', (_e, { sample, call, message }) => {
        const before = snapshot(sample);
        let thrown: unknown;
        try {
          call(backend, sample);
        } catch (error) {
          thrown = error;
        }
        expect(thrown, 'no error was thrown').toBeInstanceOf(ShuffleArgumentError);
        expect((thrown as Error).message).toMatch(message);
        for (const [name, data] of before) expect(sample.inputs[name]?.data, `${name} was mutated`).toEqual(data);
      });
    },
  );
});

function compareOutputs(
  got: Tensor | Tensor[],
  expected: Tensor | Tensor[],
  layout: string,
  tolerance: { atol: number; rtol: number },
  what: string,
) {
  const g = outputs(got);
  const e = outputs(expected);
  expect(g.length, `${what}: number of outputs`).toBe(e.length);
  g.forEach((y, i) => {
    if (y.rank === 4) expect(y.layout, `${what}: layout`).toBe(layout);
    expect(y.dtype).toBe('float32');
    assertClose(y, e[i] as Tensor, tolerance, `${what}[${i}]`);
  });
}
