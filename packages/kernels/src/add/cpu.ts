import { addReference } from './reference.js';
import type { AddOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const addCpu: AddOps = addReference;
