/**
 * The op conformance suite on one gpu.js mode: every op spec in test/conformance/specs/, in both layouts:
 * golden values, random calls (forward and backward) against the float64 reference, and every error
 * case. Every op must have gpu kernels: a spec that calls one without them fails, naming the ops.
 *
 * A spec's forward/backward take a synchronous Backend, so they run on a recording backend first: each
 * call runs on the reference (so the spec's own code sees real results) and is recorded. The calls are
 * then replayed on the gpu, with host tensors uploaded once and each recorded result standing for the
 * gpu's device result (so a spec that chains calls chains them on the device), and whatever the spec
 * returned is read back. Every device tensor is disposed afterwards, and the backend's live count must
 * be back where it was: a kernel that leaks an intermediate fails here.
 */
import { assertClose, LAYOUTS, ShuffleArgumentError, Tensor, type Tolerance } from '@shuffle/core';
import {
  type Backend,
  checkGpuMode,
  createGpuBackend,
  type DeviceTensor,
  type GpuBackend,
  type GpuMode,
  reference,
} from '@shuffle/kernels';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConformanceSpec, Output, Sample } from '../conformance/spec.js';
import { loadSpecs } from '../conformance/support/load-specs.js';
import { convertSample, outputs, randomGradient } from '../conformance/support/samples.js';
import { infrastructureTests } from './infrastructure.js';
import { describeGpuMode } from './support.js';

/**
 * Default float32 tolerance per mode against the float64 reference; a spec may set its own for the
 * backend named `gpu-<mode>`. cpu mode computes in float64 and stores float32, like the reference in
 * float32; the others compute in float32 in the kernel's own order (and headlessgl/webgpu may fuse
 * multiply-adds and divide to within a few ulp), like the fast cpu backend.
 */
export const GPU_TOLERANCES: Record<GpuMode, Tolerance> = {
  cpu: { atol: 1e-5, rtol: 1e-4 },
  webasm: { atol: 5e-5, rtol: 2e-4 },
  headlessgl: { atol: 5e-5, rtol: 2e-4 },
  webgpu: { atol: 5e-5, rtol: 2e-4 },
};

/** Random calls per spec, layout and mode: each new shape compiles new kernels (up to ~150 ms each on headlessgl). */
const NUM_RUNS = Number(process.env.SHUFFLE_GPU_CONFORMANCE_RUNS ?? 3);

interface Call {
  method: string;
  args: unknown[];
  result: unknown;
}

/** A synchronous backend that runs each call on the reference (on copies of its tensors) and records it. */
function recordingBackend(calls: Call[]): Backend {
  return new Proxy({} as Backend, {
    get(_, method) {
      if (method === 'name') return 'gpu-recorder';
      const op = (reference as unknown as Record<string | symbol, unknown>)[method];
      if (typeof op !== 'function') return undefined;
      return (...args: unknown[]) => {
        const result = op.apply(reference, copyTensors(args));
        calls.push({ method: String(method), args, result });
        return result;
      };
    },
  });
}

function copyTensors(value: unknown): unknown {
  if (value instanceof Tensor) return value.clone();
  if (Array.isArray(value)) return value.map(copyTensors);
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, copyTensors(v)]));
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A DeviceTensor (the class itself is not exported, so that importing @shuffle/kernels loads no gpu code). */
export function isDevice(value: unknown): value is DeviceTensor {
  return typeof value === 'object' && value !== null && !(value instanceof Tensor) && 'dispose' in value && 'read' in value;
}

/** Every device tensor in a gpu result. */
function deviceTensorsIn(value: unknown, found: DeviceTensor[] = []): DeviceTensor[] {
  if (isDevice(value)) found.push(value);
  else if (Array.isArray(value)) for (const v of value) deviceTensorsIn(v, found);
  else if (isPlainObject(value)) for (const v of Object.values(value)) deviceTensorsIn(v, found);
  return found;
}

/** The methods a spec's forward and backward call, recorded on one sample. */
export function methodsOf(spec: ConformanceSpec): Set<string> {
  const calls: Call[] = [];
  const sample = fc.sample(spec.samples, { numRuns: 1, seed: 1 })[0] as Sample<unknown>;
  const y = spec.forward(recordingBackend(calls), sample);
  spec.backward(recordingBackend(calls), randomGradient(y, 1), sample);
  return new Set(calls.map((c) => c.method));
}

/**
 * Runs `body` (a spec's forward or backward) on the gpu as described at the top, and returns its
 * result with every gpu value read back to the host.
 */
