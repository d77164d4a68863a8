import type { GpuBackend, GpuBackendOptions } from './gpu/types.js';

export type { AvgPool2dOptions } from './avg-pool2d/spec.js';
export type { Backend } from './backends/backend.js';
export { cpu } from './backends/cpu.js';
export { reference } from './backends/reference.js';
export type { BatchNorm2dOptions, BatchNorm2dSaved } from './batch-norm2d/spec.js';
export type { ChannelShuffleOptions } from './channel-shuffle/spec.js';
export { TensorArena, type TensorArenaOptions, type TensorArenaStats } from './common/arena.js';
export type { Pad4, Padding, Pair } from './common/args.js';
export { getNumThreads, setNumThreads } from './common/threads.js';
export type { Conv2dOptions } from './conv2d/spec.js';
export type { DepthwiseConv2dOptions } from './depthwise-conv2d/spec.js';
export type { DeviceTensor } from './gpu/device-tensor.js';
export { checkGpuMode, GPU_MODES, type GpuMode, type GpuModeStatus, GpuUnavailableError, openGpu } from './gpu/modes.js';

export type {
  GpuBackend,
  GpuBackendOps,
  GpuBackendOptions,
  GpuBatchNorm2dSaved,
  GpuKernelStats,
  GpuLimits,
  GpuMaxPool2dSaved,
  GpuOps,
  GpuPipeline,
  GpuPipelineExecutor,
  GpuPipelineTotals,
  GpuStats,
  TensorArg,
} from './gpu/types.js';
export type { LinearOptions } from './linear/spec.js';
export type { MaxPool2dOptions, MaxPool2dSaved } from './max-pool2d/spec.js';
export * from './ops.js';
export type { Labels, SoftmaxCrossEntropyOptions } from './softmax-cross-entropy/spec.js';

/**
 * A gpu backend on one explicitly named gpu.js mode: every op and backward, async, device tensors in and
 * out. gpu.js (and `gl` or `webgpu`) load here, at the first call, never at import.
 */
export async function createGpuBackend(options: GpuBackendOptions): Promise<GpuBackend> {
  const { openGpuBackend } = await import('./gpu/backend.js');
  return openGpuBackend(options);
}
