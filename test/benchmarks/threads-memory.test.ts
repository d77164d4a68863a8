import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { getNumThreads, reference } from '@shuffle/kernels';
import { afterEach, describe, expect, it } from 'vitest';
import type { Case, NetworkCase } from '../../benchmarks/cases/case.js';
import { loadModels } from '../../benchmarks/cases/model.js';
import { type MemoryUse, peakRss, resetPeakRss, watchMemory } from '../../benchmarks/method/memory.js';
import type { HostOutputs } from '../../benchmarks/method/validate.js';
import { markdownReport } from '../../benchmarks/report/markdown.js';
import { jsonLine } from '../../benchmarks/report/record.js';
import { terminalTable } from '../../benchmarks/report/table.js';
import { executeTarget } from '../../benchmarks/runner/execute.js';
import { allCases } from '../../benchmarks/runner/options.js';
import { OracleStore } from '../../benchmarks/runner/oracle.js';
import { processGroups } from '../../benchmarks/runner/processes.js';
import type { CaseResult } from '../../benchmarks/runner/result.js';
import { getTarget, listTargets } from '../../benchmarks/targets/registry.js';
import { isUnsupported, type Prepared, type TargetDefinition, type Unsupported } from '../../benchmarks/targets/target.js';
import { parallelJobs, setParallelMinMacs } from '../../packages/kernels/src/common/threads.js';
import { ONE_RUN, testRecord, testTiming } from './fixtures.js';

/** The cpu-2t target and the memory figures of the whole-network cases, at tiny sizes. */

const MiB = 2 ** 20;
/** WebAssembly.Memory (the project's TypeScript libraries declare WebAssembly's types, not its globals). */
const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer } } })
  .WebAssembly.Memory;
const cases = allCases({ tiny: true, batch: 1 });

async function run(
  target: string | TargetDefinition,
  selected: readonly Case[],
): Promise<{ results: CaseResult[]; details: Record<string, string> }> {
  const results: CaseResult[] = [];
  let details: Record<string, string> = {};
  const execute = { timing: ONE_RUN, target: { layout: 'NCHW' as const, ortThreads: 1 }, oracles: new OracleStore() };
  await executeTarget(typeof target === 'string' ? getTarget(target) : target, selected, execute, (event) => {
    if (event.type === 'result') results.push(event.result);
    if (event.type === 'details') details = event.details;
  });
  return { results, details };
}

/** `def` with every prepared variant passed through `wrap` (the same session otherwise). */
function wrapped(def: TargetDefinition, wrap: (p: Prepared, c: Case) => Prepared): TargetDefinition {
  return {
    ...def,
    async open(options) {
      const session = await def.open(options);
      const each = (c: Case, prepared: Prepared[] | Unsupported) => (isUnsupported(prepared) ? prepared : prepared.map((p) => wrap(p, c)));
      return {
        details: session.details,
        prepareOp: async (c, inputs) => each(c, await session.prepareOp(c, inputs)),
        prepareNetwork: async (c, inputs) => each(c, await session.prepareNetwork(c, inputs)),
        close: () => session.close(),
      };
    },
  };
}

/** `target`, keeping the outputs each case's first outputs() call (the runner's validation run) returned. */
function keepingOutputs(target: string, kept: Map<string, HostOutputs>): TargetDefinition {
  return wrapped(getTarget(target), (p, c) => ({
    ...p,
    outputs: async () => {
      const outputs = await p.outputs();
      if (!kept.has(c.key)) kept.set(c.key, outputs);
      return outputs;
    },
  }));
}

/** Where two sets of outputs first differ (shape, or a value compared bit for bit: NaN equals NaN, -0 not 0); null when equal. */
function firstDifference(a: HostOutputs | undefined, b: HostOutputs | undefined): string | null {
  if (!a || !b) return `outputs missing: ${!a ? 'first' : 'second'}`;
  const names = Object.keys(a);
  if (names.length === 0 || names.sort().join() !== Object.keys(b).sort().join()) return `outputs ${names} vs ${Object.keys(b)}`;
  for (const name of names) {
    const [x, y] = [a[name], b[name]] as [HostOutputs[string], HostOutputs[string]];
    if (x.shape.join() !== y.shape.join() || x.data.length !== y.data.length) return `${name}: shape ${x.shape} vs ${y.shape}`;
    for (let i = 0; i < x.data.length; i++) if (!Object.is(x.data[i], y.data[i])) return `${name}[${i}]: ${x.data[i]} vs ${y.data[i]}`;
  }
  return null;
}

