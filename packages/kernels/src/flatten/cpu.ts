import { flattenReference } from './reference.js';
import type { FlattenOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const flattenCpu: FlattenOps = flattenReference;
