import type { NetworkCase, NetworkSpec } from './case.js';
import { windowOut } from './ops.js';

/**
 * The whole-network and training-step cases, and the architecture they share with the peers' own
 * implementations: a ShuffleNet v1 "plan" (every unit's channels, groups and stride) that the TensorFlow.js
 * and ONNX builders follow, so that every library computes the same network with the same weights.
 *
 * The plan follows the official model (megvii ShuffleNetV1), which the design contract names the
 * parameters after: stem `first_conv` (3x3 conv, BN, ReLU; stride 2 then a 3x3 s2 max pool for the
 * 'imagenet' stem, stride 1 and no pool for 'small'), 16 units `features.0..15` in stages of 4, 8 and 4
 * whose first unit has stride 2, global average pool, `classifier.0` (no bias). A unit:
 *
 *   branch_main_1: 1x1 conv (groups g, or 1 in the very first unit) -> BN -> ReLU -> [shuffle] -> 3x3 depthwise (stride s) -> BN
 *   branch_main_2: 1x1 conv (groups g) -> BN
 *   stride 1: relu(x + branch)           stride 2: concat(avgpool3x3 s2 p1(x), relu(branch))
 *
 * with the shuffle in the paper's place and order (the contract's default `shuffle: 'paper'`).
 */

export interface UnitPlan {
  /** 'features.k' */
  key: string;
  inChannels: number;
  outChannels: number;
  /** Bottleneck channels (out / 4). */
  mid: number;
  /** Channels the branch makes: out (stride 1) or out - in (stride 2, the shortcut brings the rest). */
  branchOut: number;
  stride: 1 | 2;
  /** Groups of the first 1x1 conv: 1 in the first unit (its input, the stem, is narrow), else `groups`. */
  firstGroups: number;
  groups: number;
}

export interface NetworkPlan {
  groups: number;
  stem: 'imagenet' | 'small';
  inChannels: number;
  conv1: number;
  units: UnitPlan[];
  /** Channels into the classifier. */
  features: number;
  numClasses: number;
  classifierBias: boolean;
}

/** Units per stage (the first of each has stride 2). */
export const STAGE_REPEATS = [4, 8, 4] as const;
export const BN_EPS = 1e-5;

/** [conv1, stage 2, stage 3, stage 4] of the configurations benchmarked (megvii's table; 0.25x by the paper's rule). */
const CHANNELS: Record<string, readonly [number, number, number, number]> = {
  'g3-1': [24, 240, 480, 960],
  'g8-1': [24, 384, 768, 1536],
  'g3-0.25': [6, 60, 120, 240],
  'g8-0.5': [16, 192, 384, 768],
};

/** The plan of a configuration from the channel table (used to count FLOPs before any model exists). */
export function planFromSpec(spec: NetworkSpec): NetworkPlan {
  const channels = CHANNELS[`g${spec.groups}-${spec.width}`];
  if (!channels) throw new Error(`no channel table for ShuffleNet v1 g=${spec.groups} ${widthLabel(spec.width)} in the benchmarks`);
  const [conv1, ...stages] = channels;
  const units: UnitPlan[] = [];
  let inChannels = conv1;
  stages.forEach((out, stage) => {
    for (let i = 0; i < (STAGE_REPEATS[stage] as number); i++) {
      const stride = i === 0 ? 2 : 1;
      units.push({
        key: `features.${units.length}`,
        inChannels,
        outChannels: out,
        mid: out / 4,
        branchOut: stride === 2 ? out - inChannels : out,
        stride,
        firstGroups: units.length === 0 ? 1 : spec.groups,
        groups: spec.groups,
      });
      inChannels = out;
    }
  });
  return {
    groups: spec.groups,
    stem: spec.stem,
    inChannels: 3,
    conv1,
    units,
    features: inChannels,
    numClasses: spec.numClasses,
    classifierBias: false,
  };
}

export interface WeightEntry {
  shape: readonly number[];
  data: Float32Array;
}
export type WeightMap = ReadonlyMap<string, WeightEntry>;

/**
 * The plan read back from a model's parameters (their names and shapes are the design contract's), so
 * that the peers follow the model that exists rather than a table; throws if it is not ShuffleNet v1.
 */
export function planFromWeights(spec: NetworkSpec, weights: WeightMap): NetworkPlan {
  const get = (name: string) => {
    const w = weights.get(name);
    if (!w) throw new Error(`ShuffleNet v1 parameter '${name}' is missing (have ${[...weights.keys()].slice(0, 4).join(', ')}, ...)`);
    return w.shape;
  };
  const [conv1, inChannels] = get('first_conv.0.weight') as [number, number];
  const unitCount = STAGE_REPEATS.reduce((a, b) => a + b, 0);
  const starts = new Set([0, STAGE_REPEATS[0], STAGE_REPEATS[0] + STAGE_REPEATS[1]]);
  const units: UnitPlan[] = [];
  let channels = conv1;
  for (let k = 0; k < unitCount; k++) {
    const key = `features.${k}`;
    const [mid, inPerGroup] = get(`${key}.branch_main_1.0.weight`) as [number, number];
    const [branchOut, midPerGroup] = get(`${key}.branch_main_2.0.weight`) as [number, number];
    const stride = starts.has(k) ? 2 : 1;
    const outChannels = stride === 2 ? channels + branchOut : branchOut;
    if (stride === 1 && branchOut !== channels)
      throw new Error(`${key}: a stride-1 unit must keep ${channels} channels, its branch makes ${branchOut}`);
    units.push({
      key,
      inChannels: channels,
      outChannels,
      mid,
      branchOut,
      stride,
      firstGroups: channels / inPerGroup,
      groups: mid / midPerGroup,
    });
    channels = outChannels;
  }
  const [numClasses, features] = get('classifier.0.weight') as [number, number];
  if (features !== channels) throw new Error(`classifier.0.weight expects ${features} features, the last unit makes ${channels}`);
  return {
    groups: spec.groups,
    stem: spec.stem,
    inChannels,
    conv1,
    units,
    features,
    numClasses,
    classifierBias: weights.has('classifier.0.bias'),
  };
}

