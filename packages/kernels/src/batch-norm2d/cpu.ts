import { batchNorm2dReference } from './reference.js';
import type { BatchNorm2dOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const batchNorm2dCpu: BatchNorm2dOps = batchNorm2dReference;
