import type { GlobalAvgPool2dOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('globalAvgPool2d: not implemented yet');
};
export const globalAvgPool2dReference: GlobalAvgPool2dOps = { globalAvgPool2d: notYet, globalAvgPool2dBackward: notYet };
