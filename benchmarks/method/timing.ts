import { type CoreProbe, DEFAULT_SLOW_CORE, PROBE_INTERVAL_MS, probeCore } from './core.js';
import { type Load, type LoadSample, loadBetween, sampleLoad } from './load.js';

/**
 * Warm-up until timings settle, then timed repetitions bounded both by count and by time, so a fast
 * kernel gets many samples and a slow plain-loop one still ends. We report the median (robust to the
 * odd garbage collection or preemption) with the min and max.
 */
export interface TimingOptions {
  /** Timed runs: at least minReps and minTimeMs (whichever comes later), at most maxReps or maxTimeMs (whichever comes first). */
  minReps: number;
  maxReps: number;
  minTimeMs: number;
  maxTimeMs: number;
  /** Warm-up stops once settled, or after this long / this many runs. */
  warmupMaxMs: number;
  warmupMaxReps: number;
  /** Other processes' average busy cores above which a result is marked busy. */
  busyThresholdCores: number;
  /**
   * Core-speed probe slowdown (method/core.ts) above which a result is marked "slow core" (default
   * DEFAULT_SLOW_CORE; records written before the probe existed lack it).
   */
  slowCore?: number;
}

export const DEFAULT_TIMING: TimingOptions = {
  minReps: 5,
  maxReps: 1000,
  minTimeMs: 500,
  maxTimeMs: 5000,
  warmupMaxMs: 1500,
  warmupMaxReps: 50,
  busyThresholdCores: 0.25,
  slowCore: DEFAULT_SLOW_CORE,
};

/** Timings of tiny runs (the test suite): a handful of runs, no settling. */
export const QUICK_TIMING: TimingOptions = {
  minReps: 2,
  maxReps: 3,
  minTimeMs: 0,
  maxTimeMs: 200,
  warmupMaxMs: 0,
  warmupMaxReps: 0,
  busyThresholdCores: 0.25,
  slowCore: DEFAULT_SLOW_CORE,
};

export interface Timing {
  medianMs: number;
  minMs: number;
  maxMs: number;
  reps: number;
  warmupReps: number;
  /** Whether the warm-up saw two consecutive windows agree (else it stopped on its time or count bound). */
  settled: boolean;
  /**
   * One run was already longer than maxTimeMs, so the validation run is the only sample: repeating it
   * would only spend time (a run that long has long left the JIT's warm-up behind).
   */
  single: boolean;
  load: Load;
  /**
   * The core-speed probe (method/core.ts) right before and right after the timed runs and about once a
   * second among them (a single-run result: once, right after its run). Absent in older records.
   */
  core?: CoreProbe;
}

export type Run = () => void | Promise<void>;

/** Times one run; awaits only when the run returned a promise (so synchronous runs pay no microtask). */
export async function timeOnce(run: Run): Promise<number> {
  const start = performance.now();
  const result = run();
  if (result !== undefined && typeof (result as Promise<void>).then === 'function') await result;
  return performance.now() - start;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The warm-up has settled when the median of the last 3 runs is within 5% of the 3 before. */
function settledAfter(times: readonly number[]): boolean {
  if (times.length < 6) return false;
  const last = median(times.slice(-3));
  const before = median(times.slice(-6, -3));
  return Math.abs(last - before) <= 0.05 * last;
}

/**
 * Times `run` after a first (validation) run that took `first.ms` between the load samples `first.start`
 * and `first.end`. `afterRun`, when given, is called after every run, outside the timed span (a memory
 * sample, say). `probeScale` multiplies the core-speed probe's times: a test hook (1 otherwise).
 */
export async function measure(
  run: Run,
  first: { ms: number; start: LoadSample; end: LoadSample },
  o: TimingOptions,
  afterRun: () => void = () => {},
  probeScale = 1,
): Promise<Timing> {
  if (first.ms >= o.maxTimeMs) {
    // The validation run is the only sample: the probe runs right after it.
    const core: CoreProbe = { probesMs: [probeCore(probeScale)] };
    return {
      medianMs: first.ms,
      minMs: first.ms,
      maxMs: first.ms,
      reps: 1,
      warmupReps: 0,
      settled: false,
      single: true,
      load: loadBetween(first.start, first.end, o.busyThresholdCores),
      core,
    };
  }

  const warm: number[] = [first.ms];
  let warmupMs = 0;
  let settled = false;
  while (warm.length - 1 < o.warmupMaxReps && warmupMs + (warm.at(-1) as number) <= o.warmupMaxMs) {
    const ms = await timeOnce(run);
    afterRun();
    warm.push(ms);
    warmupMs += ms;
    if (settledAfter(warm)) {
      settled = true;
      break;
    }
  }

  const samples: number[] = [];
  // The core-speed probe right before, about once a second among and right after the timed runs, outside
  // every run's timed span; the time bounds count the runs only.
  const core: CoreProbe = { probesMs: [probeCore(probeScale)] };
  const start = sampleLoad();
  let elapsed = 0;
  let probing = 0;
  let lastProbe = start.wallMs;
  while (samples.length < o.maxReps && elapsed < o.maxTimeMs && (samples.length < o.minReps || elapsed < o.minTimeMs)) {
    samples.push(await timeOnce(run));
    afterRun();
    const now = performance.now();
    if (now - lastProbe >= PROBE_INTERVAL_MS) {
      core.probesMs.push(probeCore(probeScale));
      lastProbe = performance.now();
      probing += lastProbe - now;
    }
    elapsed = performance.now() - start.wallMs - probing;
  }
  const end = sampleLoad();
  core.probesMs.push(probeCore(probeScale));
  return {
    medianMs: median(samples),
    minMs: Math.min(...samples),
    maxMs: Math.max(...samples),
    reps: samples.length,
    warmupReps: warm.length - 1,
    settled,
    single: false,
    load: loadBetween(start, end, o.busyThresholdCores),
    core,
  };
}
