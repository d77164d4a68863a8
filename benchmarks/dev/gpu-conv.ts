/*
 * Development benchmark for the gpu conv2d, depthwiseConv2d and linear kernels at the ShuffleNet v1
 * (g=3, 1.0x, 224) shapes, forward and backward, on each gpu.js mode, against the fast cpu backend.
 *
 *   pnpm exec tsx benchmarks/dev/gpu-conv.ts [mode] [--batch N] [--layout NCHW|NHWC] [filter]
 *
 * Without a mode it runs each mode in a child process of its own (headlessgl and webgpu cannot share
 * one), headlessgl under `xvfb-run -a` when there is no display. Inputs are uploaded once. Per case:
 * - compile: the compile time the backend's stats give the kernels the first call built (gpu.js's build
 *   plus the first run, where drivers compile), and the first call's wall time (upload-free, read included);
 * - run: median wall time of a call plus reading its results back (webgpu only finishes the work at the
 *   read), and the read alone (the results read a second time), so run - read approximates the kernels;
 * - process CPU time per timed run (the call and both reads): on this shared machine the steadier
 *   number, as llvmpipe (headlessgl, webgpu) and webasm all compute on this process's threads;
 * - cpu backend: the fast cpu backend's median for the same call on host tensors;
 * - per kernel the call launched: its compile ms and mean host run ms (gpu.js's run; on webgpu only the
 *   dispatch, the work itself lands in the read).
 * The machine is shared and noisy: compare numbers from one run only.
 */
import { spawnSync } from 'node:child_process';
import { type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { cpu, createGpuBackend, type DeviceTensor, GPU_MODES, type GpuBackend, type GpuMode } from '@shuffle/kernels';

interface Case {
  id: string;
  /** Host inputs, and the op on a backend (gpu: device tensors in, device results out). */
  build(
    batch: number,
    layout: Layout,
  ): {
    inputs: Record<string, Tensor>;
    forward(b: Ops, t: Record<string, unknown>): unknown;
    backward(b: Ops, t: Record<string, unknown>): unknown;
  };
}
type Ops = Record<string, (...args: unknown[]) => unknown>;

const rand = (shape: number[], seed: number, layout: Layout = 'NCHW') => randomUniform(shape, { seed, low: -1, high: 1, layout });

function conv(id: string, inC: number, outC: number, size: number, k: number, stride: number, groups: number, depthwise = false): Case {
  return {
    id,
    build(batch, layout) {
      const pad = (k - 1) / 2;
      const x = rand([batch, inC, size, size], 1, layout);
      const weight = rand([outC, depthwise ? 1 : inC / groups, k, k], 2);
      const out = Math.floor((size + 2 * pad - k) / stride) + 1;
      const dy = rand([batch, outC, out, out], 3, layout);
      const options = depthwise ? { stride, padding: pad } : { stride, padding: pad, groups };
      const op = depthwise ? 'depthwiseConv2d' : 'conv2d';
      return {
        inputs: { x, weight, dy },
        forward: (b, t) => b[op]!(t.x, t.weight, options),
        backward: (b, t) => b[`${op}Backward`]!(t.dy, t.x, t.weight, options),
      };
    },
  };
}

const cases: Case[] = [
  conv('gconv 1x1 240->60 g=3 @28', 240, 60, 28, 1, 1, 3),
  conv('gconv 1x1 120->480 g=3 @14', 120, 480, 14, 1, 1, 3),
  conv('stem conv 3x3 s2 3->24 @224', 3, 24, 224, 3, 2, 1),
  conv('depthwise 3x3 s1 60ch @28', 60, 60, 28, 3, 1, 60, true),
  conv('depthwise 3x3 s2 120ch @28', 120, 120, 28, 3, 2, 120, true),
  {
    id: 'linear 960->1000 (bias)',
    build(batch) {
      const inputs = { x: rand([batch, 960], 4), weight: rand([1000, 960], 5), bias: rand([1000], 6), dy: rand([batch, 1000], 7) };
      return {
        inputs,
        forward: (b, t) => b.linear!(t.x, t.weight, { bias: t.bias }),
        backward: (b, t) => b.linearBackward!(t.dy, t.x, t.weight, { bias: t.bias }),
      };
    },
  },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function deviceResults(value: unknown): DeviceTensor[] {
  if (value && typeof value === 'object' && 'dispose' in value && 'read' in value) return [value as DeviceTensor];
  if (value && typeof value === 'object') return Object.values(value).flatMap(deviceResults);
  return [];
}

async function timeGpu(gpu: GpuBackend, call: () => Promise<unknown>, runs: number) {
  const before = gpu.stats();
  const known = new Set(before.byKernel.map((k) => k.key));
  let start = performance.now();
  let results = deviceResults(await call());
  for (const r of results) await r.read();
  const first = performance.now() - start;
  const compile = gpu
    .stats()
    .byKernel.filter((k) => !known.has(k.key))
    .reduce((sum, k) => sum + k.compileMs, 0);
  for (const r of results) r.dispose();
  const times: number[] = [];
  const reads: number[] = [];
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    start = performance.now();
    results = deviceResults(await call());
    for (const r of results) await r.read();
    times.push(performance.now() - start);
    start = performance.now();
    for (const r of results) await r.read();
    reads.push(performance.now() - start);
    for (const r of results) r.dispose();
  }
  const used = process.cpuUsage(cpuStart);
  const kernels = gpu
    .stats()
    .byKernel.filter((k) => !known.has(k.key))
    .map((k) => `${k.name} ${k.compileMs.toFixed(0)}/${(k.runMs / Math.max(1, k.runs - 1)).toFixed(2)}`);
  return { first, compile, run: median(times), read: median(reads), cpu: (used.user + used.system) / 1000 / runs, kernels };
}

function timeCpu(call: () => unknown, runs: number): number {
  call();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    call();
    times.push(performance.now() - start);
  }
  return median(times);
}

