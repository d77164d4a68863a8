import type { DepthwiseConv2dOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('depthwiseConv2d: not implemented yet');
};
export const depthwiseConv2dReference: DepthwiseConv2dOps = { depthwiseConv2d: notYet, depthwiseConv2dBackward: notYet };
