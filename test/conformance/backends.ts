import type { Tolerance } from '@shuffle/core';
import { type Backend, cpu, reference } from '@shuffle/kernels';

export interface RegisteredBackend {
  backend: Backend;
  /** Default float32 tolerance against the float64 reference, for every op unless its spec says otherwise. */
  tolerance: Tolerance;
}

/**
 * Every synchronous backend the conformance suite checks. A new backend joins by adding a line here.
 * Each is compared with the float64 reference; the reference's own float32 tolerance is float32
 * rounding over short sums.
 */
export const backends: RegisteredBackend[] = [
  { backend: reference, tolerance: { atol: 1e-5, rtol: 1e-4 } },
  // Blocked GEMMs and fused loops sum in other orders than the reference: float32 rounding over a few
  // hundred terms of magnitude <= 1.
  { backend: cpu, tolerance: { atol: 5e-5, rtol: 2e-4 } },
];
