import { softmaxCrossEntropyReference } from './reference.js';
import type { SoftmaxCrossEntropyOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const softmaxCrossEntropyCpu: SoftmaxCrossEntropyOps = softmaxCrossEntropyReference;
