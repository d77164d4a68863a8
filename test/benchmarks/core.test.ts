import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  assessCore,
  type CoreProbe,
  CoreReference,
  calibrateCore,
  PROBE_CHECKSUM,
  probeCore,
  probeLoop,
  slowCore,
} from '../../benchmarks/method/core.js';
import { measure } from '../../benchmarks/method/timing.js';
import { markdownReport } from '../../benchmarks/report/markdown.js';
import { jsonLine, type RunRecord } from '../../benchmarks/report/record.js';
import { svgChart } from '../../benchmarks/report/svg.js';
import { terminalTable } from '../../benchmarks/report/table.js';
import { allCases, parseOptions, probeScale } from '../../benchmarks/runner/options.js';
import { runTargets } from '../../benchmarks/runner/processes.js';
import type { CaseResult } from '../../benchmarks/runner/result.js';
import { getTarget } from '../../benchmarks/targets/registry.js';
import { ONE_RUN, testRecord, testTiming } from './fixtures.js';

/**
 * The core-speed probe (benchmarks/method/core.ts): each timing records its probes, the runner compares
 * them with the fastest probe of the run and marks a result "slow core" above the threshold, in the JSON,
 * the Markdown and the table. A slow probe is forced with the test hook (probeScale /
 * SHUFFLE_BENCH_PROBE_SCALE): no assertion depends on how fast this machine's cores are, except that a
 * probe scaled 20x reads above 5x the fastest probe and an unscaled one below (this machine's slow vCPU
 * is ~1.8x; under a full parallel test run, raw probes have reached 3x).
 */

const sample = (wallMs: number) => ({ wallMs, cpuTimes: null, ownMicros: 0 });
const tmp = mkdtempSync(join(os.tmpdir(), 'shuffle-core-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('core-speed probe', () => {
  it('computes the same value every time (a fixed loop), and a probe point is a positive time the hook scales', () => {
    expect(probeLoop()).toBe(PROBE_CHECKSUM);
    expect(probeLoop(10)).not.toBe(PROBE_CHECKSUM);
    const ms = probeCore();
    expect(ms).toBeGreaterThan(0);
    expect(Number.isFinite(ms)).toBe(true);
    expect(calibrateCore(2)).toBeGreaterThan(0);
  });

  it('is timed right before and right after the timed runs, and once after a single-run result', async () => {
    let runs = 0;
    const options = { ...ONE_RUN, minReps: 3, maxReps: 3, maxTimeMs: 1000 };
    const t = await measure(() => void runs++, { ms: 0.1, start: sample(0), end: sample(0.1) }, options);
    expect(runs).toBe(3);
    expect(t.core?.probesMs).toHaveLength(2);
    for (const ms of t.core?.probesMs ?? []) expect(ms).toBeGreaterThan(0);
    // Not assessed yet: the runner does that once the run's reference is known.
    expect(t.core?.slow).toBeUndefined();
    const single = await measure(() => void runs++, { ms: 2000, start: sample(0), end: sample(2000) }, options);
    expect(single.single).toBe(true);
    expect(single.core?.probesMs).toHaveLength(1);
  });

  it('probes about once a second among long timed runs, without counting the probes as run time', async () => {
    const busy = (ms: number) => () => {
      const end = performance.now() + ms;
      while (performance.now() < end) {}
    };
    const options = { ...ONE_RUN, minReps: 1, maxReps: 1000, minTimeMs: 2300, maxTimeMs: 5000 };
    const t = await measure(busy(50), { ms: 50, start: sample(0), end: sample(50) }, options);
    // Before, after, and at least one in between (2.3 s of runs: about two).
    expect(t.core?.probesMs.length).toBeGreaterThanOrEqual(3);
    expect(t.core?.probesMs.length).toBeLessThanOrEqual(6);
  });
});

