import { reluReference } from './reference.js';
import type { ReluOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const reluCpu: ReluOps = reluReference;
