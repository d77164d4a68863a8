import { globalAvgPool2dReference } from './reference.js';
import type { GlobalAvgPool2dOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const globalAvgPool2dCpu: GlobalAvgPool2dOps = globalAvgPool2dReference;
