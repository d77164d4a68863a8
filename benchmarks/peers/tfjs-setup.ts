import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import { TargetUnavailableError } from '../targets/target.js';

/**
 * Loading TensorFlow.js 4.22.0 on one backend, in this process.
 *
 * - tfjs-core's Node bundle registers no gradient functions, so the op backward cases call the gradient
 *   kernels directly (Conv2DBackpropInput / Conv2DBackpropFilter, MaxPoolGrad, ...), and the training
 *   steps load the union package @tensorflow/tfjs, whose import registers the gradients for tf.grad.
 * - tfjs-backend-wasm has no Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter or
 *   DepthwiseConv2dNativeBackpropInput kernel. We register wasm kernels under those names that borrow
 *   tfjs-backend-cpu's: copy the inputs out of the wasm heap, run the cpu kernel, copy the result back.
 *   Cases that use them say so, and their times include the copies.
 * - tfjs-backend-wasm 4.22.0's MaxPoolGrad is wrong where a window overlaps the padding and its maximum
 *   is <= 0: it routes that window's gradient as if the padding held zeros. The max-pool backward case
 *   shows it (the validation reports it invalid) and also times tfjs-cpu's MaxPoolGrad, borrowed as
 *   above. The training steps keep the native kernel: ShuffleNet pools after a ReLU, so such a window
 *   holds only zeros and the ReLU's backward drops whatever gradient they get (the steps' validation
 *   confirms it).
 * - Under Node, tfjs-backend-wasm runs single-threaded (WASM_HAS_MULTITHREAD_SUPPORT is false: its
 *   threaded build needs browser workers) with SIMD: that is what Node users get, and what we compare.
 */

export type Tf = typeof import('@tensorflow/tfjs-core');

export interface TfjsContext {
  tf: Tf;
  backend: 'cpu' | 'wasm';
  /** Kernels the wasm backend borrows from the cpu backend. */
  borrowed: string[];
  /** tfjs-cpu kernels to call on wasm tensors directly (through `runKernelConfig`), not registered. */
  cpuFallbacks: Map<string, KernelConfig>;
  details: Record<string, string>;
}

const WASM_MISSING = ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'];
/** wasm kernels that give wrong results in some cases (found by the validation): tfjs-cpu's stand by. */
const WASM_WRONG = ['MaxPoolGrad'];

/** CommonJS modules come through import() as a namespace or as its default; take whichever holds the API. */
function moduleOf<T>(namespace: unknown, probe: string): T {
  const ns = namespace as Record<string, unknown>;
  return (probe in ns ? ns : ns.default) as T;
}

interface BackendWithData {
  write(values: unknown, shape: number[], dtype: string): object;
  readSync(dataId: object): ArrayLike<number>;
  disposeData(dataId: object, force?: boolean): boolean;
  makeOutput?(shape: number[], dtype: string, memoryOffset?: number, values?: unknown): TensorInfo;
}

/** A wasm kernel that runs the cpu backend's kernel of the same name on copies of its inputs. */
function borrowFromCpu(tf: Tf, kernelName: string): KernelConfig {
  const cpuKernel = tf.getKernel(kernelName, 'cpu');
  if (!cpuKernel) throw new Error(`tfjs-backend-cpu has no ${kernelName} kernel to borrow`);
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const wasm = backend as unknown as BackendWithData;
      const cpu = tf.engine().findBackend('cpu') as unknown as BackendWithData;
      const cpuInputs: Record<string, TensorInfo> = {};
      for (const [name, info] of Object.entries(inputs)) {
        if (!info) continue;
        const values = wasm.readSync(info.dataId);
        cpuInputs[name] = { dataId: cpu.write(values, info.shape, info.dtype), shape: info.shape, dtype: info.dtype };
      }
      const result = cpuKernel.kernelFunc({ inputs: cpuInputs, attrs, backend: cpu as never }) as TensorInfo;
      const values = cpu.readSync(result.dataId);
      for (const info of [...Object.values(cpuInputs), result]) cpu.disposeData(info.dataId, true);
      return (wasm.makeOutput as NonNullable<BackendWithData['makeOutput']>)(result.shape, result.dtype, undefined, values);
    },
  };
}

export async function openTfjs(backend: 'cpu' | 'wasm'): Promise<TfjsContext> {
  const name = `tfjs-${backend}`;
  let tf: Tf;
  try {
    tf = moduleOf<Tf>(await import('@tensorflow/tfjs-core'), 'setBackend');
    await import('@tensorflow/tfjs-backend-cpu');
    if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  } catch (error) {
    throw new TargetUnavailableError(
      name,
      `TensorFlow.js could not be loaded (${(error as Error).message.split('\n')[0]}); run pnpm install`,
    );
  }
  // Production mode: no per-kernel NaN checks or debug bookkeeping, as users would deploy it.
  tf.enableProdMode();
  if (!(await tf.setBackend(backend))) throw new TargetUnavailableError(name, `tf.setBackend('${backend}') failed`);
  await tf.ready();
  const borrowed: string[] = [];
  const cpuFallbacks = new Map<string, KernelConfig>();
  if (backend === 'wasm') {
    // The cpu backend must exist for the borrowed kernels to run on.
    tf.engine().findBackend('cpu');
    for (const kernelName of WASM_MISSING) {
      if (tf.getKernel(kernelName, 'wasm')) continue;
      tf.registerKernel(borrowFromCpu(tf, kernelName));
      borrowed.push(kernelName);
    }
    for (const kernelName of WASM_WRONG) cpuFallbacks.set(kernelName, borrowFromCpu(tf, kernelName));
  }
  const details: Record<string, string> = { version: tf.version_core, backend: tf.getBackend() };
  if (backend === 'wasm') {
    details.simd = String(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    details.threads = String(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
    details.note = `single-threaded${details.simd === 'true' ? ' SIMD' : ''} under Node (multithread support: ${details.threads})`;
    if (borrowed.length) details.borrowed = `${borrowed.join(', ')} from tfjs-backend-cpu (copies in and out)`;
    details.MaxPoolGrad = 'native; wrong where a window overlaps the padding and its maximum is <= 0 (harmless after a ReLU)';
  }
  return { tf, backend, borrowed, cpuFallbacks, details };
}

let unionLoaded: Promise<void> | undefined;

/** Registers TensorFlow.js's gradient functions (the union package's import does), for tf.grad in training steps. */
export function loadGradients(): Promise<void> {
  unionLoaded ??= import('@tensorflow/tfjs').then(() => undefined);
  return unionLoaded;
}

/** Runs a kernel config that is not registered (a tfjs-cpu fallback) on the active backend's tensors. */
export function runKernelConfig(
  ctx: TfjsContext,
  kernel: KernelConfig,
  inputs: Record<string, TensorInfo>,
  attrs: Record<string, unknown>,
) {
  const engine = ctx.tf.engine();
  const info = kernel.kernelFunc({ inputs, attrs: attrs as never, backend: engine.backend }) as TensorInfo;
  return engine.makeTensorFromTensorInfo(info);
}
