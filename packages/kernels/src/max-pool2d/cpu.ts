import { maxPool2dReference } from './reference.js';
import type { MaxPool2dOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const maxPool2dCpu: MaxPool2dOps = maxPool2dReference;
