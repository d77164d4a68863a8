import { expect } from 'vitest';
import type { Case } from '../../benchmarks/cases/case.js';
import type { TimingOptions } from '../../benchmarks/method/timing.js';
import { phaseRows, phaseSection, versusCpu } from '../../benchmarks/report/phases.js';
import { jsonLine, type RunRecord } from '../../benchmarks/report/record.js';
import { executeTarget } from '../../benchmarks/runner/execute.js';
import { allCases } from '../../benchmarks/runner/options.js';
import { OracleStore } from '../../benchmarks/runner/oracle.js';
import type { CaseResult } from '../../benchmarks/runner/result.js';
import { getTarget } from '../../benchmarks/targets/registry.js';

/**
 * The gpu targets' phase split at tiny shapes, shared by the per-mode test files: a few op cases (a
 * conv forward and backward; the max-pool backward, whose argmax stays on the device) and the
 * whole-network and training cases, run on the cpu backend and the given gpu modes through the runner
 * `pnpm bench` uses, in this process. Times are never compared with expectations, only their shape.
 */

const TIMING: TimingOptions = {
  minReps: 2,
  maxReps: 3,
  minTimeMs: 0,
  maxTimeMs: 200,
  warmupMaxMs: 0,
  warmupMaxReps: 0,
  busyThresholdCores: 1,
};

/** Op cases, with how many host tensors each call uploads (the case's tensor inputs). */
export const OP_UPLOADS: Record<string, number> = {
  'gconv-240-60@tiny/forward': 2,
  'gconv-240-60@tiny/backward': 3,
  'maxpool@tiny/backward': 2,
};
export const NETWORK_CASES = ['g3-0.25x@32-b2/forward', 'g3-0.25x@8-small-b8/train'];

/** Runs the op cases and `networkCases` on `targets`, in this process, into a record as `pnpm bench` makes. */
export async function runPhased(targets: string[], networkCases = NETWORK_CASES): Promise<RunRecord> {
  const cases: Case[] = allCases({ tiny: true, batch: 1 }).filter((c) => c.key in OP_UPLOADS || networkCases.includes(c.key));
  const results: CaseResult[] = [];
  const details = new Map<string, Record<string, string>>();
  const oracles = new OracleStore();
  for (const name of targets) {
    await executeTarget(getTarget(name), cases, { timing: TIMING, target: { layout: 'NCHW', ortThreads: 1 }, oracles }, (event) => {
      if (event.type === 'result') results.push(event.result);
      if (event.type === 'details') details.set(event.target, event.details);
    });
  }
  return {
    date: new Date().toISOString(),
    machine: { name: 'test' } as RunRecord['machine'],
    versions: {},
    command: 'test',
    tiny: true,
    batch: 1,
    layout: 'NCHW',
    timing: TIMING,
    baseline: 'cpu',
    targets: targets.map((name) => ({ name, kind: 'ours' as const, description: name, details: details.get(name) ?? {} })),
    cases: cases.map(({ key, id, suite, direction, title, flops, bytes }) => ({ key, id, suite, direction, title, flops, bytes })),
    results,
    seconds: 0,
  };
}

function expectStat(stat: { medianMs: number; minMs: number; maxMs: number } | undefined, where: string): void {
  expect(stat, where).toBeDefined();
  const { medianMs, minMs, maxMs } = stat as NonNullable<typeof stat>;
  for (const v of [medianMs, minMs, maxMs]) expect(Number.isFinite(v) && v >= 0, `${where}: ${v}`).toBe(true);
  expect(minMs, where).toBeLessThanOrEqual(medianMs);
  expect(medianMs, where).toBeLessThanOrEqual(maxMs);
}

