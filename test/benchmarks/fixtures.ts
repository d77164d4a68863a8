import type { Timing, TimingOptions } from '../../benchmarks/method/timing.js';
import type { RunRecord } from '../../benchmarks/report/record.js';

/** Timing bounds for one untimed run per case: the validation run, no warm-up. */
export const ONE_RUN: TimingOptions = {
  minReps: 1,
  maxReps: 1,
  minTimeMs: 0,
  maxTimeMs: 0,
  warmupMaxMs: 0,
  warmupMaxReps: 0,
  busyThresholdCores: 1,
};

/** A settled timing of 10 runs on an idle machine, min and max 10% either side of `medianMs`; `fields` override. */
export function testTiming(medianMs: number, fields: Partial<Timing> = {}): Timing {
  return {
    medianMs,
    minMs: medianMs * 0.9,
    maxMs: medianMs * 1.1,
    reps: 10,
    warmupReps: 3,
    settled: true,
    single: false,
    load: { cpus: 2, ownCores: 1, othersCores: 0, busy: false },
    ...fields,
  };
}

/**
 * A RunRecord for the report tests: a fixed date, machine and command with one-run timing, and the
 * targets, cases and results (and anything else) given.
 */
export function testRecord(fields: Pick<RunRecord, 'targets' | 'cases' | 'results'> & Partial<RunRecord>): RunRecord {
  return {
    date: '2025-01-02T03:04:05.000Z',
    machine: { name: 'test-2c', cpu: 'Test CPU', cpus: 2, memoryGiB: 4, os: 'Linux', node: 'v20', v8: '11', commit: 'abc' },
    versions: {},
    command: 'pnpm bench',
    tiny: false,
    batch: 1,
    layout: 'NCHW',
    timing: ONE_RUN,
    baseline: 'cpu',
    seconds: 1,
    ...fields,
  };
}
