/**
 * Dev benchmark for the fast CPU memory-bound kernels: batchNorm2d (inference / training forward, both
 * backwards), relu, add, concat, split, channelShuffle, flatten and softmaxCrossEntropy, at ShuffleNet v1
 * g=3 1.0x 224 shapes, batch 1 and 8, both layouts, against the reference backend.
 *
 *   pnpm exec tsx benchmarks/dev/elementwise.ts  [filter]
 *   SHUFFLE_BENCH_NO_REF=1 pnpm exec tsx benchmarks/dev/elementwise.ts bn   # cpu only, names containing 'bn'
 *
 * Prints the median CPU-time ms per call (see time()), and GB/s counted as the bytes an op must move at
 * least (each input read once, each output written once; the output's zero-fill on allocation is not
 * counted, though its time is). A block copy and a JS copy loop are timed first as ceilings.
 *
 * Fresh multi-MiB outputs can cost more in page faults than the kernel itself when glibc hands them out
 * with mmap (it does until its dynamic threshold has grown past their size, which depends on what ran
 * before); for numbers about the kernels rather than the allocator, run with
 *   GLIBC_TUNABLES=glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824
 */
import { type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { type Backend, cpu, reference } from '@shuffle/kernels';

const filter = process.argv[2] ?? '';
/** SHUFFLE_BENCH_NO_REF=1 skips the (slow) reference. */
const withReference = !process.env.SHUFFLE_BENCH_NO_REF;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/**
 * Median CPU time (user + system) per call in ms, over batches of calls lasting ~5 ms each, after a
 * warm-up. CPU time rather than wall time: the machine is shared, and a descheduled process would
 * otherwise be charged for others' work. Page faults on fresh outputs count (as system time).
 */
function time(fn: () => unknown, budgetMs: number): number {
  for (let i = 0; i < 5; i++) fn();
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    if (performance.now() - t0 > 5 || reps >= 1 << 16) break;
    reps *= 2;
  }
  const samples: number[] = [];
  const end = performance.now() + budgetMs;
  while (performance.now() < end || samples.length < 5) {
    const before = process.cpuUsage();
    for (let i = 0; i < reps; i++) fn();
    const used = process.cpuUsage(before);
    samples.push((used.user + used.system) / 1000 / reps);
  }
  return median(samples);
}

interface Case {
  name: string;
  /** Bytes the op must move at least. */
  bytes: number;
  run(b: Backend): unknown;
}

const rows: string[] = [];
function report(c: Case): void {
  if (!c.name.includes(filter)) return;
  const fast = time(() => c.run(cpu), 400);
  const gbs = (ms: number) => c.bytes / (ms * 1e6);
  let line = `${c.name.padEnd(46)} cpu ${fast.toFixed(3).padStart(8)} ms ${gbs(fast).toFixed(2).padStart(6)} GB/s`;
  if (withReference) {
    const slow = time(() => c.run(reference), 150);
    line += ` | ref ${slow.toFixed(3).padStart(8)} ms ${gbs(slow).toFixed(2).padStart(6)} GB/s | x${(slow / fast).toFixed(1)}`;
  }
  rows.push(line);
  console.log(line);
}

const u = (shape: number[], layout: Layout, seed: number, low = -1, high = 1): Tensor => randomUniform(shape, { seed, layout, low, high });

// Ceilings: a block copy (memmove) of 8 MiB into a buffer allocated once, and a plain JS copy loop, the
// most a scalar loop over Float32Arrays can move.
{
  const source = new Float32Array(1 << 21).fill(1);
  const target = new Float32Array(1 << 21);
  const bytes = 8 * source.length;
  const memmove = time(() => target.set(source), 300);
  const loop = time(() => {
    for (let i = 0; i < source.length; i++) target[i] = source[i] as number;
  }, 300);
  console.log(`ceiling: set() of 8 MiB ${memmove.toFixed(3)} ms, ${(bytes / (memmove * 1e6)).toFixed(2)} GB/s (read + write)`);
  console.log(`ceiling: JS copy loop of 8 MiB ${loop.toFixed(3)} ms, ${(bytes / (loop * 1e6)).toFixed(2)} GB/s`);
}

