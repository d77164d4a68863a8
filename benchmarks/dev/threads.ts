/*
 * Development benchmark for the worker threads of the fast CPU kernels (common/threads.ts): each
 * ShuffleNet v1 (g=3, 1.0x, 224) convolution that threads split, batch 1 and 8, both layouts, forward and
 * backward, on one thread and on two; then the crossover (how large a product must be before two threads
 * win) on a family of 1x1 convolutions, and the pool's round trip.
 *
 *   pnpm exec tsx benchmarks/dev/threads.ts [filter] [--rounds=N]
 *
 * One pool of two threads stays up throughout; "1 thread" runs the same calls with the split threshold
 * out of reach (the exact single-threaded code path), "2 threads" with it at 0, alternating sample by
 * sample so that both see the same background load. Each sample times enough calls for ~30 ms.
 *
 * Reported per call:
 *   - wall: median over the samples.
 *   - cpu: median over the samples of the whole process's CPU time (all threads: with two threads it is
 *     the work plus the split's overhead, not the speed).
 *   - crit (Linux): the CPU time of the busiest thread, from /proc/self/task/<tid>/stat (10 ms ticks, so
 *     a mean over all samples, not a median). On an otherwise idle 2-core machine a split call's wall
 *     time would be about this (plus a wake-up): it shows what two threads gain where the wall time
 *     cannot, on a machine whose cores are taken by other jobs.
 * The machine this was written on has 2 vCPUs shared with other jobs; while they were busy, two
 * independent compute loops on two threads (or two processes, even at nice -19) took together ~1.05x
 * the throughput of one, so the wall-time speed-up there measured the machine's load, not the split.
 */