/** Multiply-adds of one image (convolutions and the classifier, as the papers count). */
export function planMacs(plan: NetworkPlan, inputSize: number): number {
  let size = windowOut(inputSize, 3, plan.stem === 'imagenet' ? 2 : 1, 1);
  let macs = size * size * plan.conv1 * plan.inChannels * 9;
  if (plan.stem === 'imagenet') size = windowOut(size, 3, 2, 1);
  for (const u of plan.units) {
    macs += size * size * u.mid * (u.inChannels / u.firstGroups);
    const out = windowOut(size, 3, u.stride, 1);
    macs += out * out * u.mid * 9;
    macs += out * out * u.branchOut * (u.mid / u.groups);
    size = out;
  }
  return macs + plan.features * plan.numClasses;
}

/** Bytes of float32 parameters. */
function parameterBytes(plan: NetworkPlan): number {
  let count = plan.conv1 * plan.inChannels * 9 + 2 * plan.conv1;
  for (const u of plan.units) {
    count +=
      u.mid * (u.inChannels / u.firstGroups) + 2 * u.mid + u.mid * 9 + 2 * u.mid + u.branchOut * (u.mid / u.groups) + 2 * u.branchOut;
  }
  return 4 * (count + plan.features * plan.numClasses);
}

/** 1 -> "1.0x", 0.25 -> "0.25x", as the papers write widths. */
function widthLabel(width: number): string {
  return `${Number.isInteger(width) ? width.toFixed(1) : String(width)}x`;
}

export function networkLabel(spec: NetworkSpec): string {
  return `g${spec.groups}-${widthLabel(spec.width)}@${spec.inputSize}${spec.stem === 'small' ? '-small' : ''}`;
}

/**
 * Training steps at full size are checked loosely. A batch-norm backward sums over every position of a
 * channel (8 x 112 x 112 values in the stem at batch 8) terms that largely cancel, so the accumulator's
 * precision shows: JavaScript kernels (ours, tfjs-cpu) accumulate in float64, tfjs-wasm's SIMD kernels in
 * float32, and its early-layer gradients land a few percent of their magnitude away (1.3e-2 from a
 * float64 reference at 64x64; 4e-2 from ours at 224x224, where tfjs-cpu is 6e-3 away). A structural error (a wrong window, order or
 * padding) is off by the magnitude itself. The tiny steps, with short sums, keep the default 2e-3.
 */
const FULL_SIZE_TRAIN_TOLERANCE = 0.1;

function networkCase(suite: 'network' | 'train', spec: NetworkSpec, batch: number, tolerance?: number): NetworkCase {
  const id = `${networkLabel(spec)}-b${batch}`;
  const direction = suite === 'network' ? 'forward' : 'train';
  const macs = planMacs(planFromSpec(spec), spec.inputSize) * batch;
  const what = `ShuffleNet v1 g=${spec.groups} ${widthLabel(spec.width)}, ${spec.inputSize}x${spec.inputSize}${spec.stem === 'small' ? ' (small stem)' : ''}, ${spec.numClasses} classes, batch ${batch}`;
  const inputBytes = 4 * batch * 3 * spec.inputSize * spec.inputSize;
  return {
    kind: 'network',
    suite,
    id,
    direction,
    key: `${id}/${direction}`,
    title: suite === 'network' ? `${what}, forward` : `${what}, training step`,
    net: spec,
    batch,
    seed: 20240 + spec.groups,
    // The backward of every convolution costs twice its forward (dx and dweight), so a step is 3 forwards.
    flops: 2 * macs * (suite === 'network' ? 1 : 3),
    tolerance,
    bytes: inputBytes + parameterBytes(planFromSpec(spec)) * (suite === 'network' ? 1 : 3),
  };
}

export function networkCases({ tiny = false }: { tiny?: boolean } = {}): NetworkCase[] {
  if (tiny) {
    return [
      networkCase('network', { groups: 3, width: 0.25, inputSize: 32, stem: 'imagenet', numClasses: 10 }, 2),
      networkCase('network', { groups: 8, width: 0.5, inputSize: 32, stem: 'imagenet', numClasses: 10 }, 2),
      // Training-mode batch norm over very few values (stage 4 at 1x1 with 2 images) is so ill-conditioned
      // that float32 rounding alone moves the early gradients by percents: 8 images keep it within 1e-4.
      networkCase('train', { groups: 3, width: 0.25, inputSize: 16, stem: 'imagenet', numClasses: 10 }, 8),
      networkCase('train', { groups: 3, width: 0.25, inputSize: 8, stem: 'small', numClasses: 10 }, 8),
    ];
  }
  const imagenet = (groups: 3 | 8): NetworkSpec => ({ groups, width: 1, inputSize: 224, stem: 'imagenet', numClasses: 1000 });
  return [
    networkCase('network', imagenet(3), 1),
    networkCase('network', imagenet(3), 8),
    networkCase('network', imagenet(8), 1),
    networkCase('network', imagenet(8), 8),
    networkCase('train', imagenet(3), 8, FULL_SIZE_TRAIN_TOLERANCE),
    // 32x32 images (CIFAR-sized) take the contract's 'small' stem: a stride-1 stem conv and no max pool.
    networkCase('train', { groups: 3, width: 1, inputSize: 32, stem: 'small', numClasses: 10 }, 32, FULL_SIZE_TRAIN_TOLERANCE),
  ];
}
