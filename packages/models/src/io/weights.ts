import { describe, fail, type Tensor } from '@shuffle/core';
import type { Model } from '../model.js';
import { entryToTensor, FLOAT_DTYPES, parseSafetensors, type SafetensorsDType, serializeSafetensors } from './safetensors.js';

/** What weights I/O needs of a model: its named parameters and buffers, as live tensors. */
export type WeightsHolder = Pick<Model, 'parameters' | 'buffers'>;

export interface LoadWeightsResult {
  /** Tensors copied into the model (every parameter and buffer). */
  loaded: number;
  /** Entries of the file that were recognised and skipped: PyTorch's integer `<bn>.num_batches_tracked` counters. */
  ignored: string[];
  metadata: Readonly<Record<string, string>>;
}

const INTEGER_DTYPES: readonly SafetensorsDType[] = ['I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8'];
/** How many names of each kind of problem an error message lists before "and N more". */
const LISTED = 6;

/**
 * Loads a safetensors file (bytes) into `model`'s parameters and buffers, by name. The file must hold
 * exactly the model's tensors with the model's shapes, in a float dtype (F32, F64, F16, BF16, converted
 * to the model's dtype); PyTorch's integer `num_batches_tracked` counters beside a batch norm's
 * running_mean are accepted and ignored. Everything is checked first and every problem reported in one
 * error, so a file that is truncated, corrupt or meant for another model changes no weight.
 */
export function loadWeights(model: WeightsHolder, bytes: Uint8Array): LoadWeightsResult {
  const op = 'loadWeights';
  const targets = modelTensors(op, model);
  const file = parseSafetensors(bytes);

  const missing = new Set(targets.keys());
  const unexpected: string[] = [];
  const wrongShape: string[] = [];
  const wrongDType: string[] = [];
  const ignored: string[] = [];
  const decoded = new Map<string, Tensor>();
  for (const entry of file.entries) {
    const target = targets.get(entry.name);
    if (!target) {
      if (isBatchCounter(entry.name, entry.dtype, entry.shape, targets)) ignored.push(entry.name);
      else unexpected.push(entry.name);
      continue;
    }
    missing.delete(entry.name);
    const shapeMatches = entry.shape.length === target.shape.length && entry.shape.every((d, i) => d === target.shape[i]);
    if (!shapeMatches) wrongShape.push(`${entry.name} ${describe(entry.shape)} (model ${describe(target.shape)})`);
    else if (!FLOAT_DTYPES.includes(entry.dtype)) wrongDType.push(`${entry.name} ${entry.dtype}`);
    else decoded.set(entry.name, entryToTensor(entry));
  }

  const problems = [
    listProblem('missing', [...missing]),
    listProblem('unexpected', unexpected),
    listProblem('with another shape', wrongShape),
    listProblem(`not in a float dtype (${FLOAT_DTYPES.join(', ')})`, wrongDType),
  ].filter((p) => p !== '');
  if (problems.length > 0) {
    fail(op, 'bytes', `a safetensors file with exactly the model's ${targets.size} parameters and buffers`, problems.join('; '));
  }

  for (const [name, target] of targets) {
    const source = decoded.get(name) as Tensor;
    target.data.set(target.rank === 4 ? source.toLayout(target.layout).data : source.data);
  }
  return { loaded: targets.size, ignored, metadata: file.metadata };
}

/**
 * The model's parameters and buffers as a safetensors file: float32 tensors as F32 (float64 as F64), in
 * logical row-major (NCHW) order, under their official names. `metadata` defaults to { format: 'pt' },
 * the tag PyTorch's safetensors writer adds, since the names, shapes and order are PyTorch's state_dict.
 * No `num_batches_tracked` counters are written: PyTorch fills in missing ones when loading.
 */
export function saveWeights(model: WeightsHolder, metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const tensors: Record<string, Tensor> = Object.create(null);
  for (const [name, value] of modelTensors('saveWeights', model)) tensors[name] = value;
  return serializeSafetensors(tensors, metadata);
}

function modelTensors(op: string, model: WeightsHolder): Map<string, Tensor> {
  if (model === null || typeof model !== 'object' || typeof model.parameters !== 'function' || typeof model.buffers !== 'function') {
    fail(op, 'model', 'a model with parameters() and buffers()', model);
  }
  const tensors = new Map<string, Tensor>();
  for (const { name, value } of [...model.parameters(), ...model.buffers()]) {
    if (tensors.has(name)) fail(op, 'model', 'unique parameter and buffer names', `${name} twice`);
    tensors.set(name, value);
  }
  return tensors;
}

/** `<key>.num_batches_tracked`: an integer scalar (or one-element) counter beside the model's `<key>.running_mean`. */
function isBatchCounter(name: string, dtype: SafetensorsDType, shape: readonly number[], targets: Map<string, Tensor>): boolean {
  const suffix = '.num_batches_tracked';
  if (!name.endsWith(suffix) || !INTEGER_DTYPES.includes(dtype)) return false;
  if (shape.reduce((a, b) => a * b, 1) !== 1) return false;
  return targets.has(`${name.slice(0, -suffix.length)}.running_mean`);
}

function listProblem(label: string, names: readonly string[]): string {
  if (names.length === 0) return '';
  const listed = names.slice(0, LISTED).join(', ');
  const more = names.length > LISTED ? `, and ${names.length - LISTED} more` : '';
  return `${names.length} ${label}: ${listed}${more}`;
}
