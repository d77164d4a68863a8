import type { AddOps } from '../add/spec.js';
import type { AddReluOps } from '../add-relu/spec.js';
import type { AvgPool2dOps } from '../avg-pool2d/spec.js';
import type { BatchNormRelu2dOps } from '../batch-norm-relu2d/spec.js';
import type { BatchNorm2dOps } from '../batch-norm2d/spec.js';
import type { ChannelShuffleOps } from '../channel-shuffle/spec.js';
import type { ConcatOps } from '../concat/spec.js';
import type { Conv2dOps } from '../conv2d/spec.js';
import type { DepthwiseConv2dOps } from '../depthwise-conv2d/spec.js';
import type { FlattenOps } from '../flatten/spec.js';
import type { GlobalAvgPool2dOps } from '../global-avg-pool2d/spec.js';
import type { LinearOps } from '../linear/spec.js';
import type { MaxPool2dOps } from '../max-pool2d/spec.js';
import type { ReluOps } from '../relu/spec.js';
import type { SoftmaxCrossEntropyOps } from '../softmax-cross-entropy/spec.js';
import type { SplitOps } from '../split/spec.js';

/**
 * A synchronous backend: one method per op, forward and backward, every backend with these signatures.
 * Backward methods take the forward's dy first, then the forward's inputs and options, and return fresh
 * tensors named after what they differentiate.
 */
export interface Backend
  extends Conv2dOps,
    DepthwiseConv2dOps,
    ChannelShuffleOps,
    MaxPool2dOps,
    AvgPool2dOps,
    GlobalAvgPool2dOps,
    BatchNorm2dOps,
    BatchNormRelu2dOps,
    ReluOps,
    AddOps,
    AddReluOps,
    ConcatOps,
    SplitOps,
    FlattenOps,
    LinearOps,
    SoftmaxCrossEntropyOps {
  readonly name: string;
}
