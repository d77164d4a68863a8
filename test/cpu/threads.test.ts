import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Layout, randomUniform, ShuffleArgumentError, type Tensor } from '@shuffle/core';
import { type Conv2dOptions, cpu, getNumThreads, type Padding, setNumThreads } from '@shuffle/kernels';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  jobArgs,
  PARALLEL_MIN_MACS,
  PARTS_PER_THREAD,
  parallelJobs,
  partsFor,
  probeTask,
  runParallel,
  setParallelMinMacs,
  setThreadPlatform,
  setThreadTimeouts,
  sharedF32,
} from '../../packages/kernels/src/common/threads.js';
import { nodeThreadPlatform } from '../../packages/kernels/src/common/threads-node.js';

/*
 * The worker pool of the fast CPU kernels: setNumThreads' contract, results bit-identical to one thread
 * on every split path (1x1 grouped, im2col, linear; forward and backward; both layouts), failures that
 * come back as exceptions instead of hangs, and a threaded script that still exits at once.
 *
 * The identity cases run with the split threshold lowered to 0, so that small and awkward shapes
 * (parts smaller than a tile, empty parts, uneven channel ranges) are split too; one case keeps the real
 * threshold at a ShuffleNet shape.
 */

afterEach(() => {
  setParallelMinMacs(undefined);
  setThreadTimeouts({ startupMs: 60_000, jobMs: 30_000 });
});
afterAll(() => setNumThreads(1));

/** Indices where two float arrays differ at all (bit for bit, so -0 against 0 counts, NaN against NaN does not). */
function differences(a: Tensor, b: Tensor): number {
  expect(b.shape).toEqual(a.shape);
  expect(b.layout).toBe(a.layout);
  const x = new Uint32Array(a.data.buffer, a.data.byteOffset, a.data.length);
  const y = new Uint32Array(b.data.buffer, b.data.byteOffset, b.data.length);
  let count = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) count++;
  return count;
}

/**
 * Runs `compute` unsplit (threshold out of reach: the one-thread code path), then split at `threshold`
 * multiply-adds (0: always) on the threads set, checks that it was split and gave the same bits. The
 * pool stays up between the two, which keeps the suite fast (a worker takes ~1 s to start under tsx here).
 */
function expectIdentical(compute: () => Tensor[], threshold: number | undefined = 0): void {
  setParallelMinMacs(Number.POSITIVE_INFINITY);
  const single = compute();
  setParallelMinMacs(threshold);
  const before = parallelJobs();
  const split = compute();
  expect(parallelJobs()).toBeGreaterThan(before);
  expect(split.length).toBe(single.length);
  for (const [i, t] of single.entries()) expect(differences(t, split[i] as Tensor)).toBe(0);
}

describe('setNumThreads', () => {
  it('defaults to 1 and reports what was set', () => {
    expect(getNumThreads()).toBe(1);
    setNumThreads(2);
    expect(getNumThreads()).toBe(2);
    setNumThreads(1);
    expect(getNumThreads()).toBe(1);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 65, '2', undefined])('rejects %s', (n) => {
    expect(() => setNumThreads(n as number)).toThrow(ShuffleArgumentError);
    expect(() => setNumThreads(n as number)).toThrow(/^setNumThreads: n expects an integer from 1 to 64, got /);
    expect(getNumThreads()).toBe(1);
  });
});

