import type { Conv2dOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('conv2d: not implemented yet');
};
export const conv2dReference: Conv2dOps = { conv2d: notYet, conv2dBackward: notYet };
