import type { SplitOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('split: not implemented yet');
};
export const splitReference: SplitOps = { split: notYet, splitBackward: notYet };