describe('the pool', () => {
  const probe = (mode: number, parts = 2, busyMs = 0) => {
    const slot = sharedF32('threads.probe', 64).fill(0);
    const args = jobArgs(2);
    args[0] = mode;
    args[1] = busyMs;
    runParallel(probeTask, parts);
    return Array.from(slot.subarray(0, parts));
  };
  /** Who ran each part of the last probe: 1 the main thread, 2 a worker. */
  const runners = (parts: number) => Array.from(sharedF32('threads.probe', 64).subarray(32, 32 + parts));

  it('runs part 0 here and part t on worker t', () => {
    setNumThreads(3);
    expect(probe(0, 3)).toEqual([1, 2, 3]);
    expect(runners(3)).toEqual([1, 2, 2]);
    setNumThreads(2);
    expect(probe(0, 2)).toEqual([1, 2]);
    expect(runners(2)).toEqual([1, 2]);
  });

  it('runs every part when there are more parts than threads, the idle thread claiming the rest', () => {
    setNumThreads(2);
    expect(probe(0, 7)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // The main thread holds on to part 0 until parts 1 to 6 are done: the worker claimed them all.
    expect(probe(4, 7, 20_000)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(runners(7)).toEqual([1, 2, 2, 2, 2, 2, 2]);
    // With one thread, runParallel runs the parts here, in order.
    setNumThreads(1);
    expect(probe(0, 5)).toEqual([1, 2, 3, 4, 5]);
    expect(runners(5)).toEqual([1, 1, 1, 1, 1]);
  });

  it('cuts a large product into a few parts per thread, a small one not at all', () => {
    setNumThreads(2);
    expect(partsFor(PARALLEL_MIN_MACS - 1)).toBe(1);
    expect(partsFor(PARALLEL_MIN_MACS)).toBe(4);
    expect(partsFor(100 * PARALLEL_MIN_MACS)).toBe(2 * PARTS_PER_THREAD);
    setNumThreads(1);
    expect(partsFor(100 * PARALLEL_MIN_MACS)).toBe(1);
  });

  it('turns an exception in a worker into one here, and stays usable', () => {
    setNumThreads(2);
    expect(() => probe(1)).toThrow(/threads\.probe part 1 failed in its worker: forced failure in a worker/);
    expect(probe(0)).toEqual([1, 2]);
  });

  it('reports a worker that exits during a job, then starts a fresh one', () => {
    setNumThreads(2);
    const start = performance.now();
    expect(() => probe(3)).toThrow(/the worker exited \(code 7\)/);
    expect(performance.now() - start).toBeLessThan(10_000);
    expect(probe(0)).toEqual([1, 2]);
  });

  it('gives up on a worker that never answers after the guard time', () => {
    setNumThreads(2);
    setThreadTimeouts({ jobMs: 300 });
    const start = performance.now();
    expect(() => probe(2)).toThrow(/got no answer from its worker within 300 ms/);
    expect(performance.now() - start).toBeLessThan(5_000);
    setThreadTimeouts({ jobMs: 30_000 });
    expect(probe(0)).toEqual([1, 2]);
  });

  it('reports a worker that cannot load its entry', () => {
    setNumThreads(2);
    setThreadPlatform(nodeThreadPlatform(new URL('./no-such-worker.ts', import.meta.url)));
    try {
      expect(() => probe(0)).toThrow(/worker 1 failed to start: .*no-such-worker/);
    } finally {
      setThreadPlatform(undefined);
    }
    expect(probe(0)).toEqual([1, 2]);
  });
});

describe.each([2, 3])('results are bit-identical with and without threads (%i threads)', (threads) => {
  beforeAll(() => setNumThreads(threads));

  interface ConvCase {
    name: string;
    batch: number;
    inChannels: number;
    outChannels: number;
    size: [number, number];
    kernel: number;
    stride?: number;
    padding?: Padding;
    dilation?: number;
    groups?: number;
    bias?: boolean;
    /** Store the weight in the other layout than x. */
    crossWeight?: boolean;
  }

  const convCases: ConvCase[] = [
    { name: 'grouped 1x1 240->60 g=3', batch: 2, inChannels: 240, outChannels: 60, size: [5, 6], kernel: 1, groups: 3 },
    { name: 'grouped 1x1 120->480 g=3, bias', batch: 1, inChannels: 120, outChannels: 480, size: [7, 7], kernel: 1, groups: 3, bias: true },
    { name: '1x1 24->54, odd pixels', batch: 3, inChannels: 24, outChannels: 54, size: [3, 3], kernel: 1, bias: true },
    { name: '1x1 600->10 (two K blocks)', batch: 1, inChannels: 600, outChannels: 10, size: [3, 5], kernel: 1 },
    { name: 'stem 3x3 s2 3->24', batch: 2, inChannels: 3, outChannels: 24, size: [15, 17], kernel: 3, stride: 2, padding: 1, bias: true },
    { name: '3x3 3->8 over two im2col chunks', batch: 1, inChannels: 3, outChannels: 8, size: [60, 61], kernel: 3, padding: 1 },
    {
      name: '3x3 dilated 16->12 g=2, weight in the other layout',
      batch: 1,
      inChannels: 16,
      outChannels: 12,
      size: [9, 11],
      kernel: 3,
      padding: 2,
      dilation: 2,
      groups: 2,
      crossWeight: true,
    },
    {
      name: '5x5 s3 14->8 g=2 (7 channels per group)',
      batch: 2,
      inChannels: 14,
      outChannels: 8,
      size: [13, 12],
      kernel: 5,
      stride: 3,
      groups: 2,
      bias: true,
    },
  ];

  const layouts: Layout[] = ['NCHW', 'NHWC'];

  for (const c of convCases) {
    for (const layout of layouts) {
      it(`conv2d ${c.name}, ${layout}, forward and backward`, () => {
        const x = randomUniform([c.batch, c.inChannels, ...c.size], { seed: 1, low: -1, high: 1, layout });
        const weightLayout: Layout = c.crossWeight ? (layout === 'NCHW' ? 'NHWC' : 'NCHW') : layout;
        const weight = randomUniform([c.outChannels, c.inChannels / (c.groups ?? 1), c.kernel, c.kernel], {
          seed: 2,
          low: -1,
          high: 1,
          layout: weightLayout,
        });
        const options: Conv2dOptions = { stride: c.stride ?? 1, padding: c.padding ?? 0, dilation: c.dilation ?? 1, groups: c.groups ?? 1 };
        if (c.bias) options.bias = randomUniform([c.outChannels], { seed: 3 });
        const y = cpu.conv2d(x, weight, options);
        const dy = randomUniform([...y.shape], { seed: 4, low: -1, high: 1, layout });
        expectIdentical(() => [cpu.conv2d(x, weight, options)]);
        expectIdentical(() => Object.values(cpu.conv2dBackward(dy, x, weight, options)));
      });
    }
  }

  it('conv2d at a ShuffleNet shape with the real threshold (grouped 1x1 240->60 g=3 at 28)', () => {
    for (const layout of layouts) {
      const x = randomUniform([1, 240, 28, 28], { seed: 5, low: -1, high: 1, layout });
      const weight = randomUniform([60, 80, 1, 1], { seed: 6, low: -1, high: 1 });
      const dy = randomUniform([1, 60, 28, 28], { seed: 7, low: -1, high: 1, layout });
      expectIdentical(() => [cpu.conv2d(x, weight, { groups: 3 })], undefined);
      expectIdentical(() => Object.values(cpu.conv2dBackward(dy, x, weight, { groups: 3 })), undefined);
    }
  });

  it.each([
    [5, 70, 37, true],
    [8, 300, 130, false],
    [4, 17, 9, true],
  ])('linear batch %i, %i -> %i (bias %s), forward and backward', (batch, inFeatures, outFeatures, bias) => {
    const x = randomUniform([batch, inFeatures], { seed: 8, low: -1, high: 1 });
    const weight = randomUniform([outFeatures, inFeatures], { seed: 9, low: -1, high: 1 });
    const options = bias ? { bias: randomUniform([outFeatures], { seed: 10 }) } : {};
    const dy = randomUniform([batch, outFeatures], { seed: 11, low: -1, high: 1 });
    expectIdentical(() => [cpu.linear(x, weight, options)]);
    expectIdentical(() => Object.values(cpu.linearBackward(dy, x, weight, options)));
  });
});

describe('a threaded script', () => {
  it('exits at once, with code 0, when its work is done', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shuffle-threads-'));
    const script = join(dir, 'threaded.mts');
    const kernels = pathToFileURL(fileURLToPath(new URL('../../packages/kernels/src/index.ts', import.meta.url))).href;
    const core = pathToFileURL(fileURLToPath(new URL('../../packages/core/src/index.ts', import.meta.url))).href;
    const threads = pathToFileURL(fileURLToPath(new URL('../../packages/kernels/src/common/threads.ts', import.meta.url))).href;
    writeFileSync(
      script,
      `import { randomUniform } from ${JSON.stringify(core)};
import { cpu, setNumThreads } from ${JSON.stringify(kernels)};
import { parallelJobs } from ${JSON.stringify(threads)};
setNumThreads(2);
const x = randomUniform([1, 240, 28, 28], { seed: 1 });
const y = cpu.conv2d(x, randomUniform([60, 80, 1, 1], { seed: 2 }), { groups: 3 });
if (parallelJobs() < 1) throw new Error('the conv was not split');
console.log('done ' + y.shape.join('x') + ' at ' + Date.now());
`,
    );
    const tsx = createRequire(import.meta.url).resolve('tsx');
    try {
      const { code, output, exitedAt } = await new Promise<{ code: number | null; output: string; exitedAt: number }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', pathToFileURL(tsx).href, script], { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (chunk) => {
          output += chunk;
        });
        child.stderr.on('data', (chunk) => {
          output += chunk;
        });
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`the threaded script did not exit within 50 s; output: ${output}`));
        }, 50_000);
        child.on('exit', (exitCode) => {
          clearTimeout(timer);
          resolve({ code: exitCode, output, exitedAt: Date.now() });
        });
      });
      expect(output).toMatch(/done 1x60x28x28 at \d+/);
      expect(code).toBe(0);
      const doneAt = Number(/at (\d+)/.exec(output)?.[1]);
      // The script's last line ran; the process must not linger after it for its workers.
      expect(exitedAt - doneAt).toBeLessThan(3_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
