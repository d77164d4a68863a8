/**
 * Was this process on a slow core? Some VMs give a process a vCPU that is, for a while, much slower than
 * the others (on this project's 2-vCPU machine one of them intermittently runs a fixed scalar loop ~1.8x
 * slower, with no steal time in /proc/stat), and a process tends to stay on the vCPU it started on. A
 * target timed in such a process looks 1.5-2x slower than it is, and its ratios to targets timed in other
 * processes swing with it; the busy check (load.ts) does not see it, since nothing else is running.
 *
 * So each process times a fixed, deterministic scalar loop (the probe: a few ms, no memory traffic, no
 * allocation) right before and right after each case's timed runs, and between them about once a second.
 * The runner compares those probe times with the machine's reference: the fastest probe of the whole run
 * (a calibration in the runner's own process at the start, and every probe any target's process reported).
 * A probe that ran `slowdown` times the reference says the core ran that much slower; above the threshold
 * the result is marked "slow core". Times are never rescaled: the probe says how far to distrust them.
 */

/** What the probe computes, for the report. */
export const PROBE_DESCRIPTION =
  'a fixed loop of loads and multiply-adds into four independent sums over a plain array of 16,384 numbers (300 passes)';

const PROBE_PASSES = 300;
const PROBE_LENGTH = 1 << 14;
const probeData: number[] = Array.from({ length: PROBE_LENGTH }, (_, i) => 1 + (i % 7) * 1e-4);

/**
 * The loop. What it has to be, each point measured with the process pinned to one vCPU by taskset:
 *   - throughput-bound like our kernels (loads and multiply-adds into four independent sums, as in the
 *     GEMM micro-kernel): the slow vCPU here slows such code 1.6-1.75x, but a chain of dependent integer
 *     steps (this probe's first version) only 1.07-1.3x, which missed it;
 *   - on a plain array, not a typed one: once any ArrayBuffer in a process has been detached (transferred;
 *     TensorFlow.js does), V8 drops an optimisation of typed-array access for good, and the same typed-array
 *     loop ran 1.35-1.6x slower on the same core, which made every peer's process look like a slow core;
 *   - many calls of a small function (probePass), which V8 optimises as a whole: as one long loop it was
 *     optimised mid-run or not at all depending on the process, 1.6 or 8 ms on the same core.
 * Returns a value that depends on every step, so that the JIT cannot drop any of it.
 */
export function probeLoop(passes = PROBE_PASSES): number {
  const sums = [0, 0, 0, 0];
  for (let pass = 0; pass < passes; pass++) probePass(probeData, sums);
  return (sums[0] as number) + (sums[1] as number) + (sums[2] as number) + (sums[3] as number);
}

/** One pass over the data, adding into `sums`. */
function probePass(a: number[], sums: number[]): void {
  const mask = a.length - 1;
  let s0 = sums[0] as number;
  let s1 = sums[1] as number;
  let s2 = sums[2] as number;
  let s3 = sums[3] as number;
  for (let i = 0; i < a.length; i += 4) {
    const b = a[(i * 7) & mask] as number;
    s0 += (a[i] as number) * b;
    s1 += (a[i + 1] as number) * b;
    s2 += (a[i + 2] as number) * b;
    s3 += (a[i + 3] as number) * b;
  }
  sums[0] = s0;
  sums[1] = s1;
  sums[2] = s2;
  sums[3] = s3;
}

/** What probeLoop() returns: each probe checks it, which also keeps the loop's result in use. */
export const PROBE_CHECKSUM = 4918149.022255548;

let warmed = false;
/** The fastest probe this process ran: a run well above it is repeated once (a preemption, a GC elsewhere). */
let processBest = Number.POSITIVE_INFINITY;

/** How many ms the probe runs between timed runs: about once a second (plus right before and right after them). */
export const PROBE_INTERVAL_MS = 1000;

/** The slowdown above which a result is marked "slow core" (--slow-core). */
export const DEFAULT_SLOW_CORE = 1.25;

