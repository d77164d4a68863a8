/*
 * Development benchmark for the fast CPU depthwise convolution and pooling kernels, at the ShuffleNet v1
 * (g=3, 1.0x, 224) shapes, batch 1 and 8, both layouts, forward and backward, against the reference.
 *
 *   pnpm exec tsx benchmarks/dev/depthwise-pool.ts [filter] [--no-reference] [--pool-ab]
 *
 * --pool-ab: only ShuffleNet's stem max pool forward (3x3 s2 p1, 24x112x112, batch 1), maxPool2d against
 * maxPool2dWithSaved (what the model's inference called before it skipped the argmax), both layouts,
 * on uniform and on ReLU'd input (half zeros), the two timed in alternation so that a slow spell of a
 * noisy machine hits both alike.
 *
 * Reports the median (and minimum) of repeated runs after warm-up, in ms, and the effective bandwidth:
 * bytes read plus bytes written by the op's tensors (each counted once) over the median time. Depthwise
 * rows also show GFLOP/s (a multiply-add is 2 FLOPs; the backward does twice the forward's).
 *
 * The fast kernels run inside a TensorArena, as in the models, so their outputs are recycled memory: a
 * fresh buffer over 128 KiB comes from mmap, and touching its pages can cost more than the kernel
 * (measured up to 7 ms for 1.2 MB on a loaded machine). The first line is the ceiling to compare GB/s
 * with: Float32Array.set (memmove) of 8 MiB, counting bytes read plus written.
 */
