import { addCpu } from '../add/cpu.js';
import { addReluCpu } from '../add-relu/cpu.js';
import { avgPool2dCpu } from '../avg-pool2d/cpu.js';
import { batchNormRelu2dCpu } from '../batch-norm-relu2d/cpu.js';
import { batchNorm2dCpu } from '../batch-norm2d/cpu.js';
import { channelShuffleCpu } from '../channel-shuffle/cpu.js';
import { concatCpu } from '../concat/cpu.js';
import { conv2dCpu } from '../conv2d/cpu.js';
import { depthwiseConv2dCpu } from '../depthwise-conv2d/cpu.js';
import { flattenCpu } from '../flatten/cpu.js';
import { globalAvgPool2dCpu } from '../global-avg-pool2d/cpu.js';
import { linearCpu } from '../linear/cpu.js';
import { maxPool2dCpu } from '../max-pool2d/cpu.js';
import { reluCpu } from '../relu/cpu.js';
import { softmaxCrossEntropyCpu } from '../softmax-cross-entropy/cpu.js';
import { splitCpu } from '../split/cpu.js';
import type { Backend } from './backend.js';

/**
 * The fast CPU backend, still pure TypeScript: layout-specialised loops, packed GEMM for the 1x1 and
 * grouped convolutions, buffers reused between calls. Each op's kernel lives in <op>/cpu.ts beside its
 * reference, and is held equal to it by the conformance suite.
 */
export const cpu: Backend = {
  name: 'cpu',
  ...conv2dCpu,
  ...depthwiseConv2dCpu,
  ...channelShuffleCpu,
  ...maxPool2dCpu,
  ...avgPool2dCpu,
  ...globalAvgPool2dCpu,
  ...batchNorm2dCpu,
  ...batchNormRelu2dCpu,
  ...reluCpu,
  ...addCpu,
  ...addReluCpu,
  ...concatCpu,
  ...splitCpu,
  ...flattenCpu,
  ...linearCpu,
  ...softmaxCrossEntropyCpu,
};