async function benchmarkMode(mode: GpuMode, batch: number, layouts: Layout[], filter: string): Promise<void> {
  const gpu = await createGpuBackend({ mode });
  const runs = Number(process.env.RUNS ?? 9);
  try {
    for (const c of cases) {
      if (!c.id.includes(filter)) continue;
      for (const layout of c.id.startsWith('linear') ? (['NCHW'] as Layout[]) : layouts) {
        const { inputs, forward, backward } = c.build(batch, layout);
        const onDevice = Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, gpu.upload(t)]));
        for (const [pass, run] of [
          ['forward', forward],
          ['backward', backward],
        ] as const) {
          const g = await timeGpu(gpu, async () => run(gpu as unknown as Ops, onDevice), runs);
          const host = timeCpu(() => run(cpu as unknown as Ops, inputs), runs);
          console.log(
            `${mode} | ${c.id} | ${batch} | ${layout} | ${pass} | ${g.compile.toFixed(0)} | ${g.first.toFixed(0)} | ` +
              `${g.run.toFixed(2)} | ${g.read.toFixed(2)} | ${g.cpu.toFixed(2)} | ${host.toFixed(2)} | ${g.kernels.join(', ')}`,
          );
        }
        for (const t of Object.values(onDevice)) t.dispose();
      }
    }
  } finally {
    await gpu.destroy();
  }
}

const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : undefined;
};
const batch = Number(option('--batch') ?? 1);
const layoutOption = option('--layout');
const layouts: Layout[] = layoutOption ? [layoutOption as Layout] : ['NCHW', 'NHWC'];
const mode = GPU_MODES.find((m) => m === args[0]);
const filter = (mode ? args[1] : args[0]) ?? '';

if (mode) {
  await benchmarkMode(mode, batch, layouts, filter);
} else {
  console.log(
    'mode | case | batch | layout | pass | compile ms | first call ms | run+read ms | read ms | process CPU ms per run (run+2 reads) | cpu backend ms | kernels: compile ms / mean run ms',
  );
  for (const m of GPU_MODES) {
    const self = [
      ...process.execArgv,
      process.argv[1] as string,
      m,
      '--batch',
      String(batch),
      ...(layoutOption ? ['--layout', layoutOption] : []),
      filter,
    ];
    const command = m === 'headlessgl' && !process.env.DISPLAY ? ['xvfb-run', ['-a', process.execPath, ...self]] : [process.execPath, self];
    const child = spawnSync(command[0] as string, command[1] as string[], { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8' });
    const errors = child.stderr.split('\n').filter((line) => line && !line.startsWith('Warning: maxDynamic'));
    if (child.status !== 0) console.log(`${m}: failed (${child.status}): ${errors.join(' / ')}`);
  }
}
