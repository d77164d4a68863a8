import type { AvgPool2dOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('avgPool2d: not implemented yet');
};
export const avgPool2dReference: AvgPool2dOps = { avgPool2d: notYet, avgPool2dBackward: notYet };
