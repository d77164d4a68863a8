import { describe, fail } from '@shuffle/core';
import type { GpuMode } from './modes.js';
import type { GpuLimits } from './types.js';

/**
 * float32 holds every integer up to 2^24 exactly. The webasm, headlessgl and webgpu kernels compute flat
 * indices and their quotients (`Math.floor(i / stride) % extent`) in float32, so past 2^24 elements an
 * index can round to its neighbour: a silently wrong element, not an error. gpu.js's cpu mode computes
 * in float64 and has no such bound.
 */
export const FLOAT32_EXACT_INTEGERS = 2 ** 24;

/** What the device reported, when gpu.js exposes it. */
export interface DeviceReport {
  /** headlessgl: MAX_TEXTURE_SIZE (an output holds one value per texel of a square-ish texture). */
  maxTextureSize?: number;
  /** webgpu: min(maxStorageBufferBindingSize, maxBufferSize), bytes per buffer (one per tensor). */
  maxBufferBytes?: number;
}

/** The largest tensor a mode takes: the float32 index bound or the device's own, whichever is smaller. */
export function limitsFor(mode: GpuMode, device: DeviceReport): GpuLimits {
  const candidates: GpuLimits[] = [];
  if (mode === 'cpu')
    candidates.push({ maxElements: Number.POSITIVE_INFINITY, why: 'cpu mode indexes in float64; host memory is the bound' });
  else {
    candidates.push({
      maxElements: FLOAT32_EXACT_INTEGERS,
      why: `${mode} computes indices in float32, exact up to 2^24 = ${FLOAT32_EXACT_INTEGERS} elements per tensor`,
    });
  }
  if (device.maxTextureSize) {
    const size = device.maxTextureSize;
    candidates.push({ maxElements: size * size, why: `the device's largest texture is ${size}x${size} (one value per texel)` });
  }
  if (device.maxBufferBytes) {
    const bytes = device.maxBufferBytes;
    candidates.push({ maxElements: Math.floor(bytes / 4), why: `the device allows ${bytes} bytes per storage buffer (4 per float32)` });
  }
  return candidates.reduce((a, b) => (b.maxElements < a.maxElements ? b : a));
}

/** Throws a ShuffleArgumentError naming the op and argument when a tensor of `shape` would not fit. */
export function checkFits(op: string, argument: string, shape: readonly number[], limits: GpuLimits): void {
  const size = shape.reduce((a, b) => a * b, 1);
  if (size > limits.maxElements) {
    fail(
      op,
      argument,
      `at most ${limits.maxElements} elements on this gpu backend (${limits.why}); split the batch`,
      `shape ${describe(shape)} (${size} elements)`,
    );
  }
}
