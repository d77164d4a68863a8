import { cpu } from './backends/cpu.js';

/*
 * The top-level functions: every op, forward and backward, on the fastest synchronous CPU backend
 * present: the fast CPU backend (`reference` holds the plain-loop oracle).
 */
export const {
  conv2d,
  conv2dBackward,
  depthwiseConv2d,
  depthwiseConv2dBackward,
  channelShuffle,
  channelShuffleBackward,
  maxPool2d,
  maxPool2dWithSaved,
  maxPool2dBackward,
  avgPool2d,
  avgPool2dBackward,
  globalAvgPool2d,
  globalAvgPool2dBackward,
  batchNorm2d,
  batchNorm2dWithSaved,
  batchNorm2dBackward,
  batchNormRelu2d,
  batchNormRelu2dWithSaved,
  batchNormRelu2dBackward,
  relu,
  reluBackward,
  add,
  addBackward,
  addRelu,
  addReluBackward,
  concat,
  concatBackward,
  split,
  splitBackward,
  flatten,
  flattenBackward,
  linear,
  linearBackward,
  softmaxCrossEntropy,
  softmaxCrossEntropyBackward,
} = cpu;
