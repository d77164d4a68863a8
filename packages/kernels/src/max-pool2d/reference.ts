import type { MaxPool2dOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('maxPool2d: not implemented yet');
};
export const maxPool2dReference: MaxPool2dOps = { maxPool2d: notYet, maxPool2dWithSaved: notYet, maxPool2dBackward: notYet };
