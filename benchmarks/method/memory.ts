import { writeFileSync } from 'node:fs';

/**
 * Memory a case used while it ran, for the whole-network cases.
 *
 * Peak RSS: the kernel keeps a high-water mark of the process's resident set (VmHWM, which
 * process.resourceUsage().maxRSS reads). It is a lifetime peak, so on its own it would report whatever
 * ran earlier in the process (another case, the reference run that made the oracle). Linux resets it to
 * the current RSS when "5" is written to /proc/self/clear_refs (since Linux 4.0): the watch resets it
 * after the case's inputs and oracle are ready, so the peak covers exactly preparing the case (building
 * the model), its validation run, the warm-up and the timed runs. Where the reset is refused (another
 * OS, a locked-down /proc) the peak is the process's lifetime peak, and says so. The runner also gives
 * each network case a fresh process, so that the RSS the case starts from is the runtime and the loaded
 * libraries, not what earlier cases left in the allocator.
 *
 * ArrayBuffer bytes: Node's count of live ArrayBuffer and SharedArrayBuffer memory (tensors, scratch),
 * which V8's heap figures leave out. A synchronous run cannot be sampled while it runs, so this is the
 * largest value seen after each run (validation, warm-up and timed runs), before garbage collection: it
 * holds the run's outputs, what the target retains, and the garbage not yet collected. A lower bound of
 * the true peak; the peak RSS bounds it from above. A WebAssembly.Memory (tfjs-wasm's heap) is not an
 * ArrayBuffer of Node's allocator and is not in this count: it is in V8's `external` bytes, sampled the
 * same way (JSON only), and in the RSS.
 */
export interface MemoryUse {
  /** Highest resident set size while the case ran (see `rssPeak`). */
  peakRssBytes: number;
  /** Resident set size when the watch started (after a garbage collection where one can be forced). */
  startRssBytes: number;
  /** Largest ArrayBuffer bytes seen after a run. */
  peakArrayBufferBytes: number;
  /** ArrayBuffer bytes when the watch started. */
  startArrayBufferBytes: number;
  /** Largest V8 `external` bytes seen after a run (ArrayBuffers, wasm memories, other native objects). */
  peakExternalBytes: number;
  /** 'case': the high-water mark was reset when the case started; 'process': a lifetime peak (reset refused). */
  rssPeak: 'case' | 'process';
}

/** Resets the kernel's RSS high-water mark to the current RSS; false where that is not possible. */
export function resetPeakRss(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** The process's peak RSS in bytes (maxRSS is in KiB on every platform Node supports). */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** A full garbage collection, when the process was started with --expose-gc (the runner's children are). */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export interface MemoryWatch {
  /** Takes a sample; call after each run (outside the timed span). */
  sample(): void;
  /** Ends the watch (one last sample first). */
  stop(): MemoryUse;
}

export function watchMemory(): MemoryWatch {
  collectGarbage();
  const start = process.memoryUsage();
  const reset = resetPeakRss();
  let peakArrayBufferBytes = start.arrayBuffers;
  let peakExternalBytes = start.external;
  const sample = () => {
    const now = process.memoryUsage();
    peakArrayBufferBytes = Math.max(peakArrayBufferBytes, now.arrayBuffers);
    peakExternalBytes = Math.max(peakExternalBytes, now.external);
  };
  return {
    sample,
    stop() {
      sample();
      return {
        peakRssBytes: Math.max(peakRss(), start.rss),
        startRssBytes: start.rss,
        peakArrayBufferBytes,
        startArrayBufferBytes: start.arrayBuffers,
        peakExternalBytes,
        rssPeak: reset ? 'case' : 'process',
      };
    },
  };
}

/** 123456789 -> "118 MiB". */
export function formatBytes(bytes: number): string {
  const mib = bytes / 2 ** 20;
  if (mib >= 1024) return `${(mib / 1024).toFixed(2)} GiB`;
  return `${mib >= 100 ? mib.toFixed(0) : mib >= 10 ? mib.toFixed(1) : mib.toFixed(2)} MiB`;
}
