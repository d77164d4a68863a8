import { splitReference } from './reference.js';
import type { SplitOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const splitCpu: SplitOps = splitReference;
