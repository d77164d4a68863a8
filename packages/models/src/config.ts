import { type DType, describe, fail } from '@shuffle/core';
import { type Backend, cpu, type GpuBackend } from '@shuffle/kernels';

/** Group counts of the ShuffleNet v1 paper's Table 1. */
export const SHUFFLENET_V1_GROUPS = [1, 2, 3, 4, 8] as const;
export type ShuffleNetV1Groups = (typeof SHUFFLENET_V1_GROUPS)[number];

/** Width multipliers with a channel table (0.25x is derived, see {@link shuffleNetV1Channels}). */
export const SHUFFLENET_V1_WIDTHS = [0.25, 0.5, 1, 1.5, 2] as const;
export type ShuffleNetV1Width = (typeof SHUFFLENET_V1_WIDTHS)[number];

/** Channels of the stem conv and the output of stages 2, 3 and 4. */
export interface ShuffleNetV1Channels {
  conv1: number;
  stages: readonly [number, number, number];
}

export interface ShuffleNetV1Options {
  /** Groups of the pointwise convolutions. Default 3 (the official model). */
  groups?: ShuffleNetV1Groups;
  /** Width multiplier selecting a channel table. Default 1. Ignored when `channels` is given. */
  width?: ShuffleNetV1Width;
  /** Channels of your own instead of the width's table (e.g. a tiny network for tests). */
  channels?: ShuffleNetV1Channels;
  /** Units per stage, the first of each being the stride-2 unit. Default [4, 8, 4]. */
  repeats?: readonly [number, number, number];
  /** Default 1000. */
  numClasses?: number;
  /** Height = width of the input the model is built for: the default input of `describe` and `countMacs`. Default 224. */
  inputSize?: number;
  /** Default 3. */
  inChannels?: number;
  /**
   * 'imagenet' (default, the official model): 3x3 stride-2 conv + BN + ReLU, then 3x3 stride-2 max pool,
   * so stage 2 sees 1/4 of the input size. 'small' for small images (28x28 digits, 32x32 objects):
   * 3x3 stride-1 conv + BN + ReLU and no pool, so stage 2 sees the full input and 28x28 ends at 4x4.
   */
  stem?: 'imagenet' | 'small';
  /**
   * Where each unit shuffles its channels. 'paper' (default): after the first pointwise conv's BN + ReLU,
   * in the paper's order. 'official': after the depthwise conv's BN, in the official code's (inverse)
   * order, so that the official checkpoint's weights compute what they were trained to.
   */
  shuffle?: 'paper' | 'official';
  /** A bias on the classifier. Default false (the official model has none). */
  classifierBias?: boolean;
  /**
   * Where the ops run. Default `cpu`, the fast CPU backend of @shuffle/kernels. A GpuBackend (from
   * createGpuBackend) runs the model through forwardAsync / backwardAsync instead of forward / backward.
   */
  backend?: Backend | GpuBackend;
  /** Default 'float32'; 'float64' is for gradient checks on the reference backend. */
  dtype?: DType;
  /** Seed of the weight initialisation. Default 0. */
  seed?: number;
  /**
   * How conv and linear weights start: 'he' (default) draws He-normal values N(0, 2 / fanIn) from the
   * seed; 'zeros' skips the draw, for a model whose weights are about to be loaded from a checkpoint.
   * Batch norm always starts at gamma = 1, beta = 0, running mean 0, running variance 1.
   */
  init?: 'he' | 'zeros';
}

/** Every option resolved, plus the derived per-stage numbers. */
export interface ShuffleNetV1Config {
  groups: number;
  /** The width multiplier, or null for custom channels. */
  width: number | null;
  channels: ShuffleNetV1Channels;
  repeats: readonly [number, number, number];
  numClasses: number;
  inputSize: number;
  inChannels: number;
  stem: 'imagenet' | 'small';
  shuffle: 'paper' | 'official';
  classifierBias: boolean;
  dtype: DType;
  seed: number;
  init: 'he' | 'zeros';
  /** A short name like 'g3 1x' or 'g2 custom channels [4, 16, 32, 64]', for messages. */
  label: string;
}

