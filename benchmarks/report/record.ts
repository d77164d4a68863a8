import type { Case } from '../cases/case.js';
import type { CopyBandwidth } from '../method/bandwidth.js';
import { DEFAULT_SLOW_CORE } from '../method/core.js';
import type { Machine } from '../method/machine.js';
import { formatBytes } from '../method/memory.js';
import type { TimingOptions } from '../method/timing.js';
import type { CaseResult } from '../runner/result.js';

/** Everything one `pnpm bench` produced: what the JSON file holds and every report is made from. */
export interface RunRecord {
  /** ISO date and time the run started. */
  date: string;
  machine: Machine;
  versions: Record<string, string | null>;
  command: string;
  tiny: boolean;
  batch: number;
  layout: string;
  timing: TimingOptions;
  baseline: string | null;
  targets: { name: string; kind: 'ours' | 'peer'; description: string; details: Record<string, string> }[];
  cases: Pick<Case, 'key' | 'id' | 'suite' | 'direction' | 'title' | 'flops' | 'bytes'>[];
  results: CaseResult[];
  /** Wall-clock seconds of the whole run. */
  seconds: number;
  /** Lines the person running it added (--note). */
  notes?: string[];
  /** The core-speed check (method/core.ts); absent in records written before it existed. */
  core?: CoreCheck;
  /** The machine's copy bandwidth (method/bandwidth.ts); absent in records written before it existed. */
  bandwidth?: CopyBandwidth;
}

export interface CoreCheck {
  /** What the probe runs. */
  probe: string;
  /** Best of the probes run in the runner's own process at the start (ms). */
  calibrationMs: number;
  /** The reference every slowdown is relative to: the fastest probe of the whole run, calibration included (ms). */
  referenceMs: number;
  /** Slowdown above which a result is marked slow core. */
  threshold: number;
  /** Whether whole-network cases on a slow core were rerun once in a fresh process. */
  rerun: boolean;
  /** The test hook's probe scales (first attempt, rerun), when it was used: these probes were not as measured. */
  probeScale?: [number, number];
}

/** The slow-core threshold a record used. */
export function slowCoreThreshold(record: RunRecord): number {
  return record.core?.threshold ?? record.timing.slowCore ?? DEFAULT_SLOW_CORE;
}

export function resultFor(record: RunRecord, target: string, caseKey: string): CaseResult | undefined {
  return record.results.find((r) => r.target === target && r.caseKey === caseKey);
}

/** baseline time / this time: above 1, this target is faster than the baseline. */
export function speedup(record: RunRecord, r: CaseResult): number | null {
  if (!record.baseline || r.status !== 'ok' || !r.timing) return null;
  const base = resultFor(record, record.baseline, r.caseKey);
  if (base?.status !== 'ok' || !base.timing) return null;
  return base.timing.medianMs / r.timing.medianMs;
}

export function gflops(r: CaseResult): number | null {
  return r.status === 'ok' && r.timing && r.flops > 0 ? r.flops / (r.timing.medianMs * 1e6) : null;
}

export function gbps(r: CaseResult): number | null {
  return r.status === 'ok' && r.timing && r.bytes > 0 ? r.bytes / (r.timing.medianMs * 1e6) : null;
}

/** 0.0123 -> "0.0123", 1.234 -> "1.23", 123.4 -> "123", 12345 -> "12.3 s" (as ms unless `unit` is false). */
export function formatMs(ms: number, unit = true): string {
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const text = ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toPrecision(3);
  return unit ? `${text} ms` : text;
}

export function formatRatio(x: number): string {
  return x >= 100 ? `${x.toFixed(0)}x` : x >= 10 ? `${x.toFixed(1)}x` : `${x.toFixed(2)}x`;
}

/** A short mark for a result that has no time. */
export function statusMark(r: CaseResult | undefined): string {
  if (!r) return '';
  switch (r.status) {
    case 'ok':
      return '';
    case 'unsupported':
      return 'n/a';
    case 'unavailable':
      return 'unavailable';
    case 'invalid':
      return 'INVALID';
    case 'failed':
      return 'FAILED';
  }
}

/** "812 MiB (+604 MiB)": the peak RSS while the case ran and how far above its start it rose ('' without figures). */
export function peakRssCell(r: CaseResult | undefined): string {
  const m = r?.memory;
  if (!m) return '';
  const mark = m.rssPeak === 'process' ? ' (process peak)' : '';
  return `${formatBytes(m.peakRssBytes)} (+${formatBytes(m.peakRssBytes - m.startRssBytes)})${mark}`;
}

/** One JSON line per (backend, case), with the machine and package versions, for --json. */
export function jsonLine(record: RunRecord, r: CaseResult): Record<string, unknown> {
  const t = r.timing;
  return {
    suite: r.suite,
    case: r.caseId,
    direction: r.direction,
    key: r.caseKey,
    title: r.title,
    backend: r.target,
    kind: r.kind,
    status: r.status,
    reason: r.reason,
    variant: r.variant,
    note: r.note,
    medianMs: t?.medianMs ?? null,
    minMs: t?.minMs ?? null,
    maxMs: t?.maxMs ?? null,
    reps: t?.reps ?? 0,
    warmupReps: t?.warmupReps ?? 0,
    settled: t?.settled ?? null,
    singleRun: t?.single ?? null,
    flops: r.flops,
    gflops: gflops(r),
    gbps: gbps(r),
    baseline: record.baseline,
    speedup: speedup(record, r),
    validation: r.validation ? { error: r.validation.error, tolerance: r.validation.tolerance } : null,
    busy: t?.load.busy ?? null,
    otherProcessesCores: t?.load.othersCores ?? null,
    slowCore: t?.core?.slow ?? null,
    coreSlowdown: t?.core?.slowdown ?? null,
    coreProbesMs: t?.core?.probesMs ?? null,
    coreReferenceMs: t?.core?.referenceMs ?? null,
    slowCoreRerun: r.slowCoreRerun
      ? {
          kept: r.slowCoreRerun.kept,
          otherStatus: r.slowCoreRerun.other.status,
          otherMedianMs: r.slowCoreRerun.other.timing?.medianMs ?? null,
          otherCoreSlowdown: r.slowCoreRerun.other.timing?.core?.slowdown ?? null,
        }
      : null,
    variants: r.variants?.map((v) => ({ variant: v.variant, status: v.status, medianMs: v.timing?.medianMs ?? null, reason: v.reason })),
    memory: r.memory ?? null,
    phases: r.phases ?? null,
    machine: record.machine,
    versions: record.versions,
    date: record.date,
  };
}
