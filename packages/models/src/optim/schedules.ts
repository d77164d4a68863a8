import { fail } from '@shuffle/core';

/** The learning rate for step t (0-based: t = 0 is the first update). */
export type LrSchedule = (step: number) => number;

export interface ScheduleOptions {
  /** The peak learning rate (reached after warmup). */
  lr: number;
  /** Steps the schedule spans; from this step on it returns `floor`. */
  totalSteps: number;
  /** The last learning rate. Default 0. */
  floor?: number;
  /**
   * Steps of linear warmup: step t < warmupSteps uses lr * (t + 1) / warmupSteps, so the first update is
   * already non-zero and step warmupSteps - 1 reaches lr. Default 0.
   */
  warmupSteps?: number;
}

/**
 * Linear decay from `lr` to `floor` over the steps after warmup (the official ShuffleNet recipe decays
 * linearly to 0 over all iterations):
 *   lr(t) = floor + (lr - floor) * (1 - (t - warmup) / (total - warmup)).
 */
export function linearDecay(options: ScheduleOptions): LrSchedule {
  const { lr, totalSteps, floor, warmupSteps } = checkSchedule('linearDecay', options);
  return (step) => {
    checkStep('linearDecay', step);
    if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
    if (step >= totalSteps) return floor;
    const progress = (step - warmupSteps) / (totalSteps - warmupSteps);
    return floor + (lr - floor) * (1 - progress);
  };
}

/**
 * Cosine decay from `lr` to `floor` over the steps after warmup (Loshchilov and Hutter's SGDR without
 * restarts):
 *   lr(t) = floor + (lr - floor) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2.
 * It stays near `lr` early and near `floor` late, and falls fastest in the middle.
 */
export function cosineDecay(options: ScheduleOptions): LrSchedule {
  const { lr, totalSteps, floor, warmupSteps } = checkSchedule('cosineDecay', options);
  return (step) => {
    checkStep('cosineDecay', step);
    if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
    if (step >= totalSteps) return floor;
    const progress = (step - warmupSteps) / (totalSteps - warmupSteps);
    return floor + ((lr - floor) * (1 + Math.cos(Math.PI * progress))) / 2;
  };
}

/** The same learning rate at every step. */
export function constantLr(lr: number): LrSchedule {
  if (typeof lr !== 'number' || !(lr >= 0 && Number.isFinite(lr))) fail('constantLr', 'lr', 'a finite number >= 0', lr);
  return (step) => {
    checkStep('constantLr', step);
    return lr;
  };
}

function checkSchedule(op: string, options: unknown): Required<ScheduleOptions> {
  if (options === null || typeof options !== 'object') fail(op, 'options', 'an object like { lr, totalSteps }', options);
  const { lr, totalSteps, floor = 0, warmupSteps = 0 } = options as ScheduleOptions;
  if (typeof lr !== 'number' || !(lr > 0 && Number.isFinite(lr))) fail(op, 'options.lr', 'a finite number > 0', lr);
  if (typeof totalSteps !== 'number' || !Number.isInteger(totalSteps) || totalSteps < 1) {
    fail(op, 'options.totalSteps', 'a positive integer', totalSteps);
  }
  if (typeof floor !== 'number' || !(floor >= 0 && floor <= lr)) fail(op, 'options.floor', `a number in [0, lr = ${lr}]`, floor);
  if (typeof warmupSteps !== 'number' || !Number.isInteger(warmupSteps) || warmupSteps < 0 || warmupSteps >= totalSteps) {
    fail(op, 'options.warmupSteps', `an integer in [0, totalSteps - 1 = ${totalSteps - 1}]`, warmupSteps);
  }
  return { lr, totalSteps, floor, warmupSteps };
}

function checkStep(op: string, step: unknown): void {
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) fail(op, 'step', 'a non-negative integer', step);
}
