export {
  resolveShuffleNetV1Config,
  SHUFFLENET_V1_GROUPS,
  SHUFFLENET_V1_WIDTHS,
  type ShuffleNetV1Channels,
  type ShuffleNetV1Config,
  type ShuffleNetV1Groups,
  type ShuffleNetV1Options,
  type ShuffleNetV1Width,
  shuffleNetV1Channels,
} from './config.js';
export { FoldedShuffleNetV1, foldBatchNorm } from './fold-batch-norm.js';
export * from './layers/index.js';
export { countMacs, type MacCount } from './macs.js';
export {
  countParameters,
  type ForwardAsyncOptions,
  type ForwardOptions,
  type LayerInfo,
  type Model,
  type NamedBuffer,
  type Parameter,
  type ParameterKind,
} from './model.js';
export { ShuffleNetV1, ShuffleV1Unit, type ShuffleV1UnitSpec, shuffleNetV1 } from './shufflenet-v1.js';
export * from './training.js';
