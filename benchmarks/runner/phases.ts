import { type Load, loadBetween, sampleLoad } from '../method/load.js';
import { median, type TimingOptions } from '../method/timing.js';
import type { Prepared } from '../targets/target.js';

/**
 * The phase split of an asynchronous (gpu) target: where one call's time goes, from host inputs to host
 * outputs. A target measures its own phases (only it knows its device), one call at a time, and the
 * runner collects them after the case's headline timing:
 *
 * - compile: what the case's first call spent compiling kernels (the backend's own bookkeeping), with
 *   that first call's wall time beside it;
 * - upload: host inputs to device tensors;
 * - run: the kernels, device in, device out, until their results are complete;
 * - readback: device outputs to host tensors, once the device is done;
 * - host: host work inside a step that is none of those (a training step's SGD update), when there is some.
 *
 * Each phase's median over the runs is reported; the medians need not add up to the median of a whole
 * run (the headline time), which is timed on its own, without the instrumentation.
 */

/** One instrumented call, split into phases (ms). */
export interface PhaseSample {
  uploadMs: number;
  runMs: number;
  readbackMs: number;
  hostMs?: number;
  /** Tensors the call copied host to device (inputs, and weights a model re-uploads). */
  uploads: number;
  /** Kernels compiled during the call: 0 once warm, or the call was not a steady one. */
  compiles: number;
}

/** The case's first call, which compiles its kernels. */
export interface FirstCall {
  wallMs: number;
  compileMs: number;
  kernels: number;
  /**
   * When the call recorded a model's inference pipeline: gpu.js's first run of it, where it compiles the
   * plan (part of compileMs, which is then the whole call less its transfers: see targets/ours.ts).
   */
  pipelineFirstRunMs?: number;
}

/** What a phased target adds to a Prepared. */
export interface PhasedPrepared extends Prepared {
  phases: {
    /** One instrumented call (upload, run, readback of fresh inputs and outputs), freeing what it made. */
    sample(): Promise<PhaseSample>;
    /** Recorded by the first `run()` (the runner's validation run); undefined before it. */
    firstCall(): FirstCall | undefined;
    /** How a model's forward ran, when the target knows: 'ops' (op by op), or the gpu.js executor of its inference pipeline. */
    executor?(): string | undefined;
  };
}

export function isPhased(p: Prepared): p is PhasedPrepared {
  const phases = (p as Partial<PhasedPrepared>).phases;
  return typeof phases === 'object' && phases !== null && typeof phases.sample === 'function';
}

export interface PhaseStat {
  medianMs: number;
  minMs: number;
  maxMs: number;
}

export interface PhaseResult {
  compileMs: number;
  /** Kernels the first call compiled. */
  kernels: number;
  /** See FirstCall: a model's inference pipeline recorded by the first call, and gpu.js's first run of it. */
  pipelineFirstRunMs?: number;
  firstCallMs: number;
  upload: PhaseStat;
  run: PhaseStat;
  readback: PhaseStat;
  host?: PhaseStat;
  /** Median over the runs of upload + run + readback (+ host) of each run. */
  totalMs: number;
  reps: number;
  /** Median uploads per call. */
  uploads: number;
  /** Runs that compiled a kernel (should be 0: a case's kernels are compiled by its first call). */
  compilingReps: number;
  executor?: string;
  /** Other processes' CPU use while the phases were sampled (busy: noisier numbers, as for the headline timing). */
  load: Load;
}

function stat(values: readonly number[]): PhaseStat {
  return { medianMs: median(values), minMs: Math.min(...values), maxMs: Math.max(...values) };
}

/**
 * Samples the phases with the bounds of the headline timing (which has warmed the kernels already): at
 * least one call, then calls until minReps calls and minTimeMs have passed, or maxReps calls or maxTimeMs.
 */
export async function measurePhases(p: PhasedPrepared, o: TimingOptions): Promise<PhaseResult> {
  const first = p.phases.firstCall();
  if (!first) throw new Error('the phase split needs the first call, which the validation run records');
  const samples: PhaseSample[] = [];
  const start = sampleLoad();
  for (;;) {
    samples.push(await p.phases.sample());
    const elapsed = performance.now() - start.wallMs;
    if (samples.length >= o.maxReps || elapsed >= o.maxTimeMs || (samples.length >= o.minReps && elapsed >= o.minTimeMs)) break;
  }
  const hosts = samples.map((s) => s.hostMs).filter((h): h is number => h !== undefined);
  return {
    compileMs: first.compileMs,
    kernels: first.kernels,
    pipelineFirstRunMs: first.pipelineFirstRunMs,
    firstCallMs: first.wallMs,
    upload: stat(samples.map((s) => s.uploadMs)),
    run: stat(samples.map((s) => s.runMs)),
    readback: stat(samples.map((s) => s.readbackMs)),
    host: hosts.length === samples.length ? stat(hosts) : undefined,
    totalMs: median(samples.map((s) => s.uploadMs + s.runMs + s.readbackMs + (s.hostMs ?? 0))),
    reps: samples.length,
    uploads: median(samples.map((s) => s.uploads)),
    compilingReps: samples.filter((s) => s.compiles > 0).length,
    executor: p.phases.executor?.(),
    load: loadBetween(start, sampleLoad(), o.busyThresholdCores),
  };
}