/** Output channels of stages 2, 3 and 4 of the paper's 1x networks (Table 1). */
const PAPER_1X: Record<ShuffleNetV1Groups, readonly [number, number, number]> = {
  1: [144, 288, 576],
  2: [200, 400, 800],
  3: [240, 480, 960],
  4: [272, 544, 1088],
  8: [384, 768, 1536],
};

/** megvii-model/ShuffleNet-Series ShuffleNetV1/network.py: [conv1, stage 2, stage 3, stage 4]. */
const MEGVII: Partial<Record<ShuffleNetV1Groups, Partial<Record<ShuffleNetV1Width, readonly [number, number, number, number]>>>> = {
  3: { 0.5: [12, 120, 240, 480], 1: [24, 240, 480, 960], 1.5: [24, 360, 720, 1440], 2: [48, 480, 960, 1920] },
  8: { 0.5: [16, 192, 384, 768], 1: [24, 384, 768, 1536], 1.5: [24, 576, 1152, 2304], 2: [48, 768, 1536, 3072] },
};

/**
 * The stem's channels per width: megvii's for 0.5x to 2x; 0.25x is not published anywhere, so we take
 * 24 * 0.25 = 6, the rule of the other public ShuffleNet v1 code (osmr/imgclsmob: int(24 * width)).
 */
const CONV1: Record<ShuffleNetV1Width, number> = { 0.25: 6, 0.5: 12, 1: 24, 1.5: 24, 2: 48 };

/**
 * [conv1, stage 2, stage 3, stage 4] for a group count and width, as the reference sheet's
 * `stage_channels()` (shufflenet_count.py): megvii's published table for g = 3 and 8; otherwise the
 * paper's 1x stage-2 width times the multiplier, rounded half up to a multiple of 4g (so that the
 * bottleneck, a quarter of it, still splits into g groups), doubled for each later stage. That rule
 * reproduces megvii's table for g = 3 and 8 wherever it is published (0.5x to 2x).
 */
export function shuffleNetV1Channels(groups: ShuffleNetV1Groups, width: ShuffleNetV1Width): ShuffleNetV1Channels {
  const published = MEGVII[groups]?.[width];
  if (published) {
    const [conv1, c2, c3, c4] = published;
    return { conv1, stages: [c2, c3, c4] };
  }
  const multiple = 4 * groups;
  const stage2 = Math.floor((PAPER_1X[groups][0] * width + multiple / 2) / multiple) * multiple;
  return { conv1: CONV1[width], stages: [stage2, 2 * stage2, 4 * stage2] };
}

const OP = 'shuffleNetV1';

