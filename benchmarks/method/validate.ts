import type { Tensor } from '@shuffle/core';
import type { Case } from '../cases/case.js';

/** An output on the host: logical shape, values in row-major (NCHW) order. */
export interface HostOutput {
  shape: readonly number[];
  data: Float32Array | Float64Array;
}
export type HostOutputs = Record<string, HostOutput>;

/** A snapshot (a copy: gradients and outputs are often live buffers that the next run overwrites). */
export function hostOf(t: Tensor): HostOutput {
  return { shape: [...t.shape], data: (t.rank === 4 ? t.toLayout('NCHW') : t).data.slice() };
}

export function hostOutputs(outputs: Record<string, Tensor>): HostOutputs {
  return Object.fromEntries(Object.entries(outputs).map(([name, t]) => [name, hostOf(t)]));
}

/**
 * How far a target may stray from the reference, as the largest |actual - expected| over an output
 * divided by that output's largest |expected|: float32 rounding differs between summation orders (and
 * FMA), by about 1e-6 of the magnitude for one op, more through a whole network; a wrong index, window
 * or padding is off by the magnitude itself. A case may set its own (the full-size training steps do).
 */
export function toleranceOf(c: Case): number {
  if (c.tolerance !== undefined) return c.tolerance;
  if (c.kind === 'op') return 1e-4;
  return c.direction === 'forward' ? 1e-3 : 2e-3;
}

export interface Validation {
  ok: boolean;
  /** max |a - e| / max |e|, over the worst output. */
  error: number;
  tolerance: number;
  /** The worst output's name. */
  worst?: string;
  message?: string;
}

export function validate(actual: HostOutputs, expected: HostOutputs, tolerance: number): Validation {
  let error = 0;
  let worst: string | undefined;
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    if (!a) return { ok: false, error: Number.POSITIVE_INFINITY, tolerance, worst: name, message: `output '${name}' is missing` };
    if (a.shape.length !== e.shape.length || a.shape.some((d, i) => d !== e.shape[i]) || a.data.length !== e.data.length) {
      return {
        ok: false,
        error: Number.POSITIVE_INFINITY,
        tolerance,
        worst: name,
        message: `output '${name}' has shape [${a.shape.join(', ')}], expected [${e.shape.join(', ')}]`,
      };
    }
    let scale = 0;
    for (let i = 0; i < e.data.length; i++) scale = Math.max(scale, Math.abs(e.data[i] as number));
    if (scale === 0) scale = 1;
    let worstHere = 0;
    for (let i = 0; i < e.data.length; i++) {
      const d = Math.abs((a.data[i] as number) - (e.data[i] as number));
      // NaN compares false everywhere, so test it explicitly: a NaN where the reference has a number fails.
      if (!(d <= worstHere)) worstHere = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(worstHere, d);
    }
    const relative = worstHere / scale;
    if (relative > error || worst === undefined) {
      error = Math.max(error, relative);
      worst = name;
    }
  }
  const ok = error <= tolerance;
  return {
    ok,
    error,
    tolerance,
    worst,
    message: ok
      ? undefined
      : `output '${worst}' differs from the reference by ${error.toExponential(2)} of its magnitude (tolerance ${tolerance})`,
  };
}
