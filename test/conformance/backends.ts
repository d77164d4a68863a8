import type { Tolerance } from '@shuffle/core';
import { type Backend, reference } from '@shuffle/kernels';

export interface RegisteredBackend {
  backend: Backend;
  /** Default float32 tolerance against the float64 reference, for every op unless its spec says otherwise. */
  tolerance: Tolerance;
}

/**
 * Every synchronous backend the conformance suite checks. A new backend joins by adding a line here.
 * The reference in float32 is compared with the reference in float64, so its tolerance is float32
 * rounding over short sums.
 */
export const backends: RegisteredBackend[] = [{ backend: reference, tolerance: { atol: 1e-5, rtol: 1e-4 } }];
