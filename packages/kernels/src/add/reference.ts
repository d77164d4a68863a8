import type { AddOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('add: not implemented yet');
};
export const addReference: AddOps = { add: notYet, addBackward: notYet };