describe('slow-core assessment', () => {
  const probed = (...probesMs: number[]): { timing: { core: CoreProbe } } => ({ timing: { core: { probesMs } } });

  it('divides the median probe by the fastest probe of the run and marks results above the threshold', () => {
    const fast = probed(10, 10.4);
    const slow = probed(18, 19, 30);
    const variant = probed(9, 21);
    const replaced = probed(25, 25);
    const results = [fast, slow, { variants: [variant] }, { ...probed(11), slowCoreRerun: { other: replaced } }];
    // The calibration (12 ms) was slower than the fastest probe a target reported (9 ms): 9 is the reference.
    expect(assessCore(results, 12, 1.25)).toBe(9);
    expect(fast.timing.core).toMatchObject({ referenceMs: 9, slow: false });
    expect(fast.timing.core.slowdown).toBeCloseTo(10.2 / 9);
    expect(slow.timing.core).toMatchObject({ referenceMs: 9, slow: true });
    expect(slow.timing.core.slowdown).toBeCloseTo(19 / 9);
    expect(variant.timing.core).toMatchObject({ slow: true });
    expect(replaced.timing.core).toMatchObject({ slow: true });
    expect(slowCore(slow)).toBe(true);
    expect(slowCore(fast)).toBe(false);
    expect(slowCore(undefined)).toBe(false);
    // A result without probes (an older record, an unsupported case) is left alone.
    const none: { timing?: { core?: { probesMs: number[]; slow?: boolean } } } = {};
    assessCore([none], 9, 1.25);
    expect(none.timing).toBeUndefined();
  });

  it('keeps the fastest probe seen as the running reference', () => {
    const reference = new CoreReference(12);
    reference.see(probed(14, 13));
    expect(reference.ms).toBe(12);
    reference.see({ variants: [probed(8)] });
    expect(reference.ms).toBe(8);
    expect(reference.slowdown(probed(16, 16))).toBe(2);
    expect(reference.slowdown({})).toBeNull();
  });
});

describe('slow core in the runner, in this process', () => {
  it('records the probes of every timed result and marks a process the hook made slow', async () => {
    const key = 'shuffle-60@tiny/forward';
    const selected = allCases({ tiny: true, batch: 1 }).filter((c) => c.key === key);
    expect(selected).toHaveLength(1);
    const calibrationMs = calibrateCore();
    const reference = new CoreReference(calibrationMs);
    const results: CaseResult[] = [];
    const oracleDir = join(tmp, 'oracles');
    for (const [target, scale] of [
      ['reference', 1],
      ['cpu', 20],
    ] as const) {
      await runTargets([getTarget(target)], selected, {
        inProcess: true,
        quiet: true,
        tiny: true,
        batch: 1,
        execute: { timing: ONE_RUN, target: { layout: 'NCHW', ortThreads: 1 }, probeScale: scale },
        oracleDir,
        core: { reference, threshold: 5, rerun: true },
        onEvent: (event) => {
          if (event.type === 'result') results.push(event.result);
        },
      });
    }
    expect(results.map((r) => [r.target, r.status])).toEqual([
      ['reference', 'ok'],
      ['cpu', 'ok'],
    ]);
    for (const r of results) expect(r.timing?.core?.probesMs.length, r.target).toBeGreaterThanOrEqual(1);
    // The runner fed every probe into the running reference.
    expect(reference.ms).toBeLessThanOrEqual(Math.min(calibrationMs, ...results.flatMap((r) => r.timing?.core?.probesMs ?? [])));
    assessCore(results, calibrationMs, 5);
    const [ours, forced] = results as [CaseResult, CaseResult];
    expect(forced.timing?.core?.slow).toBe(true);
    expect(forced.timing?.core?.slowdown).toBeGreaterThan(5);
    expect(ours.timing?.core?.slow).toBe(false);
    // In this process nothing is rerun (op cases never are, and there is no fresh process to rerun in).
    expect(forced.slowCoreRerun).toBeUndefined();
  });
});