/** Checks the options, fills in the defaults and checks that every grouped channel count divides. */
export function resolveShuffleNetV1Config(options: ShuffleNetV1Options): ShuffleNetV1Config {
  if (options === null || typeof options !== 'object') fail(OP, 'options', 'an object like { groups, width, backend }', options);
  const {
    groups = 3,
    width,
    channels: customChannels,
    repeats = [4, 8, 4],
    numClasses = 1000,
    inputSize = 224,
    inChannels = 3,
    stem = 'imagenet',
    shuffle = 'paper',
    classifierBias = false,
    dtype = 'float32',
    seed = 0,
    init = 'he',
  } = options;
  if (!SHUFFLENET_V1_GROUPS.includes(groups)) fail(OP, 'groups', `one of ${SHUFFLENET_V1_GROUPS.join(', ')}`, groups);
  for (const [name, value] of Object.entries({ numClasses, inputSize, inChannels })) {
    if (!Number.isInteger(value) || value < 1) fail(OP, name, 'a positive integer', value);
  }
  if (stem !== 'imagenet' && stem !== 'small') fail(OP, 'stem', "'imagenet' or 'small'", stem);
  if (shuffle !== 'paper' && shuffle !== 'official') fail(OP, 'shuffle', "'paper' or 'official'", shuffle);
  if (typeof classifierBias !== 'boolean') fail(OP, 'classifierBias', 'a boolean', classifierBias);
  if (dtype !== 'float32' && dtype !== 'float64') fail(OP, 'dtype', "'float32' or 'float64'", dtype);
  if (!Number.isInteger(seed)) fail(OP, 'seed', 'an integer', seed);
  if (init !== 'he' && init !== 'zeros') fail(OP, 'init', "'he' or 'zeros'", init);
  if (!Array.isArray(repeats) || repeats.length !== 3 || !repeats.every((r) => Number.isInteger(r) && r >= 1)) {
    fail(OP, 'repeats', 'three positive integers (units per stage, the stride-2 unit included)', repeats);
  }
  checkBackend(options.backend ?? cpu);

  let channels: ShuffleNetV1Channels;
  let label: string;
  if (customChannels !== undefined) {
    if (width !== undefined) fail(OP, 'width', 'undefined when channels is given (channels replace the width table)', width);
    const { conv1, stages } = customChannels ?? {};
    const all = [conv1, ...(Array.isArray(stages) ? stages : [])];
    if (!Array.isArray(stages) || stages.length !== 3 || !all.every((c) => Number.isInteger(c) && (c as number) >= 1)) {
      fail(OP, 'channels', '{ conv1, stages: [c2, c3, c4] } of positive integers', customChannels);
    }
    channels = { conv1: conv1 as number, stages: [...stages] as [number, number, number] };
    label = `g${groups} channels ${describe([channels.conv1, ...channels.stages])}`;
  } else {
    const w = width ?? 1;
    if (!SHUFFLENET_V1_WIDTHS.includes(w)) {
      fail(OP, 'width', `one of ${SHUFFLENET_V1_WIDTHS.join(', ')} (or pass channels)`, w);
    }
    channels = shuffleNetV1Channels(groups, w);
    label = `g${groups} ${w}x`;
  }
  checkDivisibility(groups, channels, label);
  return {
    groups,
    width: customChannels === undefined ? (width ?? 1) : null,
    channels,
    repeats: [...repeats] as [number, number, number],
    numClasses,
    inputSize,
    inChannels,
    stem,
    shuffle,
    classifierBias,
    dtype,
    seed,
    init,
    label,
  };
}

/**
 * A unit's bottleneck is a quarter of its output (mid = out / 4); the grouped pointwise convs and the
 * shuffle need mid and the branch output divisible by g, and a stride-2 unit's branch makes the
 * channels the shortcut lacks (out - in > 0). Stage 2's first pointwise conv is dense, so its input
 * (the stem's channels) may be anything.
 */
function checkDivisibility(groups: number, channels: ShuffleNetV1Channels, label: string): void {
  const all = describe([channels.conv1, ...channels.stages]);
  let inChannels = channels.conv1;
  channels.stages.forEach((out, s) => {
    const stage = `stage ${s + 2}`;
    const problem = (what: string) =>
      fail(OP, 'channels', `channel counts that ShuffleNet v1 ${label} can divide (${stage}: ${what}); pick other channels`, all);
    if (out % 4 !== 0) problem(`output ${out} is not a multiple of 4, so the bottleneck out / 4 is not whole`);
    const mid = out / 4;
    if (mid % groups !== 0) problem(`bottleneck ${mid} = ${out} / 4 does not split into ${groups} groups`);
    const branchOut = out - inChannels;
    if (branchOut < 1) problem(`the stride-2 unit's output ${out} must exceed its input ${inChannels}`);
    if (branchOut % groups !== 0) {
      problem(`the stride-2 unit's branch makes ${out} - ${inChannels} = ${branchOut} channels, not divisible by ${groups} groups`);
    }
    if (s > 0 && inChannels % groups !== 0) problem(`input ${inChannels} does not split into ${groups} groups`);
    inChannels = out;
  });
}

function checkBackend(backend: unknown): asserts backend is Backend {
  const required = ['conv2d', 'depthwiseConv2d', 'batchNorm2dWithSaved', 'channelShuffle', 'linear', 'concat', 'add'];
  if (
    backend === null ||
    typeof backend !== 'object' ||
    !required.every((m) => typeof (backend as Record<string, unknown>)[m] === 'function')
  ) {
    fail(OP, 'backend', 'a Backend (e.g. reference from @shuffle/kernels)', backend);
  }
}
