/**
 * Reusable float32 scratch buffers for the fast CPU kernels (packed GEMM panels, im2col columns, partial
 * sums), so that a warm call allocates nothing but its output.
 *
 * Each named slot holds one buffer that grows to the largest length ever asked of it and is then reused.
 * The returned array is valid until the next call with the same slot (which may hand back the same memory
 * or a larger replacement); its contents are whatever the last user left there, so callers initialise what
 * they read. Use a distinct slot for every buffer that must live at the same time as another, e.g.
 * 'gemm.packA' and 'gemm.packB'; prefix the slot with your op or module name. Kernels run synchronously
 * and never call each other mid-use of a slot, so one pool serves the whole process.
 */
const pool = new Map<string, Float32Array>();

/** A Float32Array of at least `length` elements, reused across calls with the same `slot`. */
export function scratchF32(slot: string, length: number): Float32Array {
  const held = pool.get(slot);
  if (held !== undefined && held.length >= length) return held;
  // Grow by at least half again, so a sequence of slowly growing sizes reallocates only a few times.
  const grown = new Float32Array(Math.max(length, held === undefined ? 0 : Math.ceil(held.length * 1.5)));
  pool.set(slot, grown);
  return grown;
}

/** Drops every scratch buffer (for tests and for callers that want the memory back). */
export function releaseScratch(): void {
  pool.clear();
}