import { type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { cpu, setNumThreads } from '@shuffle/kernels';
import {
  jobArgs,
  PARALLEL_MIN_MACS,
  probeTask,
  runParallel,
  setParallelMinMacs,
  sharedF32,
} from '../../packages/kernels/src/common/threads.js';

const args = process.argv.slice(2);
const filter = args.find((a) => !a.startsWith('--')) ?? '';
const rounds = Number(args.find((a) => a.startsWith('--rounds='))?.slice(9) ?? 15);

const rand = (shape: number[], seed: number, layout: Layout = 'NCHW'): Tensor => randomUniform(shape, { seed, low: -1, high: 1, layout });
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

interface Sample {
  wall: number;
  cpu: number;
}

const fs = (process as unknown as { getBuiltinModule(id: string): unknown }).getBuiltinModule('node:fs') as {
  readdirSync(path: string): string[];
  readFileSync(path: string, encoding: 'utf8'): string;
};
const TICK_MS = 10; // USER_HZ = 100 on Linux

/** CPU ms of each thread of this process (Linux; empty elsewhere). */
function threadCpu(): Map<string, number> {
  const times = new Map<string, number>();
  try {
    for (const tid of fs.readdirSync('/proc/self/task')) {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      times.set(tid, (Number(fields[11]) + Number(fields[12])) * TICK_MS);
    }
  } catch {
    // Not Linux: no per-thread times.
  }
  return times;
}

/** Accumulates per-thread CPU over the samples of one configuration. */
class ThreadMeter {
  private readonly totals = new Map<string, number>();
  private calls = 0;
  private before = new Map<string, number>();
  start(): void {
    this.before = threadCpu();
  }
  stop(calls: number): void {
    for (const [tid, ms] of threadCpu()) this.totals.set(tid, (this.totals.get(tid) ?? 0) + ms - (this.before.get(tid) ?? 0));
    this.calls += calls;
  }
  /** The busiest thread's CPU ms per call. */
  critical(): number {
    return Math.max(0, ...this.totals.values()) / Math.max(1, this.calls);
  }
}

/** Times `run` in batches of `inner` calls; returns per-call wall and CPU ms. */
function sample(run: () => unknown, inner: number, meter?: ThreadMeter): Sample {
  meter?.start();
  const c0 = cpuMs();
  const t0 = performance.now();
  for (let i = 0; i < inner; i++) run();
  const result = { wall: (performance.now() - t0) / inner, cpu: (cpuMs() - c0) / inner };
  meter?.stop(inner);
  return result;
}

interface Result {
  wall: number;
  cpu: number;
  critical: number;
}

/** Medians of the unsplit and the split runs of `run`, interleaved. */
function compare(run: () => unknown): { one: Result; two: Result } {
  setParallelMinMacs(0);
  for (let i = 0; i < 3; i++) run();
  setParallelMinMacs(Number.POSITIVE_INFINITY);
  for (let i = 0; i < 3; i++) run();
  const probe = sample(run, 1);
  const inner = Math.max(1, Math.round(30 / Math.max(probe.wall, 0.01)));
  const ones: Sample[] = [];
  const twos: Sample[] = [];
  const oneMeter = new ThreadMeter();
  const twoMeter = new ThreadMeter();
  for (let r = 0; r < rounds; r++) {
    setParallelMinMacs(Number.POSITIVE_INFINITY);
    ones.push(sample(run, inner, oneMeter));
    setParallelMinMacs(0);
    twos.push(sample(run, inner, twoMeter));
  }
  setParallelMinMacs(undefined);
  const summarise = (s: Sample[], meter: ThreadMeter) => ({
    wall: median(s.map((x) => x.wall)),
    cpu: median(s.map((x) => x.cpu)),
    critical: meter.critical(),
  });
  return { one: summarise(ones, oneMeter), two: summarise(twos, twoMeter) };
}

const fmt = (ms: number) => ms.toFixed(3).padStart(8);
const gf = (macs: number, ms: number) => ((2 * macs) / ms / 1e6).toFixed(2).padStart(5);

function line(label: string, macs: number, r: { one: Result; two: Result }): void {
  console.log(
    `${label.padEnd(40)} ${(macs / 1e6).toFixed(2).padStart(6)} M` +
      ` | 1T wall ${fmt(r.one.wall)} cpu ${fmt(r.one.cpu)} (${gf(macs, r.one.cpu)} GF/s)` +
      ` | 2T wall ${fmt(r.two.wall)} cpu ${fmt(r.two.cpu)} crit ${fmt(r.two.critical)}` +
      ` | wall x${(r.one.wall / r.two.wall).toFixed(2)}, cpu/crit x${(r.one.cpu / r.two.critical).toFixed(2)}`,
  );
}

interface ConvShape {
  id: string;
  inChannels: number;
  outChannels: number;
  size: number;
  kernel: number;
  stride: number;
  padding: number;
  groups: number;
}

const shapes: ConvShape[] = [
  { id: 'stem 3x3 s2 3->24 @224', inChannels: 3, outChannels: 24, size: 224, kernel: 3, stride: 2, padding: 1, groups: 1 },
  { id: 'gconv 1x1 240->60 g=3 @28', inChannels: 240, outChannels: 60, size: 28, kernel: 1, stride: 1, padding: 0, groups: 3 },
  { id: 'gconv 1x1 120->480 g=3 @14', inChannels: 120, outChannels: 480, size: 14, kernel: 1, stride: 1, padding: 0, groups: 3 },
  { id: 'gconv 1x1 240->960 g=3 @7', inChannels: 240, outChannels: 960, size: 7, kernel: 1, stride: 1, padding: 0, groups: 3 },
];

setNumThreads(2);
{
  // Start the worker (and wait for it) outside any timing.
  sharedF32('threads.probe', 2);
  jobArgs(1)[0] = 0;
  runParallel(probeTask, 2);
  const times: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t0 = performance.now();
    runParallel(probeTask, 2);
    times.push(performance.now() - t0);
  }
  console.log(`pool round trip (empty task, 2 parts): median ${(median(times) * 1000).toFixed(1)} us`);
  console.log(`split threshold now: ${PARALLEL_MIN_MACS / 1e6} M multiply-adds; rounds ${rounds}; load ${loadAverage()}\n`);
}

function loadAverage(): string {
  try {
    return (process as unknown as { getBuiltinModule(id: string): { loadavg(): number[] } })
      .getBuiltinModule('node:os')
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  } catch {
    return '?';
  }
}

