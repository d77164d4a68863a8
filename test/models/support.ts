/** Reference data and the finite-difference helper shared by the model tests. */
import { readFileSync } from 'node:fs';
import type { Tensor } from '@shuffle/core';

export interface ReferenceLayer {
  name: string;
  op: string;
  kernel?: number;
  stride?: number;
  pad?: number;
  groups?: number;
  in_shape: number[] | number[][];
  out_shape: number[];
  weight_shape?: number[];
  params: number;
  bn_affine: number;
  macs: number;
  megvii_key?: string;
}

export interface ReferenceV1Config {
  group: number;
  width: number;
  conv1: number;
  stage_channels: number[];
  mid_channels: number[];
  params: {
    conv_weights: number;
    fc_weight: number;
    fc_bias: number;
    bn_affine_gamma_beta: number;
    bn_running_mean_var: number;
    bn_layers: number;
    trainable_no_fc_bias: number;
    trainable_with_fc_bias: number;
  };
  macs: { total: number; conv: number; fc: number; per_stage: Record<string, number> };
}

/** ../shared/reference/shufflenet-configs.json (see shufflenet_count.py beside it). */
export const referenceSheet = JSON.parse(
  readFileSync(new URL('../../../shared/reference/shufflenet-configs.json', import.meta.url), 'utf8'),
) as {
  v1: Record<string, ReferenceV1Config>;
  'layers_g3_1.0x': ReferenceLayer[];
  shuffle_test_vectors: Record<string, number[] | string>;
};

/**
 * Central difference (f(v + h) - f(v - h)) / 2h of a scalar function of one element of `t` (written in
 * place and restored). Its error is O(h^2) from the Taylor series plus ~1e-16 |f| / h from rounding,
 * both far below the tolerances the tests use in float64 with h = 1e-6.
 */
export function centralDifference(f: () => number, t: Tensor, index: number, step = 1e-6): number {
  const data = t.data;
  const original = data[index] as number;
  data[index] = original + step;
  const plus = f();
  data[index] = original - step;
  const minus = f();
  data[index] = original;
  return (plus - minus) / (2 * step);
}

/** sum(a * b) over logical positions (either layout). */
export function dot(a: Tensor, b: Tensor): number {
  const u = a.toLayout('NCHW').data;
  const v = b.toLayout('NCHW').data;
  let sum = 0;
  for (let i = 0; i < u.length; i++) sum += (u[i] as number) * (v[i] as number);
  return sum;
}

/** Passes when |analytic - numeric| <= atol + rtol * |numeric|; otherwise names the worst offenders. */
export function expectGradientsClose(
  checks: { label: string; analytic: number; numeric: number }[],
  { atol, rtol }: { atol: number; rtol: number },
): void {
  const bad = checks.filter(({ analytic, numeric }) => !(Math.abs(analytic - numeric) <= atol + rtol * Math.abs(numeric)));
  if (bad.length > 0) {
    const lines = bad.slice(0, 8).map(({ label, analytic, numeric }) => `  ${label}: analytic ${analytic}, numeric ${numeric}`);
    throw new Error(`${bad.length} of ${checks.length} gradients differ from finite differences:\n${lines.join('\n')}`);
  }
}
