import { execFileSync } from 'node:child_process';
import * as kernels from '@shuffle/kernels';
import { onnxRuntimeTarget } from '../peers/onnx.js';
import { tfjsTarget } from '../peers/tfjs.js';
import { type AsyncBackend, asyncBackendTarget, syncBackendTarget } from './ours.js';
import type { TargetDefinition } from './target.js';

/**
 * Every target the suites know, in the order they run (ours first, so the reference's outputs are at
 * hand when the others are checked). A new backend joins with one registerTarget call: the runner, the
 * reports and the test suite pick it up from here.
 */
const registry = new Map<string, TargetDefinition>();

export function registerTarget(definition: TargetDefinition): void {
  if (registry.has(definition.name)) throw new Error(`benchmark target '${definition.name}' is registered twice`);
  registry.set(definition.name, definition);
}

export function listTargets(): TargetDefinition[] {
  registerBuiltinTargets();
  return [...registry.values()];
}

export function getTarget(name: string): TargetDefinition {
  registerBuiltinTargets();
  const target = registry.get(name);
  if (!target) throw new Error(`unknown benchmark target '${name}'; known: ${[...registry.keys()].join(', ')}`);
  return target;
}

/** The gpu.js modes of the coming gpu backend (design contract: createGpuBackend({ mode })). */
const GPU_MODES = ['cpu', 'webasm', 'headlessgl', 'webgpu'] as const;

function hasCommand(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let registered = false;

function registerBuiltinTargets(): void {
  if (registered) return;
  registered = true;
  const exported = kernels as unknown as Record<string, unknown>;

  registerTarget(
    syncBackendTarget({
      name: 'reference',
      description: 'our reference backend: plain loops over logical indices (the oracle)',
      load: async () => kernels.reference,
    }),
  );

  // The fast CPU backend joins when @shuffle/kernels exports it (a Backend named `cpu`), on one thread and
  // on two (the 2-core machine the targets are set on): a target per thread count rather than a --threads
  // flag, so that one run, one table and one JSON record show the single-thread and the both-cores figures
  // side by side, each with its own ratios against the peers.
  const cpu = exported.cpu as kernels.Backend | undefined;
  if (cpu && typeof cpu === 'object' && typeof cpu.conv2d === 'function') {
    registerTarget(
      syncBackendTarget({
        name: 'cpu',
        description: 'our fast CPU backend (pure TypeScript), one thread',
        load: async () => cpu,
        threads: 1,
      }),
    );
    registerTarget(
      syncBackendTarget({
        name: 'cpu-2t',
        description: 'our fast CPU backend on two threads (setNumThreads(2): GEMM convolutions and linear split across a worker)',
        load: async () => cpu,
        threads: 2,
      }),
    );
  }

  // The gpu backends join when @shuffle/kernels exports createGpuBackend, one target per gpu.js mode;
  // headlessgl and webgpu cannot share a process, so they never do.
  const createGpuBackend = exported.createGpuBackend as ((options: { mode: string }) => Promise<AsyncBackend>) | undefined;
  if (typeof createGpuBackend === 'function') {
    for (const mode of GPU_MODES) {
      registerTarget(
        asyncBackendTarget({
          name: `gpu-${mode}`,
          description: `our gpu backend on gpu.js mode '${mode}'`,
          isolated: mode === 'headlessgl' || mode === 'webgpu',
          wrapper: mode === 'headlessgl' ? () => (!process.env.DISPLAY && hasCommand('xvfb-run') ? ['xvfb-run', '-a'] : []) : undefined,
          open: () => createGpuBackend({ mode }),
        }),
      );
    }
  }

  registerTarget(tfjsTarget('cpu'));
  registerTarget(tfjsTarget('wasm'));
  registerTarget(onnxRuntimeTarget());
}
