/*
 * Development benchmark for the fast CPU conv2d and linear kernels (and the GEMM under them), at the
 * ShuffleNet v1 (g=3, 1.0x, 224) shapes, batch 1 and 8, both layouts, forward and backward, against the
 * reference.
 *
 *   pnpm exec tsx benchmarks/dev/conv.ts [filter] [--no-reference]
 *
 * Reports, after warm-up, the median (and the best) wall time of repeated runs and the CPU time per run,
 * in ms, each with its GFLOP/s (a multiply-add is 2 FLOPs; a backward counts its two products, dx and
 * dweight), and the reference's CPU time. The machine is shared and noisy: the CPU time is the steadier
 * number, and comparisons hold only between runs made close together.
 */
import { type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { type Backend, cpu, reference, TensorArena } from '@shuffle/kernels';
import { sgemm } from '../../packages/kernels/src/common/gemm.js';

interface Run {
  forward: (b: Backend) => unknown;
  backward: (b: Backend) => unknown;
  /** Multiply-adds of the forward; the backward does twice as many. */
  macs: number;
}

interface Case {
  id: string;
  build: (batch: number, layout: Layout) => Run;
}

const gf = (macs: number, ms: number) => ((2 * macs) / ms / 1e6).toFixed(2);
const rand = (shape: number[], seed: number, layout: Layout = 'NCHW'): Tensor => randomUniform(shape, { seed, low: -1, high: 1, layout });

function conv(
  id: string,
  inChannels: number,
  outChannels: number,
  size: number,
  kernel: number,
  stride: number,
  padding: number,
  groups: number,
): Case {
  return {
    id,
    build(batch, layout) {
      const x = rand([batch, inChannels, size, size], 1, layout);
      const weight = rand([outChannels, inChannels / groups, kernel, kernel], 2);
      const options = { stride, padding, groups };
      const y = cpu.conv2d(x, weight, options);
      const dy = rand([...y.shape], 3, layout);
      const [, , outHeight, outWidth] = y.shape as [number, number, number, number];
      return {
        forward: (b) => b.conv2d(x, weight, options),
        backward: (b) => b.conv2dBackward(dy, x, weight, options),
        macs: batch * outChannels * outHeight * outWidth * (inChannels / groups) * kernel * kernel,
      };
    },
  };
}

function linear(inFeatures: number, outFeatures: number): Case {
  return {
    id: `linear ${inFeatures}->${outFeatures}`,
    build(batch) {
      const x = rand([batch, inFeatures], 4);
      const weight = rand([outFeatures, inFeatures], 5);
      const bias = rand([outFeatures], 6);
      const dy = rand([batch, outFeatures], 7);
      return {
        forward: (b) => b.linear(x, weight, { bias }),
        backward: (b) => b.linearBackward(dy, x, weight, { bias }),
        macs: batch * inFeatures * outFeatures,
      };
    },
  };
}

const cases: Case[] = [
  conv('stem conv 3x3 s2 p1 3->24 @224', 3, 24, 224, 3, 2, 1, 1),
  conv('gconv 1x1 240->60 g=3 @28', 240, 60, 28, 1, 1, 0, 3),
  conv('gconv 1x1 120->480 g=3 @14', 120, 480, 14, 1, 1, 0, 3),
  conv('gconv 1x1 240->960 g=3 @7', 240, 960, 7, 1, 1, 0, 3),
  conv('dw via conv2d 3x3 s1 60ch g=60 @28', 60, 60, 28, 3, 1, 1, 60),
  linear(960, 1000),
];

/**
 * Median wall time, best wall time, and CPU time per run: this process's user + system time over the
 * whole timed loop divided by the runs. On a shared machine the CPU time leaves out the time another
 * process held the core, so it is the steadier number; it is only read over the whole loop because the
 * kernel accounts it in ticks of several ms.
 */
function timeIt(run: () => unknown, budgetMs: number, minRuns: number): { median: number; cpu: number; best: number } {
  const warmUp = performance.now();
  while (performance.now() - warmUp < Math.min(budgetMs / 3, 500)) run(); // compiles, and fills the scratch pool
  const times: number[] = [];
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  while (times.length < minRuns || (performance.now() - start < budgetMs && times.length < 500)) {
    const t = performance.now();
    run();
    times.push(performance.now() - t);
  }
  const used = process.cpuUsage(cpuStart);
  times.sort((a, b) => a - b);
  return {
    median: times[Math.floor(times.length / 2)] as number,
    cpu: (used.user + used.system) / 1000 / times.length,
    best: times[0] as number,
  };
}

function gemmRow(): void {
  const n = 512;
  const a = rand([n, n], 8).data as Float32Array;
  const b = rand([n, n], 9).data as Float32Array;
  const c = new Float32Array(n * n);
  const { median, cpu: cpuMs, best } = timeIt(() => sgemm(n, n, n, a, 0, n, 1, b, 0, n, 1, c, 0, n, 1, false), 2000, 7);
  console.log(
    `sgemm 512^3: median ${median.toFixed(1)} ms (${gf(n ** 3, median)} GFLOP/s), CPU ${cpuMs.toFixed(1)} ms (${gf(n ** 3, cpuMs)}), best ${best.toFixed(1)} ms`,
  );
}

const args = process.argv.slice(2);
const withReference = !args.includes('--no-reference');
const filter = args.find((a) => !a.startsWith('--')) ?? '';

if ('sgemm'.includes(filter) || filter === '') gemmRow();
console.log(
  'case | batch | layout | pass | cpu median ms (best) | GFLOP/s | CPU ms/run | GFLOP/s | reference CPU ms/run | GFLOP/s | speedup (CPU time)',
);
for (const c of cases) {
  if (!c.id.includes(filter)) continue;
  for (const batch of [1, 8]) {
    for (const layout of ['NCHW', 'NHWC'] as Layout[]) {
      const run = c.build(batch, layout);
      if (c.id.startsWith('linear') && layout === 'NHWC') continue; // x is 2-D: one memory order
      for (const pass of ['forward', 'backward'] as const) {
        const macs = pass === 'forward' ? run.macs : 2 * run.macs;
        // In an arena, as in the models: recycled outputs, no page faults of fresh memory in the timing.
        const arena = new TensorArena();
        const fast = timeIt(() => arena.run(() => run[pass](cpu)), 1500, 7);
        let referenceColumns = '- | - | -';
        if (withReference) {
          const slow = timeIt(() => run[pass](reference), 1000, 3);
          referenceColumns = `${slow.cpu.toFixed(1)} | ${gf(macs, slow.cpu)} | ${(slow.cpu / fast.cpu).toFixed(1)}x`;
        }
        console.log(
          `${c.id} | ${batch} | ${layout} | ${pass} | ${fast.median.toFixed(2)} (${fast.best.toFixed(2)}) | ${gf(macs, fast.median)} | ` +
            `${fast.cpu.toFixed(2)} | ${gf(macs, fast.cpu)} | ${referenceColumns}`,
        );
      }
    }
  }
}
