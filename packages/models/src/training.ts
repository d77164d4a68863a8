export { classCounts, type DatasetSplit, type ImageDataset, type SplitOptions, stratifiedSplit, subset } from './data/dataset.js';
export { loadMnistDigits, MNIST_SIDE, mnistFromDigitFiles } from './data/mnist.js';
export { imageToText } from './data/render.js';
export { loadWeightsFile, readFileBytes, saveWeightsFile, writeFileBytes } from './io/files.js';
export {
  entryToTensor,
  FLOAT_DTYPES,
  parseSafetensors,
  SAFETENSORS_DTYPE_SIZES,
  type SafetensorsDType,
  type SafetensorsEntry,
  type SafetensorsFile,
  type SafetensorsInput,
  serializeSafetensors,
} from './io/safetensors.js';
export { type LoadWeightsResult, loadWeights, saveWeights, type WeightsHolder } from './io/weights.js';
export { constantLr, cosineDecay, type LrSchedule, linearDecay, type ScheduleOptions } from './optim/schedules.js';
export { Sgd, type SgdOptions } from './optim/sgd.js';
export {
  type AugmentOptions,
  type Batch,
  type BatchOptions,
  batchesPerEpoch,
  type EpochBatchOptions,
  epochBatches,
  makeBatch,
} from './train/batches.js';
export {
  argmaxRows,
  type EpochResult,
  type EvaluateResult,
  evaluate,
  type LossBackend,
  type StepOptions,
  type StepProgress,
  type StepResult,
  type TrainableModel,
  type TrainEpochOptions,
  trainEpoch,
  trainStep,
} from './train/loop.js';
export { type TrainingHistory, trainingCurvesSvg } from './train/plot.js';
