import type { BatchNorm2dOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('batchNorm2d: not implemented yet');
};
export const batchNorm2dReference: BatchNorm2dOps = { batchNorm2d: notYet, batchNorm2dWithSaved: notYet, batchNorm2dBackward: notYet };
