import { addReference } from '../add/reference.js';
import { addReluReference } from '../add-relu/reference.js';
import { avgPool2dReference } from '../avg-pool2d/reference.js';
import { batchNormRelu2dReference } from '../batch-norm-relu2d/reference.js';
import { batchNorm2dReference } from '../batch-norm2d/reference.js';
import { channelShuffleReference } from '../channel-shuffle/reference.js';
import { concatReference } from '../concat/reference.js';
import { conv2dReference } from '../conv2d/reference.js';
import { depthwiseConv2dReference } from '../depthwise-conv2d/reference.js';
import { flattenReference } from '../flatten/reference.js';
import { globalAvgPool2dReference } from '../global-avg-pool2d/reference.js';
import { linearReference } from '../linear/reference.js';
import { maxPool2dReference } from '../max-pool2d/reference.js';
import { reluReference } from '../relu/reference.js';
import { softmaxCrossEntropyReference } from '../softmax-cross-entropy/reference.js';
import { splitReference } from '../split/reference.js';
import type { Backend } from './backend.js';

/**
 * The oracle: every op as plain loops over logical indices, in float32 or float64 (it computes in the
 * dtype of its inputs). Each op's code and the derivation of its backward live in <op>/reference.ts.
 */
export const reference: Backend = {
  name: 'reference',
  ...conv2dReference,
  ...depthwiseConv2dReference,
  ...channelShuffleReference,
  ...maxPool2dReference,
  ...avgPool2dReference,
  ...globalAvgPool2dReference,
  ...batchNorm2dReference,
  ...batchNormRelu2dReference,
  ...reluReference,
  ...addReference,
  ...addReluReference,
  ...concatReference,
  ...splitReference,
  ...flattenReference,
  ...linearReference,
  ...softmaxCrossEntropyReference,
};