describe('slow core in the reports', () => {
  const result = (target: string, medianMs: number, slowdown: number | null): CaseResult => ({
    target,
    kind: target === 'cpu' ? 'ours' : 'peer',
    suite: 'network',
    caseId: 'g3-1.0x@224-b1',
    caseKey: 'g3-1.0x@224-b1/forward',
    direction: 'forward',
    title: 'ShuffleNet v1 forward',
    status: 'ok',
    timing: testTiming(medianMs, {
      core: slowdown === null ? undefined : { probesMs: [7 * slowdown, 7 * slowdown], referenceMs: 7, slowdown, slow: slowdown > 1.25 },
    }),
    flops: 275e6,
    bytes: 0,
  });
  const record = (results: CaseResult[], probeScale?: [number, number]): RunRecord =>
    testRecord({
      timing: { ...ONE_RUN, slowCore: 1.25 },
      targets: [
        { name: 'cpu', kind: 'ours', description: 'cpu', details: {} },
        { name: 'tfjs-wasm', kind: 'peer', description: 'wasm', details: {} },
      ],
      cases: [
        {
          key: 'g3-1.0x@224-b1/forward',
          id: 'g3-1.0x@224-b1',
          suite: 'network',
          direction: 'forward',
          title: 'ShuffleNet v1 forward',
          flops: 275e6,
          bytes: 0,
        },
      ],
      results,
      seconds: 30,
      core: { probe: 'a loop', calibrationMs: 7.2, referenceMs: 7, threshold: 1.25, rerun: true, probeScale },
    });

  it('marks a slow-core time and the ratios with it, explains it in a footnote and in the method, keeps the raw time', () => {
    const rec = record([result('cpu', 120, 1.8), result('tfjs-wasm', 42, 1.02)]);
    const md = markdownReport(rec, null);
    expect(md).toMatch(/\| g3-1\.0x@224-b1\/forward \| 120 ms \(108–132\) † \| 42\.0 ms \(37\.8–46\.2\) \|/);
    // cpu / tfjs-wasm: the ratio is marked too, as it involves a slow-core time.
    expect(md).toMatch(/\| g3-1\.0x@224-b1\/forward \| 2\.86x † \|/);
    expect(md).toContain('Results marked † were timed on a slow core');
    expect(md).toContain('## Slow core (†)');
    expect(md).toContain('1 of 2 results were timed in a process whose core-speed probe ran more than 1.25x');
    expect(md).toContain('- cpu g3-1.0x@224-b1/forward: 120 ms, probe 1.80x (12.6, 12.6 ms)');
    expect(md).not.toContain('test hook');
    expect(terminalTable(rec)).toMatch(/120 ms†/);
    expect(terminalTable(rec)).toContain('†: timed on a slow core');
    expect(svgChart(rec)).toContain('slow core: probe 1.80x');
    const line = jsonLine(rec, rec.results[0] as CaseResult);
    expect(line).toMatchObject({ medianMs: 120, slowCore: true, coreReferenceMs: 7, coreProbesMs: [12.6, 12.6] });
    expect(line.coreSlowdown).toBeCloseTo(1.8);
    expect(jsonLine(rec, rec.results[1] as CaseResult)).toMatchObject({ slowCore: false, slowCoreRerun: null });
  });

  it('says nothing of slow cores when no result was on one, and renders records from before the probe', () => {
    const clean = markdownReport(record([result('cpu', 75, 1.01), result('tfjs-wasm', 42, 1.0)]), null);
    expect(clean).not.toContain('†:');
    expect(clean).not.toContain('## Slow core');
    expect(clean).not.toMatch(/ms[^|]*†/);
    const { core: _, ...old } = record([result('cpu', 75, null), result('tfjs-wasm', 42, null)]);
    const md = markdownReport(old, null);
    expect(md).not.toContain('†');
    expect(md).toContain('75.0 ms');
  });

  it('lists reruns with both attempts and says when the test hook forced the probes', () => {
    const kept = { ...result('cpu', 76, 1.03), slowCoreRerun: { kept: 'rerun' as const, other: result('cpu', 118, 1.7) } };
    const md = markdownReport(record([kept, result('tfjs-wasm', 42, 1.0)], [10, 1]), null);
    expect(md).toContain('- cpu g3-1.0x@224-b1/forward: first 118 ms (probe 1.70x), rerun 76.0 ms (probe 1.03x); reported: the rerun');
    expect(md).toContain("**The probe's test hook was on**");
    expect(terminalTable(record([kept]))).toContain(
      'cpu g3-1.0x@224-b1/forward: rerun in a fresh process after a slow-core probe; reported: the rerun',
    );
  });
});

