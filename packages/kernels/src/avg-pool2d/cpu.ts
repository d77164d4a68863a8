import { avgPool2dReference } from './reference.js';
import type { AvgPool2dOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const avgPool2dCpu: AvgPool2dOps = avgPool2dReference;