export async function onGpu<T>(gpu: GpuBackend, body: (backend: Backend) => T): Promise<T> {
  const liveBefore = gpu.stats().liveTensors;
  const calls: Call[] = [];
  const returned = body(recordingBackend(calls));
  const counterpart = new Map<object, unknown>();
  const owned: DeviceTensor[] = [];
  const toDevice = (value: unknown): unknown => {
    if (typeof value === 'object' && value !== null && counterpart.has(value)) return counterpart.get(value);
    if (value instanceof Tensor) {
      const d = gpu.upload(value);
      owned.push(d);
      counterpart.set(value, d);
      return d;
    }
    if (Array.isArray(value)) return value.map(toDevice);
    if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toDevice(v)]));
    return value;
  };
  const link = (recorded: unknown, got: unknown): void => {
    if (typeof recorded !== 'object' || recorded === null) return;
    counterpart.set(recorded, got);
    if (Array.isArray(recorded)) {
      expect(Array.isArray(got) && got.length === recorded.length, 'gpu result has the reference result structure').toBe(true);
      for (const [i, r] of recorded.entries()) link(r, (got as unknown[])[i]);
    } else if (isPlainObject(recorded)) {
      for (const [k, r] of Object.entries(recorded)) link(r, (got as Record<string, unknown>)[k]);
    } else if (recorded instanceof Tensor) {
      expect(isDevice(got), 'a tensor result is a DeviceTensor on the gpu').toBe(true);
    }
  };
  const toHost = async (value: unknown): Promise<unknown> => {
    if (value instanceof Tensor) {
      const d = counterpart.get(value);
      return d === undefined ? value : (d as DeviceTensor).read();
    }
    if (Array.isArray(value)) return Promise.all(value.map(toHost));
    if (isPlainObject(value))
      return Object.fromEntries(await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await toHost(v)])));
    return value;
  };
  try {
    for (const call of calls) {
      const op = (gpu as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[call.method];
      if (!op) throw new Error(`the gpu backend has no method ${call.method}`);
      const got = await op(...call.args.map(toDevice));
      owned.push(...deviceTensorsIn(got));
      link(call.result, got);
    }
    return (await toHost(returned)) as T;
  } finally {
    for (const d of owned) d.dispose();
    expect(gpu.stats().liveTensors, 'device tensors left alive by the ops').toBe(liveBefore);
  }
}

/**
 * Runs an error case's calls on the gpu with the sample's host tensors as arguments, and returns what
 * the first failing gpu call rejected with (undefined when none did). Each call also runs on the
 * reference, so that the case's code sees results, and stops where the reference throws.
 */
export async function gpuError(gpu: GpuBackend, call: (backend: Backend) => unknown): Promise<unknown> {
  const pending: Promise<unknown>[] = [];
  const proxy = new Proxy({} as Backend, {
    get(_, method) {
      if (method === 'name') return gpu.name;
      const op = (reference as unknown as Record<string | symbol, unknown>)[method];
      if (typeof op !== 'function') return undefined;
      return (...args: unknown[]) => {
        const gpuOp = (gpu as unknown as Record<string | symbol, (...a: unknown[]) => Promise<unknown>>)[method] as (
          ...a: unknown[]
        ) => Promise<unknown>;
        pending.push(Promise.resolve().then(() => gpuOp(...args)));
        return op.apply(reference, copyTensors(args));
      };
    },
  });
  try {
    call(proxy);
  } catch {
    // the reference's verdict; the gpu's is below
  }
  let thrown: unknown;
  for (const p of pending) {
    try {
      for (const d of deviceTensorsIn(await p)) d.dispose();
    } catch (error) {
      thrown ??= error;
    }
  }
  return thrown;
}

function compareOutputs(got: Output, expected: Output, layout: string, tolerance: Tolerance, what: string): void {
  const g = outputs(got);
  const e = outputs(expected);
  expect(g.length, `${what}: number of outputs`).toBe(e.length);
  g.forEach((y, i) => {
    if (y.rank === 4) expect(y.layout, `${what}: layout`).toBe(layout);
    expect(y.dtype).toBe('float32');
    assertClose(y, e[i] as Tensor, tolerance, `${what}[${i}]`);
  });
}

