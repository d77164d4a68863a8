import type { FlattenOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('flatten: not implemented yet');
};
export const flattenReference: FlattenOps = { flatten: notYet, flattenBackward: notYet };