describe('slow core through pnpm bench', () => {
  const bench = (args: string[], scale: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../benchmarks/run.ts', import.meta.url)), ...args], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, SHUFFLE_BENCH_PROBE_SCALE: scale },
    });
  const args = (name: string) => [
    '--tiny',
    '--quiet',
    '--case',
    'shuffle-60@tiny/forward,g3-0.25x@32-b2/forward',
    '--backend',
    'cpu',
    '--out',
    tmp,
    '--name',
    name,
    // Only the forced (20x) probes may count as slow: on a loaded machine with a slow vCPU, raw probes
    // alone have run 3x the reference.
    '--slow-core',
    '5',
  ];
  const read = (name: string) => ({
    json: JSON.parse(readFileSync(join(tmp, `${name}.json`), 'utf8')) as RunRecord,
    md: readFileSync(join(tmp, `${name}.md`), 'utf8'),
  });

  it('marks forced-slow results in the JSON and the Markdown, and reports a network case from its faster rerun', () => {
    const run = bench(args('rerun-faster'), '20,1');
    expect(run.status, run.stderr).toBe(0);
    const { json, md } = read('rerun-faster');
    expect(json.core).toMatchObject({ threshold: 5, rerun: true, probeScale: [20, 1] });
    expect(json.core?.referenceMs).toBeGreaterThan(0);
    const op = json.results.find((r) => r.caseKey === 'shuffle-60@tiny/forward');
    const net = json.results.find((r) => r.caseKey === 'g3-0.25x@32-b2/forward');
    expect(op?.status).toBe('ok');
    expect(op?.timing?.core?.slow).toBe(true);
    expect(op?.slowCoreRerun).toBeUndefined();
    // The network case ran twice: the rerun (probe unscaled) is reported, the first (20x) kept beside it, raw.
    expect(net?.slowCoreRerun?.kept).toBe('rerun');
    expect(net?.timing?.core?.slow).toBe(false);
    expect(net?.slowCoreRerun?.other.timing?.core?.slow).toBe(true);
    expect(net?.slowCoreRerun?.other.timing?.medianMs).toBeGreaterThan(0);
    expect(md).toMatch(/\| shuffle-60@tiny\/forward \| [^|]+ms[^|]* † \|/);
    expect(md).toContain('## Slow core (†)');
    expect(md).toContain("**The probe's test hook was on**");
    expect(md).toMatch(/- cpu g3-0\.25x@32-b2\/forward: first .* \(probe \d+\.\d\dx\), rerun .*; reported: the rerun/);
  }, 120_000);

  it('keeps the first attempt when the rerun probed slower still, and reruns nothing with --no-slow-rerun', () => {
    const slower = bench(args('rerun-slower'), '20,1000');
    expect(slower.status, slower.stderr).toBe(0);
    const net = read('rerun-slower').json.results.find((r) => r.caseKey === 'g3-0.25x@32-b2/forward');
    expect(net?.slowCoreRerun?.kept).toBe('first');
    expect(net?.timing?.core?.slow).toBe(true);
    const none = bench([...args('no-rerun'), '--no-slow-rerun'], '20');
    expect(none.status, none.stderr).toBe(0);
    const { json, md } = read('no-rerun');
    expect(json.core?.rerun).toBe(false);
    for (const r of json.results) {
      expect(r.timing?.core?.slow, r.caseKey).toBe(true);
      expect(r.slowCoreRerun, r.caseKey).toBeUndefined();
    }
    expect(md).toContain('Slow results were not rerun (--no-slow-rerun)');
  }, 180_000);
});

describe('slow-core options', () => {
  it('parses --slow-core and --no-slow-rerun, and the test hook', () => {
    expect(parseOptions([]).timing.slowCore).toBe(1.25);
    expect(parseOptions([]).slowRerun).toBe(true);
    expect(parseOptions(['--slow-core', '1.5', '--no-slow-rerun'])).toMatchObject({ timing: { slowCore: 1.5 }, slowRerun: false });
    expect(() => parseOptions(['--slow-core', 'x'])).toThrow(/--slow-core/);
    expect(probeScale(undefined)).toBeNull();
    expect(probeScale('3')).toEqual([3, 3]);
    expect(probeScale('3,1')).toEqual([3, 1]);
    expect(() => probeScale('0')).toThrow();
    expect(() => probeScale('1,2,3')).toThrow();
  });
});