/** The suite for every spec, on a backend the caller opened (and destroys). */
export function conformanceTests(mode: GpuMode, gpu: () => GpuBackend, specs: readonly ConformanceSpec[]): void {
  for (const spec of specs) {
    const missing = [...methodsOf(spec)].filter((m) => !gpu().supports(m));
    if (missing.length > 0) {
      // Every op of the Backend has gpu kernels (issue 7): an op added without them fails here, naming them.
      it(`${spec.op} has gpu kernels`, () => {
        throw new Error(`${spec.op}: no gpu kernel for ${missing.join(', ')} on ${mode}`);
      });
      continue;
    }
    describe(spec.op, () => {
      const tolerance = () => spec.tolerance?.[gpu().name] ?? GPU_TOLERANCES[mode];

      describe.each(LAYOUTS)('in %s', (layout) => {
        it.each(spec.golden.map((g) => [g.name, g] as const))('golden: %s', async (_name, { sample, expected }) => {
          const got = await onGpu(gpu(), (b) => spec.forward(b, convertSample(sample, layout, 'float32')));
          compareOutputs(got, expected, layout, tolerance(), 'golden');
        });

        it('forward and backward of random calls match the float64 reference', async () => {
          await fc.assert(
            fc.asyncProperty(spec.samples, fc.integer({ min: 0, max: 2 ** 31 - 1 }), async (sample, seed) => {
              const sample64 = convertSample(sample, 'NCHW', 'float64');
              const expected = spec.forward(reference, sample64);
              const under = convertSample(sample, layout, 'float32');
              const got = await onGpu(gpu(), (b) => spec.forward(b, under));
              compareOutputs(got, expected, layout, tolerance(), 'forward');

              const dy = randomGradient(got, seed);
              const grads = await onGpu(gpu(), (b) => spec.backward(b, dy, under));
              const expectedGrads = spec.backward(reference, randomGradient(expected, seed), sample64);
              for (const name of spec.differentiable) {
                const g = grads[name];
                if (!g) throw new Error(`${spec.op} backward on ${gpu().name} returned no gradient for ${name}`);
                compareOutputs(g, expectedGrads[name] as Tensor, layout, tolerance(), `d${name}`);
              }
            }),
            { numRuns: NUM_RUNS },
          );
        });
      });

      it.each(spec.errors.map((e) => [e.name, e] as const))('rejects %s', async (_name, { sample, call, message }) => {
        const thrown = await gpuError(gpu(), (b) => call(b, sample));
        expect(thrown, 'no gpu call rejected').toBeInstanceOf(ShuffleArgumentError);
        expect((thrown as Error).message).toMatch(message);
      });
    });
  }
}

/**
 * One mode's whole file: opens the backend (or lists the mode as skipped, or failed when required, with
 * the reason), runs the conformance suite and the infrastructure tests, and destroys the backend.
 * SHUFFLE_GPU_STATS=1 prints the compile and run times per kernel at the end.
 */
export async function gpuConformanceFile(mode: GpuMode): Promise<void> {
  const status = await checkGpuMode(mode);
  const backend = status.available ? await createGpuBackend({ mode }) : undefined;
  const gpu = () => backend as GpuBackend;
  const specs = await loadSpecs();
  await describeGpuMode(mode, () => {
    afterAll(async () => {
      if (process.env.SHUFFLE_GPU_STATS) printStats(gpu());
      await backend?.destroy();
    });
    describe('conformance', () => conformanceTests(mode, gpu, specs));
    describe('infrastructure', () => infrastructureTests(mode, gpu));
  });
}

function printStats(gpu: GpuBackend): void {
  const s = gpu.stats();
  const byName = new Map<string, { kernels: number; compileMs: number; runs: number; runMs: number }>();
  for (const k of s.byKernel) {
    const e = byName.get(k.name) ?? { kernels: 0, compileMs: 0, runs: 0, runMs: 0 };
    e.kernels++;
    e.compileMs += k.compileMs;
    e.runs += k.runs;
    e.runMs += k.runMs;
    byName.set(k.name, e);
  }
  const lines = [...byName].map(
    ([name, e]) =>
      `${name.padEnd(24)} ${String(e.kernels).padStart(4)} kernels  compile ${(e.compileMs / e.kernels).toFixed(1).padStart(7)} ms each  ` +
      `run ${e.runs > e.kernels ? ((e.runMs / (e.runs - e.kernels)) * 1000).toFixed(0).padStart(6) : '     -'} us each (${e.runs} runs)`,
  );
  console.log(
    `[${s.mode}] ${s.kernels} kernels, compile ${s.compileMs.toFixed(0)} ms, ${s.runs} runs, run ${s.runMs.toFixed(0)} ms, ${s.reads} reads ${s.readMs.toFixed(0)} ms\n${lines.join('\n')}`,
  );
}
