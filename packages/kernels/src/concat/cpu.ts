import { concatReference } from './reference.js';
import type { ConcatOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const concatCpu: ConcatOps = concatReference;
