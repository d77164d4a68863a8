import type { Tolerance } from '@shuffle/core';
import { type Backend, cpu, reference, TensorArena } from '@shuffle/kernels';

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
  // The same kernels with every result drawn from a poisoned TensorArena (what the models run in): a kernel
  // that relies on fresh zeroed memory, or leaves part of a result unwritten, shows up as NaN here.
  { backend: inPoisonedArenas(cpu), tolerance: { atol: 5e-5, rtol: 2e-4 } },
];

/** `backend` with each call run in a new TensorArena whose result buffers start as NaN (-1 for ints). */
function inPoisonedArenas(backend: Backend): Backend {
  const wrapped: Record<string, unknown> = { name: `${backend.name}-arena` };
  for (const [op, method] of Object.entries(backend)) {
    if (typeof method !== 'function') continue;
    wrapped[op] = (...args: unknown[]) => new TensorArena({ poison: true }).run(() => method.apply(backend, args));
  }
  return wrapped as unknown as Backend;
}
