import { linearReference } from './reference.js';
import type { LinearOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const linearCpu: LinearOps = linearReference;