/** A full garbage collection (vitest's process has no global gc: V8's flag, then gc from a fresh context). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Frees `big`'s memory (mmap'd, so it goes back to the system once collected; sweeping may lag a little). */
async function returnToSystem(gc: () => void, rssWithBig: number, bytes: number): Promise<void> {
  for (let i = 0; i < 20 && process.memoryUsage().rss > rssWithBig - 0.75 * bytes; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('cpu-2t: the fast cpu backend on two threads', () => {
  afterEach(() => setParallelMinMacs(undefined));

  it('is registered beside cpu, right after it, and each says its thread count', async () => {
    const names = listTargets().map((t) => t.name);
    expect(names.indexOf('cpu-2t')).toBe(names.indexOf('cpu') + 1);
    const op = cases.filter((c) => c.key === 'linear-960-1000@tiny/forward');
    expect((await run('cpu', op)).details.threads).toBe('1');
    const before = parallelJobs();
    expect((await run('cpu-2t', op)).details.threads).toBe('2');
    // Opening it waited for its worker with one split call (the tiny case itself is too small to split).
    expect(parallelJobs() - before).toBe(1);
    // Closing the target restores the thread count it found.
    expect(getNumThreads()).toBe(1);
  });

  it('splits work across its worker and gets bit-identical results to one thread', async () => {
    // Tiny shapes are below the split threshold: bring it down so that the GEMMs large enough to cut are split.
    setParallelMinMacs(0);
    const selected = cases.filter((c) => c.suite === 'train' || c.id.startsWith('conv-stem') || c.id.startsWith('gconv-120-480'));
    const one = new Map<string, HostOutputs>();
    const two = new Map<string, HostOutputs>();
    await run(keepingOutputs('cpu', one), selected);
    const before = parallelJobs();
    const double = await run(keepingOutputs('cpu-2t', two), selected);
    // At least one split per op case (one run each), more in the training steps.
    expect(parallelJobs() - before).toBeGreaterThan(4);
    expect(double.results).toHaveLength(selected.length);
    for (const r of double.results) expect(r.status, `${r.caseKey}: ${r.reason}`).toBe('ok');
    // The validation run's outputs (a training step's loss and gradients), element by element.
    for (const c of selected) expect(firstDifference(one.get(c.key), two.get(c.key)), c.key).toBeNull();
  });
});

describe('memory of the whole-network cases', () => {
  it('sees an allocation both in the peak RSS and in the ArrayBuffer bytes', () => {
    const watch = watchMemory();
    const big = new Float32Array((64 * MiB) / 4).fill(1);
    // A wasm heap (tfjs-wasm's) is no ArrayBuffer of Node's allocator: it shows in the external bytes.
    const wasm = new WasmMemory({ initial: (32 * MiB) / 65536 });
    new Uint8Array(wasm.buffer).fill(1);
    const now = process.memoryUsage();
    watch.sample();
    const use = watch.stop();
    expect(big[big.length - 1]).toBe(1);
    // (Against what the process holds now, not against the start: an allocation this large may trigger
    // a collection of garbage that earlier tests left, which the start sample counted.)
    expect(now.arrayBuffers).toBeGreaterThanOrEqual(64 * MiB);
    expect(use.peakArrayBufferBytes).toBeGreaterThanOrEqual(now.arrayBuffers);
    expect(now.external - now.arrayBuffers).toBeGreaterThanOrEqual(32 * MiB);
    expect(use.peakExternalBytes).toBeGreaterThanOrEqual(now.external);
    // (How far RSS rises depends on what the allocator had kept from earlier tests; the peak covers it anyway.)
    expect(use.peakRssBytes).toBeGreaterThanOrEqual(now.rss);
    expect(use.rssPeak).toBe(process.platform === 'linux' ? 'case' : 'process');
  });

  // Linux only: elsewhere there is no clear_refs to reset the mark, and the record says 'process' (the
  // test above checks that), so there is nothing to test. CI runs on Linux, where this always runs.
  it.runIf(process.platform === 'linux')('resets the RSS high-water mark, so an earlier peak is not reported again', async () => {
    let big: Float32Array | null = new Float32Array((128 * MiB) / 4).fill(1);
    const withBig = peakRss();
    expect(big[0]).toBe(1);
    big = null;
    await returnToSystem(collector(), withBig, 128 * MiB);
    expect(resetPeakRss()).toBe(true);
    expect(peakRss()).toBeLessThan(withBig - 64 * MiB);
  });

  it('runs each network case in a process of its own, the op cases together', () => {
    const groups = processGroups(cases);
    const network = cases.filter((c) => c.kind === 'network');
    expect(groups).toHaveLength(1 + network.length);
    expect(groups[0]?.map((c) => c.key)).toEqual(cases.filter((c) => c.kind === 'op').map((c) => c.key));
    expect(groups.slice(1).map((g) => g.map((c) => c.key))).toEqual(network.map((c) => [c.key]));
  });

  it('is measured for network cases only: the peak RSS the case reached, not an earlier one', async () => {
    const selected = cases.filter((c) => c.key === 'g3-0.25x@32-b2/forward' || c.key === 'gap-960@tiny/forward');
    // An earlier peak, 128 MiB above what the process holds when the case starts.
    let big: Float32Array | null = new Float32Array((128 * MiB) / 4).fill(1);
    const earlierPeak = peakRss();
    expect(big[0]).toBe(1);
    big = null;
    await returnToSystem(collector(), earlierPeak, 128 * MiB);
    // The cpu target, holding 32 MiB more during each run of a network case: the RSS seen then is a floor of the case's peak.
    const HELD = 32 * MiB;
    let heldRss = 0;
    const holding = wrapped(getTarget('cpu'), (p, c) =>
      c.kind === 'network'
        ? {
            ...p,
            run: async () => {
              const held = new Uint8Array(HELD).fill(1);
              heldRss = Math.max(heldRss, process.memoryUsage().rss);
              await p.run();
              expect(held[HELD - 1]).toBe(1);
            },
          }
        : p,
    );
    const { results } = await run(holding, selected);
    const memory = results.find((r) => r.caseKey === 'g3-0.25x@32-b2/forward')?.memory;
    expect(heldRss).toBeGreaterThan(0);
    expect(memory?.peakRssBytes).toBeGreaterThanOrEqual(heldRss);
    if (process.platform === 'linux') {
      expect(memory?.rssPeak).toBe('case');
      // Without the reset the process's lifetime peak (earlierPeak or above) would be reported.
      expect(memory?.peakRssBytes).toBeLessThan(earlierPeak - 32 * MiB);
    }
    expect(results.find((r) => r.caseKey === 'gap-960@tiny/forward')?.memory).toBeUndefined();
  });

  it('shows the peak RSS in the table, the Markdown report (with the method) and the JSON lines', () => {
    const memory: MemoryUse = {
      peakRssBytes: 300 * MiB,
      startRssBytes: 100 * MiB,
      peakArrayBufferBytes: 150 * MiB,
      startArrayBufferBytes: 10 * MiB,
      peakExternalBytes: 160 * MiB,
      rssPeak: 'case',
    };
    const result: CaseResult = {
      target: 'cpu',
      kind: 'ours',
      suite: 'train',
      caseId: 'g3-1.0x@224-b8',
      caseKey: 'g3-1.0x@224-b8/train',
      direction: 'train',
      title: 'training step',
      status: 'ok',
      timing: testTiming(5000),
      memory,
      flops: 1e9,
      bytes: 1e6,
    };
    const record = testRecord({
      targets: [{ name: 'cpu', kind: 'ours', description: 'cpu', details: { threads: '1' } }],
      cases: [
        { key: result.caseKey, id: result.caseId, suite: 'train', direction: 'train', title: 'training step', flops: 1e9, bytes: 1e6 },
      ],
      results: [result],
    });
    expect(terminalTable(record)).toMatch(/peak RSS[^\n]*\n[\s\S]*g3-1\.0x@224-b8\/train\s+300 MiB \(\+200 MiB\)/);
    const md = markdownReport(record, null);
    expect(md).toContain('### Peak memory');
    expect(md).toContain('| g3-1.0x@224-b8/train | 300 MiB (+200 MiB) |');
    expect(md).toContain('| g3-1.0x@224-b8/train | 150 MiB (10.0 MiB) |');
    expect(md).toContain('/proc/self/clear_refs');
    expect(jsonLine(record, result).memory).toEqual(memory);
    const noMemory = { ...record, results: [{ ...result, memory: undefined }] };
    expect(terminalTable(noMemory)).not.toContain('peak RSS');
    expect(markdownReport(noMemory, null)).not.toContain('Peak memory');
  });

  it('comes from a fresh process per network case under pnpm bench, with the mark reset', async () => {
    const keys = ['g3-0.25x@32-b2/forward', 'g3-0.25x@16-b8/train'];
    const models = await loadModels();
    if (typeof models === 'string') throw new Error(models);
    const parameterBytes = new Map(
      keys.map((key) => {
        const net = (cases.find((c) => c.key === key) as NetworkCase).net;
        const bytes = models
          .shuffleNetV1({ ...net, backend: reference })
          .parameters()
          .reduce((sum, p) => sum + p.value.data.byteLength, 0);
        return [key, bytes];
      }),
    );
    const bench = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(new URL('../../benchmarks/run.ts', import.meta.url)),
        '--tiny',
        '--json',
        '--no-files',
        '--quiet',
        '--case',
        keys.join(','),
        '--backend',
        'cpu-2t',
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(bench.status, bench.stderr).toBe(0);
    const lines = bench.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line.status).toBe('ok');
      expect(line.memory.rssPeak).toBe(process.platform === 'linux' ? 'case' : 'process');
      // The model's parameters are alive at every sample, so the peak ArrayBuffer bytes hold at least them.
      // (Not "above the start": V8 sweeps freed ArrayBuffers concurrently, so the start, taken right after a
      // full collection, may still count the reference computation's buffers: seen in 1 run of 3.)
      expect(line.memory.peakArrayBufferBytes, line.key).toBeGreaterThanOrEqual(parameterBytes.get(line.key) ?? Number.POSITIVE_INFINITY);
      // A fresh process holds the runtime, tsx and our packages: tens of MiB, not the hundreds a long-lived one gathers.
      expect(line.memory.startRssBytes).toBeLessThan(400 * MiB);
    }
  });
});
