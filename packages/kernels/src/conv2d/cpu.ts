import { conv2dReference } from './reference.js';
import type { Conv2dOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const conv2dCpu: Conv2dOps = conv2dReference;
