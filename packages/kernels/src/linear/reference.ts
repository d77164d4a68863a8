import type { LinearOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('linear: not implemented yet');
};
export const linearReference: LinearOps = { linear: notYet, linearBackward: notYet };
