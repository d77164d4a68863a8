import { batchNorm2dReference, normalise } from '../batch-norm2d/reference.js';
import { reluReference } from '../relu/reference.js';
import { type BatchNormRelu2dOps, batchNormRelu2dGeometry, checkBatchNormRelu2dBackward } from './spec.js';

/*
 * The composition y = relu(z), z = batchNorm2d(x). By the chain rule through z: dz = dy where z > 0
 * (relu's rule), then batch norm's backward with dz. z is recomputed from x and the saved statistics by
 * the same expression the forward used (normalise), so the mask is the forward's exactly.
 */
export const batchNormRelu2dReference: BatchNormRelu2dOps = {
  batchNormRelu2d(x, gamma, beta, runningMean, runningVar, options) {
    batchNormRelu2dGeometry('batchNormRelu2d', x, gamma, beta, runningMean, runningVar, options);
    return reluReference.relu(batchNorm2dReference.batchNorm2d(x, gamma, beta, runningMean, runningVar, options));
  },

  batchNormRelu2dWithSaved(x, gamma, beta, runningMean, runningVar, options) {
    batchNormRelu2dGeometry('batchNormRelu2dWithSaved', x, gamma, beta, runningMean, runningVar, options);
    const { y: z, saved } = batchNorm2dReference.batchNorm2dWithSaved(x, gamma, beta, runningMean, runningVar, options);
    return { y: reluReference.relu(z), saved };
  },

  batchNormRelu2dBackward(dy, x, gamma, beta, saved, options) {
    checkBatchNormRelu2dBackward(dy, x, gamma, beta, saved, options);
    const z = normalise(x, gamma, beta, saved.mean, saved.invStd);
    const { dx: dz } = reluReference.reluBackward(dy, z);
    return batchNorm2dReference.batchNorm2dBackward(dz, x, gamma, saved, options);
  },
};
