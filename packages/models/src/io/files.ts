import { fail } from '@shuffle/core';
import { type LoadWeightsResult, loadWeights, saveWeights, type WeightsHolder } from './weights.js';

/*
 * The Node-only edge: the only place in @shuffle/models that touches the file system. `node:fs` is
 * imported when one of these functions first runs, so importing the package in a browser or a bundler
 * works as long as these functions are not called there.
 */

type Fs = typeof import('node:fs/promises');
type Path = typeof import('node:path');

async function node(): Promise<{ fs: Fs; path: Path }> {
  const [fs, path] = await Promise.all([import('node:fs/promises'), import('node:path')]);
  return { fs, path };
}

/** The bytes of a file; a missing or unreadable file throws a ShuffleArgumentError naming `op` and the path. */
export async function readFileBytes(op: string, file: string): Promise<Uint8Array> {
  if (typeof file !== 'string' || file === '') fail(op, 'path', 'a file path', file);
  const { fs } = await node();
  try {
    const buffer = await fs.readFile(file);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    return fail(op, 'path', 'a readable file', `${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** Writes `bytes` to `file`, creating its folder first. */
export async function writeFileBytes(file: string, bytes: Uint8Array | string): Promise<void> {
  const { fs, path } = await node();
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, bytes);
}

/** Reads a safetensors file into the model (see {@link loadWeights}). */
export async function loadWeightsFile(model: WeightsHolder, file: string): Promise<LoadWeightsResult> {
  return loadWeights(model, await readFileBytes('loadWeightsFile', file));
}

/** Writes the model's parameters and buffers to a safetensors file (see {@link saveWeights}). */
export async function saveWeightsFile(model: WeightsHolder, file: string, metadata?: Record<string, string>): Promise<void> {
  await writeFileBytes(file, saveWeights(model, metadata));
}
