/**
 * What "close to memory bandwidth" means on the machine a run is on: the speed of the best copy a
 * JavaScript program can make, Float32Array.prototype.set (a memcpy), counted like the op cases' GB/s
 * (bytes read + bytes written per second). Two sizes, since the op tensors at ShuffleNet shapes (0.1-2
 * MB) sit in the caches while a large copy goes to DRAM:
 *   - cache: 1 MiB copied (2 MiB moved), about the size of the ops' tensors;
 *   - memory: 64 MiB copied, well past the caches.
 * Each is the median of several timed copies after warm-up, in the runner's own process at the start
 * of a run (so on whichever core it got: the core-speed probe says how fast that one was).
 */

export interface CopyBandwidth {
  /** What was measured. */
  method: string;
  /** GB/s (1e9 bytes read + written per second) copying 1 MiB. */
  cacheGBps: number;
  /** GB/s copying 64 MiB. */
  memoryGBps: number;
}

export const COPY_METHOD =
  'Float32Array.prototype.set (memcpy) of 1 MiB and of 64 MiB, bytes read + written per second, median of timed copies';

function copyGBps(bytes: number, minMs: number): number {
  const source = new Float32Array(bytes / 4).fill(1);
  const target = new Float32Array(bytes / 4);
  target.set(source); // first touch: page faults, not bandwidth
  const times: number[] = [];
  const start = performance.now();
  while (times.length < 5 || performance.now() - start < minMs) {
    const copies = Math.max(1, Math.floor((1 << 24) / bytes));
    const t = performance.now();
    for (let i = 0; i < copies; i++) target.set(source);
    times.push((performance.now() - t) / copies);
  }
  times.sort((a, b) => a - b);
  const ms = times[times.length >> 1] as number;
  return (2 * bytes) / (ms * 1e6);
}

/** Measures both figures (about half a second). */
export function measureCopyBandwidth(): CopyBandwidth {
  return { method: COPY_METHOD, cacheGBps: copyGBps(1 << 20, 200), memoryGBps: copyGBps(1 << 26, 300) };
}
