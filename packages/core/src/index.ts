export { assertClose, type Comparison, compareTensors, type Tolerance, unravel } from './compare.js';
export { describe, fail, ShuffleArgumentError } from './errors.js';
export { heNormal, type RandomOptions, randomNormal, randomUniform, type Seed } from './random.js';
export { Rng } from './rng.js';
export {
  checkShape,
  type DType,
  full,
  LAYOUTS,
  type Layout,
  ones,
  shapeSize,
  stridesOf,
  Tensor,
  type TensorData,
  type TensorOptions,
  tensor,
  zeros,
  zerosLike,
} from './tensor.js';
