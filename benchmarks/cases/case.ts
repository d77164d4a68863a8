/**
 * What a benchmark case is: one computation, described without reference to any library, so that every
 * backend and peer runs exactly the same thing at the same shapes. Shapes are logical [N, C, H, W].
 */

export type Shape4 = readonly [number, number, number, number];

export type OpSpec =
  /** weight OIHW [Cout, Cin/groups, kH, kW]; symmetric padding. */
  | { op: 'conv2d'; x: Shape4; weight: Shape4; stride: number; padding: number; groups: number }
  /** weight [C, 1, kH, kW] (multiplier 1). */
  | { op: 'depthwiseConv2d'; x: Shape4; weight: Shape4; stride: number; padding: number }
  | { op: 'maxPool2d'; x: Shape4; kernelSize: number; stride: number; padding: number }
  /** countIncludePad: true (PyTorch's default, which the official ShuffleNet uses). */
  | { op: 'avgPool2d'; x: Shape4; kernelSize: number; stride: number; padding: number }
  | { op: 'channelShuffle'; x: Shape4; groups: number }
  | { op: 'globalAvgPool2d'; x: Shape4 }
  /** x [N, in], weight [out, in], no bias (the ShuffleNet classifier has none). */
  | { op: 'linear'; x: readonly [number, number]; weight: readonly [number, number] };

export type OpName = OpSpec['op'];

export type Suite = 'ops' | 'network' | 'train';
export const SUITES: readonly Suite[] = ['ops', 'network', 'train'];

export type Direction = 'forward' | 'backward' | 'train';

interface CaseBase {
  suite: Suite;
  /** Short id shared by a case's directions, e.g. 'gconv-240-60@28'. */
  id: string;
  direction: Direction;
  /** `${id}/${direction}`: unique within a run. */
  key: string;
  /** What it is, in words: 'grouped 1x1 conv 240->60 g=3 @28x28'. */
  title: string;
  /** Floating-point operations of one run, a multiply-add counting 2 (see `flops` in ops.ts). */
  flops: number;
  /** Bytes of float32 inputs and outputs one run touches at least (for GB/s of ops without arithmetic). */
  bytes: number;
  /** How far from the reference a target may be (see method/validate.ts); the default for its kind when absent. */
  tolerance?: number;
}

export interface OpCase extends CaseBase {
  kind: 'op';
  suite: 'ops';
  direction: 'forward' | 'backward';
  spec: OpSpec;
  /** Seed of the inputs; forward and backward of one op share x and weight. */
  seed: number;
}

/** A ShuffleNet v1 as the design contract builds it: shuffleNetV1({ groups, width, numClasses, inputSize, stem }). */
export interface NetworkSpec {
  groups: 3 | 8;
  width: number;
  inputSize: number;
  stem: 'imagenet' | 'small';
  numClasses: number;
}

export interface NetworkCase extends CaseBase {
  kind: 'network';
  suite: 'network' | 'train';
  /** 'forward': inference (batch norm on running statistics). 'train': forward + backward + SGD update. */
  direction: 'forward' | 'train';
  net: NetworkSpec;
  batch: number;
  /** Seed of the weights (and of batch norm's statistics and the inputs). */
  seed: number;
}

export type Case = OpCase | NetworkCase;

/** Learning rate and momentum of the training-step cases' SGD (PyTorch semantics, dampening 0). */
export const TRAIN_SGD = { lr: 0.01, momentum: 0.9 } as const;
