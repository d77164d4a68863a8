import type { SoftmaxCrossEntropyOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('softmaxCrossEntropy: not implemented yet');
};
export const softmaxCrossEntropyReference: SoftmaxCrossEntropyOps = { softmaxCrossEntropy: notYet, softmaxCrossEntropyBackward: notYet };
