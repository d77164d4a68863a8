import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where a run happened: printed in every report and in every JSON line. */
export interface Machine {
  /** A short label for file names: `--machine`, or the CPU model and core count. */
  name: string;
  cpu: string;
  cpus: number;
  memoryGiB: number;
  os: string;
  node: string;
  v8: string;
  /** The repository's commit (with `-dirty` when the tree has changes), when git is there. */
  commit: string | null;
}

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', 'package.json'));

/** Versions of the packages measured, read from their package.json (null when not installed). */
export function packageVersions(): Record<string, string | null> {
  const names = [
    '@shuffle/core',
    '@shuffle/kernels',
    '@shuffle/models',
    '@tensorflow/tfjs-core',
    '@tensorflow/tfjs-backend-cpu',
    '@tensorflow/tfjs-backend-wasm',
    '@tensorflow/tfjs',
    'onnxruntime-node',
  ];
  const versions: Record<string, string | null> = {};
  for (const name of names) {
    try {
      // Resolve the entry point and walk up to the package.json: some packages do not export it.
      let dir = dirname(require.resolve(name));
      while (!readJson(join(dir, 'package.json'))?.name) dir = dirname(dir);
      versions[name] = (readJson(join(dir, 'package.json'))?.version as string) ?? null;
    } catch {
      versions[name] = null;
    }
  }
  return versions;
}

function readJson(path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

function gitCommit(): string | null {
  try {
    const options = { cwd: here, encoding: 'utf8' as const, stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'] };
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], options).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], options).trim() !== '';
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    return null;
  }
}

/** "AMD EPYC 7B13" -> "amd-epyc-7b13". */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/\((r|tm)\)/g, '')
    .replace(/\b(processor|cpu|\d+-core)\b/g, '')
    .replace(/@.*$/, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

export function describeMachine(name?: string): Machine {
  const cpus = os.cpus();
  const cpu = cpus[0]?.model.trim() || 'unknown CPU';
  return {
    name: name ?? `${slug(cpu) || 'machine'}-${cpus.length}c`,
    cpu,
    cpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    commit: gitCommit(),
  };
}

/** A local date and time for report file names: 2026-11-28-013640. */
export function fileStamp(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}-${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`;
}