const layouts: Layout[] = ['NCHW', 'NHWC'];
for (const batch of [1, 8]) {
  for (const layout of layouts) {
    const tag = `N=${batch} ${layout}`;
    for (const [c, s] of [
      [240, 28],
      [480, 14],
      [960, 7],
    ] as const) {
      const x = u([batch, c, s, s], layout, 1);
      const dy = u([batch, c, s, s], layout, 2);
      const gamma = u([c], 'NCHW', 3);
      const beta = u([c], 'NCHW', 4);
      const mean = u([c], 'NCHW', 5);
      const variance = u([c], 'NCHW', 6, 0.5, 2);
      const n = x.size;
      report({ name: `bn inference ${c}x${s}x${s} ${tag}`, bytes: 8 * n, run: (b) => b.batchNorm2d(x, gamma, beta, mean, variance) });
      const rm = mean.clone();
      const rv = variance.clone();
      report({
        name: `bn training ${c}x${s}x${s} ${tag}`,
        bytes: 8 * n,
        run: (b) => b.batchNorm2dWithSaved(x, gamma, beta, rm, rv, { training: true }),
      });
      const { saved } = cpu.batchNorm2dWithSaved(x, gamma, beta, mean.clone(), variance.clone(), { training: true });
      report({
        name: `bn backward training ${c}x${s}x${s} ${tag}`,
        bytes: 12 * n,
        run: (b) => b.batchNorm2dBackward(dy, x, gamma, saved, { training: true }),
      });
      report({
        name: `bn backward inference ${c}x${s}x${s} ${tag}`,
        bytes: 12 * n,
        run: (b) => b.batchNorm2dBackward(dy, x, gamma, saved),
      });
      report({ name: `relu ${c}x${s}x${s} ${tag}`, bytes: 8 * n, run: (b) => b.relu(x) });
      report({ name: `relu backward ${c}x${s}x${s} ${tag}`, bytes: 12 * n, run: (b) => b.reluBackward(dy, x) });
      report({ name: `add ${c}x${s}x${s} ${tag}`, bytes: 12 * n, run: (b) => b.add(x, dy) });
      report({ name: `add backward ${c}x${s}x${s} ${tag}`, bytes: 12 * n, run: (b) => b.addBackward(dy, x, dy) });
    }
    for (const [c, s] of [
      [60, 28],
      [120, 14],
      [240, 7],
    ] as const) {
      const x = u([batch, c, s, s], layout, 1);
      report({ name: `shuffle g=3 ${c}x${s}x${s} ${tag}`, bytes: 8 * x.size, run: (b) => b.channelShuffle(x, 3) });
      report({ name: `shuffle backward g=3 ${c}x${s}x${s} ${tag}`, bytes: 8 * x.size, run: (b) => b.channelShuffleBackward(x, 3) });
    }
    // The stride-2 units' concat of the pooled shortcut and the branch, and the split that undoes it.
    for (const [c1, c2, s] of [
      [24, 216, 28],
      [240, 240, 14],
      [480, 480, 7],
    ] as const) {
      const a = u([batch, c1, s, s], layout, 1);
      const b2 = u([batch, c2, s, s], layout, 2);
      const joined = u([batch, c1 + c2, s, s], layout, 3);
      const bytes = 8 * joined.size;
      report({ name: `concat ${c1}+${c2} @${s} ${tag}`, bytes, run: (b) => b.concat([a, b2]) });
      report({ name: `concat backward ${c1}+${c2} @${s} ${tag}`, bytes, run: (b) => b.concatBackward(joined, [a, b2]) });
      report({ name: `split ${c1}+${c2} @${s} ${tag}`, bytes, run: (b) => b.split(joined, [c1, c2]) });
    }
    for (const [c, s] of [
      [960, 1],
      [960, 7],
    ] as const) {
      const x = u([batch, c, s, s], layout, 1);
      const dy = u([batch, c * s * s], 'NCHW', 2);
      report({ name: `flatten ${c}x${s}x${s} ${tag}`, bytes: 8 * x.size, run: (b) => b.flatten(x) });
      report({ name: `flatten backward ${c}x${s}x${s} ${tag}`, bytes: 8 * x.size, run: (b) => b.flattenBackward(dy, x) });
    }
  }
  const logits = u([batch, 1000], 'NCHW', 7, -5, 5);
  const labels = Array.from({ length: batch }, (_, i) => (i * 37) % 1000);
  const one = u([], 'NCHW', 8);
  report({
    name: `softmaxCE 1000 classes N=${batch}`,
    bytes: 4 * logits.size,
    run: (b) => b.softmaxCrossEntropy(logits, labels, { labelSmoothing: 0.1 }),
  });
  report({
    name: `softmaxCE backward 1000 classes N=${batch}`,
    bytes: 8 * logits.size,
    run: (b) => b.softmaxCrossEntropyBackward(one, logits, labels, { labelSmoothing: 0.1 }),
  });
}