import { type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { type Backend, cpu, reference, TensorArena } from '@shuffle/kernels';

interface Case {
  id: string;
  /** Builds the inputs once; returns the forward and backward runs and their traffic in elements. */
  build: (
    batch: number,
    layout: Layout,
  ) => {
    forward: (b: Backend) => unknown;
    backward: (b: Backend) => unknown;
    forwardElements: number;
    backwardElements: number;
    flops: number;
  };
}

const rand = (shape: number[], seed: number, layout: Layout = 'NCHW'): Tensor => randomUniform(shape, { seed, low: -1, high: 1, layout });

function depthwise(channels: number, spatial: number, stride: number): Case {
  return {
    id: `dw3x3 s${stride} ${channels}ch @${spatial}`,
    build(batch, layout) {
      const x = rand([batch, channels, spatial, spatial], 1, layout);
      const weight = rand([channels, 1, 3, 3], 2);
      const options = { stride, padding: 1 };
      const y = cpu.depthwiseConv2d(x, weight, options);
      const dy = rand([...y.shape], 3, layout);
      return {
        forward: (b) => b.depthwiseConv2d(x, weight, options),
        backward: (b) => b.depthwiseConv2dBackward(dy, x, weight, options),
        forwardElements: x.size + weight.size + y.size,
        backwardElements: dy.size + x.size + weight.size + x.size + weight.size,
        flops: 2 * 9 * y.size,
      };
    },
  };
}

function maxPool(channels: number, spatial: number): Case {
  return {
    id: `maxpool 3x3 s2 p1 ${channels}ch @${spatial}`,
    build(batch, layout) {
      const x = rand([batch, channels, spatial, spatial], 4, layout);
      const options = { kernelSize: 3, stride: 2, padding: 1 };
      const { y, saved } = cpu.maxPool2dWithSaved(x, options);
      const dy = rand([...y.shape], 5, layout);
      return {
        forward: (b) => b.maxPool2d(x, options),
        // The training path: the forward's saved argmax, then the scatter.
        backward: (b) => b.maxPool2dBackward(dy, x, options, saved),
        forwardElements: x.size + y.size,
        backwardElements: dy.size + y.size /* argmax */ + x.size,
        flops: 0,
      };
    },
  };
}

function maxPoolWithSaved(channels: number, spatial: number): Case {
  return {
    id: `maxpool+argmax ${channels}ch @${spatial}`,
    build(batch, layout) {
      const x = rand([batch, channels, spatial, spatial], 4, layout);
      const options = { kernelSize: 3, stride: 2, padding: 1 };
      const y = cpu.maxPool2d(x, options);
      const dy = rand([...y.shape], 5, layout);
      return {
        forward: (b) => b.maxPool2dWithSaved(x, options),
        // Without saved: the argmax is recomputed from x.
        backward: (b) => b.maxPool2dBackward(dy, x, options),
        forwardElements: x.size + 2 * y.size,
        backwardElements: dy.size + 2 * x.size,
        flops: 0,
      };
    },
  };
}

function avgPool(channels: number, spatial: number): Case {
  return {
    id: `avgpool 3x3 s2 p1 ${channels}ch @${spatial}`,
    build(batch, layout) {
      const x = rand([batch, channels, spatial, spatial], 6, layout);
      const options = { kernelSize: 3, stride: 2, padding: 1 };
      const y = cpu.avgPool2d(x, options);
      const dy = rand([...y.shape], 7, layout);
      return {
        forward: (b) => b.avgPool2d(x, options),
        backward: (b) => b.avgPool2dBackward(dy, x, options),
        forwardElements: x.size + y.size,
        backwardElements: dy.size + x.size,
        flops: 0,
      };
    },
  };
}

function globalAvgPool(channels: number, spatial: number): Case {
  return {
    id: `global avg pool ${channels}ch @${spatial}`,
    build(batch, layout) {
      const x = rand([batch, channels, spatial, spatial], 8, layout);
      const dy = rand([batch, channels, 1, 1], 9, layout);
      return {
        forward: (b) => b.globalAvgPool2d(x),
        backward: (b) => b.globalAvgPool2dBackward(dy, x),
        forwardElements: x.size + dy.size,
        backwardElements: dy.size + x.size,
        flops: 0,
      };
    },
  };
}

const CASES: Case[] = [
  depthwise(60, 28, 1),
  depthwise(120, 28, 2),
  depthwise(60, 56, 2),
  depthwise(120, 14, 1),
  depthwise(240, 14, 2),
  depthwise(240, 7, 1),
  maxPool(24, 112),
  maxPoolWithSaved(24, 112),
  avgPool(480, 14),
  avgPool(24, 56),
  avgPool(240, 28),
  globalAvgPool(960, 7),
];

/**
 * Median and minimum ms of `run` after warm-up; repeats for at least `minMs` and 5 runs, at most `maxMs`.
 * The minimum is the least disturbed by other processes on a shared machine.
 */
function time(run: () => unknown, minMs = 400, maxMs = 2500): { median: number; min: number } {
  const warmUntil = performance.now() + Math.min(300, minMs);
  let warm = 0;
  while (performance.now() < warmUntil || warm < 3) {
    run();
    warm++;
  }
  const samples: number[] = [];
  const start = performance.now();
  while ((samples.length < 5 || performance.now() - start < minMs) && performance.now() - start < maxMs) {
    const t0 = performance.now();
    run();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[samples.length >> 1] as number, min: samples[0] as number };
}

/** Medians of runs of a and b, timed in alternation after a warm-up. */
function timeAlternating(a: () => unknown, b: () => unknown, reps = 1500): [number, number] {
  const samples: [number[], number[]] = [[], []];
  for (let rep = 0; rep < reps + 200; rep++) {
    for (const [i, run] of [a, b].entries()) {
      const t0 = performance.now();
      run();
      if (rep >= 200) samples[i]?.push(performance.now() - t0);
    }
  }
  return samples.map((s) => s.sort((p, q) => p - q)[s.length >> 1] as number) as [number, number];
}

function poolAb(): void {
  const arena = new TensorArena();
  const options = { kernelSize: 3, stride: 2, padding: 1 };
  console.log(
    `maxpool 3x3 s2 p1 24ch @112, N=1: median ms (GB/s of x + y), ${'maxPool2d'.padStart(16)} ${'WithSaved'.padStart(16)}  ratio`,
  );
  for (const input of ['uniform', 'relu'] as const) {
    for (const layout of ['NCHW', 'NHWC'] as Layout[]) {
      const uniform = rand([1, 24, 112, 112], 4, layout);
      const x = input === 'relu' ? cpu.relu(uniform) : uniform;
      const [plain, saved] = timeAlternating(
        () => arena.run(() => cpu.maxPool2d(x, options)),
        () => arena.run(() => cpu.maxPool2dWithSaved(x, options)),
      );
      const bytes = (x.size + x.size / 4) * 4;
      const cell = (ms: number) => `${ms.toFixed(3)} (${(bytes / (ms * 1e6)).toFixed(2)})`.padStart(16);
      console.log(`${`${input} ${layout}`.padEnd(62)} ${cell(plain)} ${cell(saved)}  ${(plain / saved).toFixed(2)}`);
    }
  }
}

const args = process.argv.slice(2);
if (args.includes('--pool-ab')) {
  poolAb();
  process.exit(0);
}
const withReference = !args.includes('--no-reference');
const filter = args.find((a) => !a.startsWith('--'));
const fmt = (v: number, digits = 3) => v.toFixed(digits).padStart(8);

{
  const source = new Float32Array(1 << 21);
  const target = new Float32Array(1 << 21);
  const { median } = time(() => target.set(source));
  console.log(`ceiling: Float32Array.set of 8 MiB ${median.toFixed(3)} ms, ${((2 * source.byteLength) / (median * 1e6)).toFixed(2)} GB/s`);
}
const arena = new TensorArena();
console.log(
  `${'case'.padEnd(34)} ${'N'.padStart(2)} ${'layout'.padEnd(6)} pass  cpu ms med    (min)    GB/s  GFLOP/s${withReference ? '    ref ms  speedup' : ''}`,
);
for (const c of CASES) {
  if (filter !== undefined && !c.id.includes(filter)) continue;
  for (const batch of [1, 8]) {
    for (const layout of ['NCHW', 'NHWC'] as Layout[]) {
      const built = c.build(batch, layout);
      for (const pass of ['fwd', 'bwd'] as const) {
        const run = pass === 'fwd' ? built.forward : built.backward;
        const elements = pass === 'fwd' ? built.forwardElements : built.backwardElements;
        const { median: ms, min } = time(() => arena.run(() => run(cpu)));
        const gbs = (elements * 4) / (ms * 1e6);
        const gflops = built.flops > 0 ? (built.flops * (pass === 'fwd' ? 1 : 2)) / (ms * 1e6) : 0;
        let line = `${c.id.padEnd(34)} ${String(batch).padStart(2)} ${layout.padEnd(6)} ${pass}  ${fmt(ms)} (${fmt(min)}) ${fmt(gbs, 2)} ${gflops > 0 ? fmt(gflops, 2) : '       -'}`;
        if (withReference) {
          const refMs = time(() => run(reference), 200, 1500).median;
          line += `  ${fmt(refMs, 2)} ${fmt(refMs / ms, 1)}x`;
        }
        console.log(line);
      }
    }
  }
}