console.log('ShuffleNet convolutions (M = multiply-adds of the call; a backward does twice the forward):');
for (const shape of shapes) {
  for (const batch of [1, 8]) {
    for (const layout of ['NCHW', 'NHWC'] as Layout[]) {
      const label = `${shape.id} b${batch} ${layout}`;
      if (!label.includes(filter) && !filter.startsWith('crossover')) continue;
      if (filter.startsWith('crossover')) continue;
      const x = rand([batch, shape.inChannels, shape.size, shape.size], 1, layout);
      const weight = rand([shape.outChannels, shape.inChannels / shape.groups, shape.kernel, shape.kernel], 2);
      const options = { stride: shape.stride, padding: shape.padding, groups: shape.groups };
      const y = cpu.conv2d(x, weight, options);
      const dy = rand([...y.shape], 3, layout);
      const [, , outHeight, outWidth] = y.shape as [number, number, number, number];
      const macs = batch * shape.outChannels * outHeight * outWidth * (shape.inChannels / shape.groups) * shape.kernel * shape.kernel;
      line(
        `${label} fwd`,
        macs,
        compare(() => cpu.conv2d(x, weight, options)),
      );
      line(
        `${label} bwd`,
        2 * macs,
        compare(() => cpu.conv2dBackward(dy, x, weight, options)),
      );
      // The copies a split call adds (inputs into shared memory, the output back), on their own.
      const shared = sharedF32('bench.copy', x.size + y.size);
      const copy = sample(() => {
        shared.set(x.data as Float32Array);
        (y.data as Float32Array).set(shared.subarray(0, y.size));
      }, 50);
      console.log(`${''.padEnd(40)} copies of a split forward (x in, y out): ${copy.wall.toFixed(3)} ms`);
    }
  }
}

if (filter === '' || 'linear 960->1000'.includes(filter)) {
  console.log('\nlinear 960->1000 (the GEMM path, batch >= 4):');
  for (const batch of [4, 8]) {
    const x = rand([batch, 960], 4);
    const weight = rand([1000, 960], 5);
    const dy = rand([batch, 1000], 6);
    const macs = batch * 960 * 1000;
    line(
      `linear 960->1000 b${batch} fwd`,
      macs,
      compare(() => cpu.linear(x, weight)),
    );
    line(
      `linear 960->1000 b${batch} bwd`,
      2 * macs,
      compare(() => cpu.linearBackward(dy, x, weight)),
    );
  }
}

if (filter === '' || filter.startsWith('crossover')) {
  // 1x1 grouped convolutions 120->120 g=3 (Cin_g = Cout_g = 40) at growing sizes: where does splitting start to pay?
  console.log('\ncrossover: grouped 1x1 120->120 g=3, batch 1, forward, growing spatial size:');
  for (const layout of ['NCHW', 'NHWC'] as Layout[]) {
    for (const size of [4, 6, 8, 10, 12, 14, 17, 20, 24, 28]) {
      const x = rand([1, 120, size, size], 7, layout);
      const weight = rand([120, 40, 1, 1], 8);
      line(
        `1x1 120->120 g=3 @${size} ${layout}`,
        120 * 40 * size * size,
        compare(() => cpu.conv2d(x, weight, { groups: 3 })),
      );
    }
  }
  console.log('\ncrossover: stem-like 3x3 s2 3->24, batch 1, forward, growing input size:');
  for (const layout of ['NCHW', 'NHWC'] as Layout[]) {
    for (const size of [16, 24, 32, 48, 64, 96]) {
      const x = rand([1, 3, size, size], 9, layout);
      const weight = rand([24, 3, 3, 3], 10);
      const out = Math.floor((size - 1) / 2) + 1;
      line(
        `3x3 s2 3->24 @${size} ${layout}`,
        24 * 27 * out * out,
        compare(() => cpu.conv2d(x, weight, { stride: 2, padding: 1 })),
      );
    }
  }
}

setNumThreads(1);
