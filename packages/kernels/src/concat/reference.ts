import type { ConcatOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('concat: not implemented yet');
};
export const concatReference: ConcatOps = { concat: notYet, concatBackward: notYet };
