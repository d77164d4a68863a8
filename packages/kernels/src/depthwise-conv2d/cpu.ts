import { depthwiseConv2dReference } from './reference.js';
import type { DepthwiseConv2dOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const depthwiseConv2dCpu: DepthwiseConv2dOps = depthwiseConv2dReference;
