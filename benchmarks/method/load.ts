import { readFileSync } from 'node:fs';
import os from 'node:os';

/**
 * Was the machine busy while we timed? Compares the CPU time the whole machine spent busy (from
 * /proc/stat, or os.cpus() elsewhere) with what this process used (process.cpuUsage, every thread of it,
 * onnxruntime's and worker threads included) over the same wall-clock span. What is left is other
 * processes (and, in a VM, time the hypervisor stole), expressed in cores: 1.0 means another process
 * kept one core busy the whole time, which on a small machine shifts timings a lot.
 */

interface CpuTimes {
  /** Busy time in any unit (ticks); `total` includes idle in the same unit. */
  busy: number;
  total: number;
}

export interface LoadSample {
  wallMs: number;
  cpuTimes: CpuTimes | null;
  /** process.cpuUsage() in microseconds (user + system). */
  ownMicros: number;
}

export interface Load {
  /** CPUs the machine reports. */
  cpus: number;
  /** Average cores this process kept busy. */
  ownCores: number;
  /** Average cores other processes kept busy (null when the machine's CPU times are unreadable). */
  othersCores: number | null;
  /** Whether othersCores exceeded the threshold: the numbers may be noisy. */
  busy: boolean;
}

/** Aggregate CPU times. /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal guest guest_nice. */
function readCpuTimes(): CpuTimes | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    if (fields.length < 8 || fields.some((f) => !Number.isFinite(f))) throw new Error('unexpected /proc/stat');
    const [user, nice, system, idle, iowait, irq, softirq, steal] = fields as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    // guest time is already inside user; iowait is idle time spent waiting, so not busy.
    const busy = user + nice + system + irq + softirq + steal;
    return { busy, total: busy + idle + iowait };
  } catch {
    const cpus = os.cpus();
    if (cpus.length === 0) return null;
    let busy = 0;
    let total = 0;
    for (const { times } of cpus) {
      busy += times.user + times.nice + times.sys + times.irq;
      total += times.user + times.nice + times.sys + times.irq + times.idle;
    }
    return { busy, total };
  }
}

export function sampleLoad(): LoadSample {
  const usage = process.cpuUsage();
  return { wallMs: performance.now(), cpuTimes: readCpuTimes(), ownMicros: usage.user + usage.system };
}

export function cpuCount(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/**
 * The load between two samples. The tick length of /proc/stat is not needed: busy/total ticks is the
 * machine's busy fraction, times the CPU count gives busy cores.
 */
export function loadBetween(start: LoadSample, end: LoadSample, busyThresholdCores: number): Load {
  // The CPUs /proc/stat (and os.cpus) count, which is what its ticks are spread over.
  const cpus = os.cpus().length || 1;
  const wallMs = Math.max(end.wallMs - start.wallMs, 1e-9);
  const ownCores = (end.ownMicros - start.ownMicros) / 1000 / wallMs;
  let othersCores: number | null = null;
  if (start.cpuTimes && end.cpuTimes) {
    const total = end.cpuTimes.total - start.cpuTimes.total;
    const busy = end.cpuTimes.busy - start.cpuTimes.busy;
    // Tick counters move in steps of 10 ms per CPU: a span of fewer than 20 ticks says little.
    if (total >= 20) othersCores = Math.max(0, (busy / total) * cpus - ownCores);
  }
  return { cpus, ownCores, othersCores, busy: othersCores !== null && othersCores > busyThresholdCores };
}
