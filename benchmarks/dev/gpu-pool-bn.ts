/**
 * Dev benchmark for the gpu backend's pooling, batch-norm and loss kernels at ShuffleNet v1 (g=3, 1.0x,
 * 224) shapes, batch 8, both layouts, on ONE gpu.js mode per process (headlessgl and webgpu cannot share
 * one):
 *
 *   pnpm exec tsx benchmarks/dev/gpu-pool-bn.ts cpu|webasm|webgpu [filter]
 *   xvfb-run -a pnpm exec tsx benchmarks/dev/gpu-pool-bn.ts headlessgl [filter]
 *
 * Per op call it prints:
 * - first: wall ms of the first call (compiling every kernel the call launches, then running them), and
 *   `compile`, the part the kernel cache counts as compile (gpu.js build plus the first run of each
 *   kernel, where drivers finish compiling); the Mesa shader cache (~/.cache/mesa_shader_cache) makes a
 *   second process compile faster, MESA_SHADER_CACHE_DISABLE=true shows cold compiles;
 * - run: median wall ms per call after warm-up, over batches of calls that each end by reading one
 *   value back, so queued device work (webgpu) is counted;
 * - kernels: the launches per call;
 * - and the fast cpu backend's ms per call on the same inputs, for scale.
 */
import { type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { type Backend, cpu, createGpuBackend, type DeviceTensor, type GpuBackend, type GpuMode } from '@shuffle/kernels';

const mode = process.argv[2] as GpuMode;
const filter = process.argv[3] ?? '';
const gpu: GpuBackend = await createGpuBackend({ mode });

const u = (shape: number[], seed: number, layout: Layout = 'NCHW', low = -1, high = 1): Tensor =>
  randomUniform(shape, { seed, layout, low, high });

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/** Every device tensor in an op's result. */
function devices(value: unknown, found: DeviceTensor[] = []): DeviceTensor[] {
  if (value && typeof value === 'object') {
    if ('dispose' in value && 'read' in value) found.push(value as DeviceTensor);
    else for (const v of Object.values(value)) devices(v, found);
  }
  return found;
}

/** Runs the op once, waits for the device (one result read back) and frees the results. */
async function once(run: () => Promise<unknown>, sync: boolean): Promise<void> {
  const out = devices(await run());
  if (sync) await out[0]?.read();
  for (const t of out) t.dispose();
}

interface Case {
  name: string;
  run: () => Promise<unknown>;
  host: (b: Backend) => unknown;
}

async function report({ name, run, host }: Case): Promise<void> {
  if (!`${name}`.includes(filter)) return;
  const before = gpu.stats();
  let start = performance.now();
  await once(run, true);
  const first = performance.now() - start;
  const compile = gpu.stats().compileMs - before.compileMs;
  // Launches per call, counted on a second call: the first also runs the uploads of device tensors
  // made by gpu.upload, which reach the device when a kernel first reads them. Uploads of host
  // arguments (the loss's labels) run a kernel on headlessgl and webgpu only, and are not counted.
  const warm = gpu.stats();
  await once(run, true);
  const uploadRuns = mode === 'headlessgl' || mode === 'webgpu' ? gpu.stats().uploads - warm.uploads : 0;
  const launches = gpu.stats().runs - warm.runs - uploadRuns;
  await once(run, true);
  let reps = 1;
  for (;;) {
    start = performance.now();
    for (let i = 0; i < reps; i++) await once(run, i === reps - 1);
    if (performance.now() - start > 20 || reps >= 256) break;
    reps *= 2;
  }
  const samples: number[] = [];
  const end = performance.now() + 600;
  while (performance.now() < end || samples.length < 5) {
    start = performance.now();
    for (let i = 0; i < reps; i++) await once(run, i === reps - 1);
    samples.push((performance.now() - start) / reps);
  }
  host(cpu);
  start = performance.now();
  let hostRuns = 0;
  while (performance.now() - start < 200 || hostRuns < 3) {
    host(cpu);
    hostRuns++;
  }
  const hostMs = (performance.now() - start) / hostRuns;
  const fmt = (ms: number) => ms.toFixed(ms < 10 ? 2 : 1).padStart(7);
  console.log(
    `${mode.padEnd(10)} ${name.padEnd(44)} first ${fmt(first)} ms (compile ${fmt(compile)})  run ${fmt(median(samples))} ms  ` +
      `kernels ${String(launches).padStart(2)}  | cpu backend ${fmt(hostMs)} ms`,
  );
}

const batch = 8;
for (const layout of ['NCHW', 'NHWC'] as const) {
  const tag = `${layout}`;

  // The stem's max pool: 3x3 stride 2 padding 1, 24 channels at 112x112.
  {
    const options = { kernelSize: 3, stride: 2, padding: 1 };
    const hx = u([batch, 24, 112, 112], 1, layout);
    const hdy = u([batch, 24, 56, 56], 2, layout);
    const x = gpu.upload(hx);
    const dy = gpu.upload(hdy);
    const { saved: hostSaved } = cpu.maxPool2dWithSaved(hx, options);
    const { y, saved } = await gpu.maxPool2dWithSaved(x, options);
    await report({ name: `maxPool 3x3 s2 24ch@112 ${tag}`, run: () => gpu.maxPool2d(x, options), host: (b) => b.maxPool2d(hx, options) });
    await report({
      name: `maxPool withSaved 24ch@112 ${tag}`,
      run: () => gpu.maxPool2dWithSaved(x, options),
      host: (b) => b.maxPool2dWithSaved(hx, options),
    });
    await report({
      name: `maxPool backward (saved) 24ch@112 ${tag}`,
      run: () => gpu.maxPool2dBackward(dy, x, options, saved),
      host: (b) => b.maxPool2dBackward(hdy, hx, options, hostSaved),
    });
    await report({
      name: `maxPool backward (recompute) 24ch@112 ${tag}`,
      run: () => gpu.maxPool2dBackward(dy, x, options),
      host: (b) => b.maxPool2dBackward(hdy, hx, options),
    });
    for (const t of [x, dy, y, saved.argmax]) t.dispose();
  }

  // A stride-2 unit's shortcut: avg pool 3x3 stride 2 padding 1, 480 channels at 14x14.
  {
    const options = { kernelSize: 3, stride: 2, padding: 1 };
    const hx = u([batch, 480, 14, 14], 3, layout);
    const hdy = u([batch, 480, 7, 7], 4, layout);
    const x = gpu.upload(hx);
    const dy = gpu.upload(hdy);
    await report({
      name: `avgPool 3x3 s2 p1 480ch@14 ${tag}`,
      run: () => gpu.avgPool2d(x, options),
      host: (b) => b.avgPool2d(hx, options),
    });
    await report({
      name: `avgPool backward 480ch@14 ${tag}`,
      run: () => gpu.avgPool2dBackward(dy, x, options),
      host: (b) => b.avgPool2dBackward(hdy, hx, options),
    });
    for (const t of [x, dy]) t.dispose();
  }

  for (const [channels, size] of [
    [240, 28],
    [960, 7],
  ] as const) {
    const hx = u([batch, channels, size, size], 5, layout);
    const hdy = u([batch, channels, size, size], 6, layout);
    const hgamma = u([channels], 7);
    const hbeta = u([channels], 8);
    const hmean = u([channels], 9);
    const hvar = u([channels], 10, 'NCHW', 0.5, 2);
    const [x, dy, gamma, beta, mean, variance] = [hx, hdy, hgamma, hbeta, hmean, hvar].map((t) => gpu.upload(t)) as DeviceTensor[];
    const [runningMean, runningVar] = [gpu.upload(hmean), gpu.upload(hvar)];
    const training = { training: true };
    const at = `${channels}ch@${size} ${tag}`;
    await report({
      name: `bn inference ${at}`,
      run: () => gpu.batchNorm2d(x!, gamma!, beta!, mean!, variance!),
      host: (b) => b.batchNorm2d(hx, hgamma, hbeta, hmean, hvar),
    });
    await report({
      name: `bn training ${at}`,
      run: () => gpu.batchNorm2d(x!, gamma!, beta!, runningMean, runningVar, training),
      host: (b) => b.batchNorm2d(hx, hgamma, hbeta, hmean.clone(), hvar.clone(), training),
    });
    await report({
      name: `bn training withSaved ${at}`,
      run: () => gpu.batchNorm2dWithSaved(x!, gamma!, beta!, runningMean, runningVar, training),
      host: (b) => b.batchNorm2dWithSaved(hx, hgamma, hbeta, hmean.clone(), hvar.clone(), training),
    });
    const { y, saved } = await gpu.batchNorm2dWithSaved(x!, gamma!, beta!, runningMean, runningVar, training);
    const { saved: hostSaved } = cpu.batchNorm2dWithSaved(hx, hgamma, hbeta, hmean.clone(), hvar.clone(), training);
    await report({
      name: `bn backward training ${at}`,
      run: () => gpu.batchNorm2dBackward(dy!, x!, gamma!, saved, training),
      host: (b) => b.batchNorm2dBackward(hdy, hx, hgamma, hostSaved, training),
    });
    await report({
      name: `bn backward inference ${at}`,
      run: () => gpu.batchNorm2dBackward(dy!, x!, gamma!, saved),
      host: (b) => b.batchNorm2dBackward(hdy, hx, hgamma, hostSaved),
    });
    for (const t of [x, dy, gamma, beta, mean, variance, runningMean, runningVar, y, saved.mean, saved.invStd]) t!.dispose();
  }
}

// The classifier's loss: 1000 classes, batch 8, with label smoothing.
{
  const hlogits = u([batch, 1000], 11, 'NCHW', -5, 5);
  const labels = Array.from({ length: batch }, (_, i) => (i * 37) % 1000);
  const hone = u([], 12);
  const logits = gpu.upload(hlogits);
  const one = gpu.upload(hone);
  const options = { labelSmoothing: 0.1 };
  await report({
    name: 'softmaxCE 1000 classes N=8',
    run: () => gpu.softmaxCrossEntropy(logits, labels, options),
    host: (b) => b.softmaxCrossEntropy(hlogits, labels, options),
  });
  await report({
    name: 'softmaxCE backward 1000 classes N=8',
    run: () => gpu.softmaxCrossEntropyBackward(one, logits, labels, options),
    host: (b) => b.softmaxCrossEntropyBackward(hone, hlogits, labels, options),
  });
  logits.dispose();
  one.dispose();
}

const s = gpu.stats();
console.log(`${mode}: ${s.kernels} kernels compiled in ${s.compileMs.toFixed(0)} ms; ${s.liveTensors} device tensors left`);
await gpu.destroy();
