import { median } from '../method/timing.js';
import type { OpCall } from './record.js';

/**
 * Per-op and per-layer tables from repeated runs. Every figure is a median over the runs of that run's
 * total, so one slow run (a garbage collection, a preemption) moves nothing. Medians of different rows
 * may come from different runs, so they need not add up to the median run: shares are of the rows' sum
 * (the ops' medians plus the time outside them), so that they add up to 100%.
 */

/** One profiled run: its wall time and the op calls it made. */
export interface ProfiledRun {
  wallMs: number;
  calls: OpCall[];
}

export interface OpRow {
  op: string;
  /** Calls per run (the same in every run of a deterministic model; the median otherwise). */
  calls: number;
  /** Median over runs of the op's total time in the run. */
  ms: number;
  /** ms over the sum of every op's median and the median time outside ops. */
  share: number;
}

export interface LayerRow {
  /** The layer's name, or `(no layer)` for calls made outside every layer. */
  layer: string;
  /** The ops it called, in first-call order. */
  ops: string[];
  calls: number;
  forwardMs: number;
  backwardMs: number;
  share: number;
}

export interface ProfileSummary {
  runs: number;
  /** Median wall time of a run. */
  wallMs: number;
  /** Sorted by time, slowest first. */
  ops: OpRow[];
  /** Median over runs of the wall time spent outside every op call (model code, copies, the optimizer). */
  outsideMs: number;
  outsideShare: number;
  /** Sorted by time, slowest first; empty when no call was attributed to a layer. */
  layers: LayerRow[];
}

/** Median over runs of `value(run)`. */
function perRun(runs: readonly ProfiledRun[], value: (calls: OpCall[]) => number): number {
  return median(runs.map((r) => value(r.calls)));
}

function total(calls: readonly OpCall[]): number {
  let ms = 0;
  for (const c of calls) ms += c.ms;
  return ms;
}

export function summarize(runs: readonly ProfiledRun[]): ProfileSummary {
  if (runs.length === 0) throw new Error('summarize: no runs');
  const wallMs = median(runs.map((r) => r.wallMs));
  const opNames = [...new Set(runs.flatMap((r) => r.calls.map((c) => c.op)))];
  const opMs = new Map(opNames.map((op) => [op, perRun(runs, (calls) => total(calls.filter((c) => c.op === op)))]));
  const outsideMs = median(runs.map((r) => r.wallMs - total(r.calls)));
  const whole = [...opMs.values()].reduce((a, b) => a + b, outsideMs);
  const share = (ms: number) => (whole > 0 ? ms / whole : 0);
  const ops = opNames
    .map((op): OpRow => {
      const ms = opMs.get(op) as number;
      return { op, calls: perRun(runs, (calls) => calls.filter((c) => c.op === op).length), ms, share: share(ms) };
    })
    .sort((a, b) => b.ms - a.ms);

  const attributed = runs.some((r) => r.calls.some((c) => c.layer !== null));
  const layerNames = attributed ? [...new Set(runs.flatMap((r) => r.calls.map((c) => c.layer ?? '(no layer)')))] : [];
  const layers = layerNames
    .map((layer): LayerRow => {
      const mine = (calls: OpCall[]) => calls.filter((c) => (c.layer ?? '(no layer)') === layer);
      const forwardMs = perRun(runs, (calls) => total(mine(calls).filter((c) => c.phase !== 'backward')));
      const backwardMs = perRun(runs, (calls) => total(mine(calls).filter((c) => c.phase === 'backward')));
      return {
        layer,
        ops: [...new Set(runs.flatMap((r) => mine(r.calls).map((c) => c.op)))],
        calls: perRun(runs, (calls) => mine(calls).length),
        forwardMs,
        backwardMs,
        share: share(forwardMs + backwardMs),
      };
    })
    .sort((a, b) => b.forwardMs + b.backwardMs - (a.forwardMs + a.backwardMs));
  return { runs: runs.length, wallMs, ops, outsideMs, outsideShare: share(outsideMs), layers };
}

const ms = (value: number) => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2));
const pct = (value: number) => `${(100 * value).toFixed(1)}%`;

/** Rows of the per-op table, the outside-ops row and the total last. */
export function opTableRows(s: ProfileSummary): string[][] {
  return [
    ...s.ops.map((r) => [r.op, String(r.calls), ms(r.ms), pct(r.share), r.calls ? ms(r.ms / r.calls) : '']),
    ['(outside op calls)', '', ms(s.outsideMs), pct(s.outsideShare), ''],
    ['whole run (median)', String(s.ops.reduce((n, r) => n + r.calls, 0)), ms(s.wallMs), '', ''],
  ];
}
export const OP_TABLE_HEADER = ['op', 'calls', 'median ms', 'share', 'ms/call'];

export function layerTableRows(s: ProfileSummary, limit = Number.POSITIVE_INFINITY): string[][] {
  return s.layers.slice(0, limit).map((r) => [r.layer, r.ops.join(', '), String(r.calls), ms(r.forwardMs), ms(r.backwardMs), pct(r.share)]);
}
export const LAYER_TABLE_HEADER = ['layer', 'ops', 'calls', 'forward ms', 'backward ms', 'share'];