/** Every op case of `target`: validated, timed, and split into phases of the right shape. */
export function expectOpPhases(record: RunRecord, target: string): void {
  for (const [key, uploads] of Object.entries(OP_UPLOADS)) {
    const r = record.results.find((x) => x.target === target && x.caseKey === key);
    const where = `${target} ${key}: ${r?.status} ${r?.reason ?? ''}`;
    expect(r?.status, where).toBe('ok');
    expect(r?.validation?.ok, where).toBe(true);
    const p = r?.phases;
    expect(p, where).toBeDefined();
    if (!p || !r?.timing) return;
    // The first call compiled this case's kernels, inside its own wall time.
    expect(p.kernels, where).toBeGreaterThan(0);
    expect(p.compileMs, where).toBeGreaterThan(0);
    expect(p.firstCallMs, where).toBeGreaterThanOrEqual(p.compileMs);
    for (const phase of ['upload', 'run', 'readback'] as const) expectStat(p[phase], `${where} ${phase}`);
    expect(p.host, where).toBeUndefined();
    expect(p.uploads, where).toBe(uploads);
    expect(p.compilingReps, where).toBe(0);
    expect(p.reps, where).toBeGreaterThanOrEqual(TIMING.minReps);
    // The median of per-run sums lies between the sums of the phases' minima and maxima.
    expect(p.totalMs, where).toBeGreaterThanOrEqual(p.upload.minMs + p.run.minMs + p.readback.minMs - 1e-9);
    expect(p.totalMs, where).toBeLessThanOrEqual(p.upload.maxMs + p.run.maxMs + p.readback.maxMs + 1e-9);
    expect(jsonLine(record, r).phases, where).toEqual(p);
  }
}

/** gpu.js's pipeline executors (GpuPipelineExecutor): how an inference forward ran as the model's pipeline. */
const PIPELINE_EXECUTORS = ['fused-threaded', 'fused-sync', 'fused-encoder', 'generic'];

/**
 * The whole-network cases, which the model runs on every gpu mode: valid and split like the ops. The
 * forward runs as the model's inference pipeline, whose recording and first run are the compile; a
 * training step runs op by op.
 */
export function expectNetworkPhases(record: RunRecord, target: string): void {
  const keys = record.cases.filter((c) => c.suite !== 'ops').map((c) => c.key);
  expect(keys.length).toBeGreaterThan(0);
  for (const key of keys) {
    const r = record.results.find((x) => x.target === target && x.caseKey === key);
    const where = `${target} ${key}: ${r?.status} ${r?.reason ?? ''}`;
    expect(r?.status, where).toBe('ok');
    expect(r?.validation?.ok, where).toBe(true);
    const p = r?.phases;
    expect(p, where).toBeDefined();
    if (!p) return;
    expect(p.kernels, where).toBeGreaterThan(0);
    for (const phase of ['upload', 'run', 'readback'] as const) expectStat(p[phase], `${where} ${phase}`);
    // At least x each call; a training step uploads its updated weights again.
    expect(p.uploads, where).toBeGreaterThanOrEqual(1);
    expect(p.firstCallMs, where).toBeGreaterThanOrEqual(p.compileMs);
    if (r?.direction === 'train') {
      expectStat(p.host, `${where} host`);
      expect(p.executor, where).toBe('ops');
      expect(p.pipelineFirstRunMs, where).toBeUndefined();
    } else {
      expect(PIPELINE_EXECUTORS, where).toContain(p.executor);
      // The compile holds the pipeline's first run (gpu.js compiling the plan) and its recording before it.
      expect(p.pipelineFirstRunMs, where).toBeGreaterThan(0);
      expect(p.compileMs, where).toBeGreaterThan(p.pipelineFirstRunMs ?? Number.POSITIVE_INFINITY);
    }
  }
}

/** The reports show every phased result, with its ratio to the cpu backend. */
export function expectPhaseReports(record: RunRecord, targets: string[]): void {
  const rows = phaseRows(record)?.rows ?? [];
  const section = phaseSection(record, (header, body) => [header, ...body].map((cells) => cells.join(' | ')).join('\n')).join('\n');
  expect(section).toContain('## GPU modes: compile, upload, run, readback');
  for (const target of targets) {
    for (const r of record.results.filter((x) => x.target === target && x.phases)) {
      // The mode cell names how a network case ran (its executor), in both reports.
      const mode = r.phases?.executor ? `${target} (${r.phases.executor})` : target;
      expect(rows.some((row) => row[0] === r.caseKey && row[1] === mode)).toBe(true);
      expect(section, `${r.caseKey} ${mode}`).toContain(`${r.caseKey} | ${mode} | `);
      const cpu = record.results.find((x) => x.target === 'cpu' && x.caseKey === r.caseKey);
      const ratio = versusCpu(record, r.caseKey, r.timing?.medianMs ?? 0);
      expect(ratio).toBeCloseTo((cpu?.timing?.medianMs ?? Number.NaN) / (r.timing?.medianMs ?? Number.NaN), 12);
    }
  }
}