function timeProbe(): number {
  const start = performance.now();
  const value = probeLoop();
  const ms = performance.now() - start;
  if (value !== PROBE_CHECKSUM) throw new Error(`the core-speed probe computed ${value}, not ${PROBE_CHECKSUM}`);
  return ms;
}

/** The probe's first runs include the JIT compiling the loop: run it a few times, untimed, once per process. */
function warm(): void {
  if (warmed) return;
  warmed = true;
  for (let i = 0; i < 8; i++) processBest = Math.min(processBest, timeProbe());
}

/**
 * One probe point, in ms: one run, and a second when the first was more than 10% above the fastest this
 * process has seen (the lower of the two counts). `scale` multiplies the figure: a test hook that makes a
 * process look slow (see ProbeOptions); 1 otherwise.
 */
export function probeCore(scale = 1): number {
  warm();
  let ms = timeProbe();
  if (ms > processBest * 1.1) ms = Math.min(ms, timeProbe());
  processBest = Math.min(processBest, ms);
  return ms * scale;
}

/** The runner's reference: best of `runs` probes in its own process at the start of a run (after warm-up). */
export function calibrateCore(runs = 10): number {
  warm();
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) best = Math.min(best, timeProbe());
  processBest = Math.min(processBest, best);
  return best;
}

/** What each timed span records: the probe times in order (before, between the runs, after). */
export interface CoreProbe {
  /** Probe times in ms, in the order taken: right before the timed runs, about once a second among them, right after. */
  probesMs: number[];
  /** Filled in by the runner once the run's reference is known (see assessCore). */
  referenceMs?: number;
  /** Median probe time / referenceMs: how much slower than the fastest core seen this process ran while timed. */
  slowdown?: number;
  /** slowdown above the threshold: the time is likely inflated by up to that factor. */
  slow?: boolean;
}

/** Result-like objects whose timings carry probes (CaseResult, its variants, the other attempt of a rerun). */
export interface Probed {
  timing?: { core?: CoreProbe };
  variants?: { timing?: { core?: CoreProbe } }[];
  slowCoreRerun?: { other: Probed };
}

/** Every probe record a result holds: its timing's, its variants', and those of the attempt a rerun replaced. */
function probesOf(r: Probed): CoreProbe[] {
  const own = [r.timing?.core, ...(r.variants ?? []).map((v) => v.timing?.core)].filter((p) => p !== undefined);
  return r.slowCoreRerun ? [...own, ...probesOf(r.slowCoreRerun.other)] : own;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * The machine's reference, the fastest probe seen so far: a core at its normal speed can't run the fixed
 * loop faster than its fastest run; a slow core, a preemption or a busy sibling only make it slower.
 */
export class CoreReference {
  constructor(public ms: number) {}

  /** Takes in every probe of a result. */
  see(r: Probed): void {
    for (const p of probesOf(r)) for (const ms of p.probesMs) if (ms > 0) this.ms = Math.min(this.ms, ms);
  }

  /** Median probe time of the result's reported timing / the reference (null without probes). */
  slowdown(r: Probed): number | null {
    const probes = r.timing?.core?.probesMs;
    if (!probes?.length || !(this.ms > 0) || !Number.isFinite(this.ms)) return null;
    return median(probes) / this.ms;
  }
}

/**
 * Sets referenceMs, slowdown and slow on every probe record of `results` (variants and replaced attempts
 * included), against the fastest of `calibrationMs` and every probe the results hold. Returns that
 * reference (ms).
 */
export function assessCore(results: readonly Probed[], calibrationMs: number, threshold: number): number {
  const reference = new CoreReference(calibrationMs);
  for (const r of results) reference.see(r);
  for (const p of results.flatMap(probesOf)) {
    const slowdown = reference.slowdown({ timing: { core: p } });
    if (slowdown === null) continue;
    p.referenceMs = reference.ms;
    p.slowdown = slowdown;
    p.slow = slowdown > threshold;
  }
  return reference.ms;
}

/** Whether a result's reported timing was marked slow core (after assessCore). */
export function slowCore(r: Probed | undefined): boolean {
  return r?.timing?.core?.slow === true;
}
