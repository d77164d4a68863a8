import { checkGpuMode, type GpuMode } from '@shuffle/kernels';
import { describe, it } from 'vitest';

/**
 * The GPU modes this run must have, from SHUFFLE_REQUIRE_GPU ('all' or a comma list such as
 * 'webasm,headlessgl'). CI requires all four, so a missing mode fails there instead of being skipped.
 */
export function requiredGpuModes(): Set<string> {
  const value = process.env.SHUFFLE_REQUIRE_GPU ?? '';
  if (value === 'all') return new Set(['cpu', 'webasm', 'headlessgl', 'webgpu']);
  return new Set(value.split(',').filter(Boolean));
}

/**
 * A describe block for one gpu.js mode. When the mode is unavailable, it becomes one skipped test
 * whose name carries the reason (and the runner lists it), or one failing test if the mode is required.
 */
export async function describeGpuMode(mode: GpuMode, body: () => void): Promise<void> {
  const status = await checkGpuMode(mode);
  if (status.available) {
    describe(`gpu mode ${mode}`, body);
  } else if (requiredGpuModes().has(mode)) {
    it(`gpu mode ${mode} is available (required by SHUFFLE_REQUIRE_GPU)`, () => {
      throw new Error(status.reason);
    });
  } else {
    // Only where the mode is not required (a developer machine without Xvfb or Mesa): the skipped
    // test's name carries the reason and the fix, and `pnpm test` lists it. CI requires every mode.
    it.skip(`gpu mode ${mode} unavailable: ${status.reason}`, () => {});
  }
}
