import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allCases } from '../../benchmarks/runner/options.js';
import { runTargets } from '../../benchmarks/runner/processes.js';
import type { CaseResult } from '../../benchmarks/runner/result.js';
import { listTargets } from '../../benchmarks/targets/registry.js';
import { ONE_RUN } from './fixtures.js';

/**
 * The whole benchmark suite at tiny shapes: every case on every registered backend and peer, through
 * the same runner `pnpm bench` uses (in this process, except the gpu.js GL modes, which get a process
 * each). Every case's outputs must agree with the reference's within the case's tolerance. Times are
 * never asserted: each case runs once, which is its validation run.
 */

const cases = allCases({ tiny: true, batch: 1 });
const targets = listTargets();
const results: CaseResult[] = [];
const details = new Map<string, Record<string, string>>();
let oracleDir = '';

/** GPU modes this run must have (SHUFFLE_REQUIRE_GPU, as in test/gpu/support.ts); the others may be unavailable. */
function gpuRequired(target: string): boolean {
  const value = process.env.SHUFFLE_REQUIRE_GPU ?? '';
  const mode = target.replace(/^gpu-/, '');
  return value === 'all' || value.split(',').includes(mode);
}

beforeAll(async () => {
  oracleDir = mkdtempSync(join(os.tmpdir(), 'shuffle-bench-test-'));
  await runTargets(targets, cases, {
    inProcess: true,
    quiet: true,
    tiny: true,
    batch: 1,
    execute: { timing: ONE_RUN, target: { layout: 'NCHW', ortThreads: 1 } },
    oracleDir,
    onEvent: (event) => {
      if (event.type === 'result') results.push(event.result);
      if (event.type === 'details') details.set(event.target, event.details);
    },
  });
}, 240_000);

afterAll(() => {
  if (oracleDir) rmSync(oracleDir, { recursive: true, force: true });
});

describe('benchmark suite at tiny shapes', () => {
  it('has the ShuffleNet op cases forward and backward, and the whole-network and training cases', () => {
    const keys = cases.map((c) => c.key);
    for (const op of [
      'conv-stem',
      'maxpool',
      'gconv-240-60',
      'dwconv-s1-60',
      'dwconv-s2-120',
      'gconv-120-480',
      'avgpool-480',
      'gap-960',
      'linear-960-1000',
    ]) {
      expect(keys).toContain(`${op}@tiny/forward`);
      expect(keys).toContain(`${op}@tiny/backward`);
    }
    expect(keys.filter((k) => k.startsWith('shuffle-'))).toHaveLength(6);
    expect(cases.filter((c) => c.suite === 'network').map((c) => c.key)).toEqual(['g3-0.25x@32-b2/forward', 'g8-0.5x@32-b2/forward']);
    expect(cases.filter((c) => c.suite === 'train')).toHaveLength(2);
  });

  it('reports one result per (target, case)', () => {
    expect(results).toHaveLength(targets.length * cases.length);
    for (const t of targets)
      for (const c of cases) expect(results.filter((r) => r.target === t.name && r.caseKey === c.key)).toHaveLength(1);
  });

  it.each(targets.map((t) => [t.name, t]))('%s: every case agrees with the reference or says why it cannot run', (name, target) => {
    const mine = results.filter((r) => r.target === name);
    const unavailable = mine.filter((r) => r.status === 'unavailable');
    if (unavailable.length) {
      // Only a gpu mode may be missing (no X display, no Mesa), and only where the run does not require it.
      expect(name.startsWith('gpu-') && !gpuRequired(name), `${name} unavailable: ${unavailable[0]?.reason}`).toBe(true);
      return;
    }
    for (const r of mine) {
      const where = `${name} ${r.caseKey}: ${r.status} ${r.reason ?? ''}`;
      if (r.status === 'unsupported') {
        // Our synchronous backends run everything; peers and asynchronous backends must say why not.
        expect(target.kind === 'peer' || name.startsWith('gpu-'), where).toBe(true);
        expect(r.reason, where).toBeTruthy();
        continue;
      }
      expect(r.status, where).toBe('ok');
      expect(r.validation?.ok, where).toBe(true);
      expect(r.validation?.error, where).toBeLessThanOrEqual(r.validation?.tolerance ?? 0);
      for (const v of r.variants ?? []) {
        // tfjs-backend-wasm 4.22.0's own MaxPoolGrad is wrong next to the padding: the suite shows it, and times tfjs-cpu's too.
        const wasmMaxPoolGrad = name === 'tfjs-wasm' && r.caseId.startsWith('maxpool') && v.variant === 'MaxPoolGrad';
        expect(v.status, `${where} ${v.variant}: ${v.reason}`).toBe(wasmMaxPoolGrad ? 'invalid' : 'ok');
      }
    }
  });

  it('runs every op case on our backends and every forward on onnxruntime', () => {
    const ok = (target: string, key: string) => results.find((r) => r.target === target && r.caseKey === key)?.status === 'ok';
    for (const c of cases) {
      expect(ok('reference', c.key), `reference ${c.key}`).toBe(true);
      if (c.direction === 'forward') expect(ok('ort', c.key), `ort ${c.key}`).toBe(true);
      expect(ok('tfjs-cpu', c.key), `tfjs-cpu ${c.key}`).toBe(true);
      expect(ok('tfjs-wasm', c.key), `tfjs-wasm ${c.key}`).toBe(true);
    }
  });

  it('times every grouped-conv emulation in TensorFlow.js and reports the fastest', () => {
    for (const r of results.filter((r) => r.target.startsWith('tfjs-') && r.caseId.startsWith('gconv'))) {
      expect(r.variants?.map((v) => v.variant).sort()).toEqual([
        'batched-matmul',
        'blockdiag-conv',
        'blockdiag-matmul',
        'split-conv',
        'split-matmul',
      ]);
      const fastest = Math.min(...(r.variants ?? []).map((v) => v.timing?.medianMs ?? Number.POSITIVE_INFINITY));
      expect(r.timing?.medianMs).toBe(fastest);
    }
  });

  it('reports the memory of every whole-network case that ran, and of no op case', () => {
    for (const r of results.filter((r) => r.status === 'ok')) {
      const network = r.suite !== 'ops';
      expect(r.memory !== undefined, `${r.target} ${r.caseKey}`).toBe(network);
      // The case's own peak: the high-water mark was reset when the case started (the figures themselves: threads-memory.test.ts).
      if (r.memory) expect(r.memory.rssPeak, `${r.target} ${r.caseKey}`).toBe(process.platform === 'linux' ? 'case' : 'process');
    }
  });

  it('runs our fast cpu backend on one thread and on two', () => {
    expect(details.get('cpu')?.threads).toBe('1');
    expect(details.get('cpu-2t')?.threads).toBe('2');
  });

  it('says how each peer ran: tfjs-wasm single-threaded with SIMD and borrowed kernels, onnxruntime on one thread', () => {
    expect(details.get('tfjs-wasm')?.threads).toBe('false');
    expect(details.get('tfjs-wasm')?.borrowed).toMatch(/Conv2DBackpropFilter/);
    expect(details.get('ort')?.['intra-op threads']).toBe('1');
  });
});

describe('pnpm bench command line', () => {
  const bench = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../benchmarks/run.ts', import.meta.url)), ...args], {
      encoding: 'utf8',
      timeout: 120_000,
    });

  it('prints its flags with --help', () => {
    const run = bench(['--help']);
    expect(run.status).toBe(0);
    for (const flag of ['--suite', '--case', '--backend', '--baseline', '--json', '--tiny']) expect(run.stdout).toContain(flag);
  });

  it('runs each target in its own process and prints one JSON line per (backend, case)', () => {
    const run = bench([
      '--tiny',
      '--json',
      '--no-files',
      '--quiet',
      '--case',
      'shuffle-60@tiny/forward,linear-960-1000@tiny/*',
      '--backend',
      'reference,ort',
    ]);
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(6);
    const ortForward = lines.find((l) => l.backend === 'ort' && l.key === 'linear-960-1000@tiny/forward');
    expect(ortForward).toMatchObject({ status: 'ok', baseline: 'reference', kind: 'peer' });
    for (const field of ['medianMs', 'minMs', 'maxMs', 'reps', 'gflops', 'speedup']) expect(typeof ortForward[field]).toBe('number');
    expect(ortForward.machine.cpus).toBeGreaterThan(0);
    expect(ortForward.versions['onnxruntime-node']).toBe('1.30.0');
    expect(lines.find((l) => l.backend === 'ort' && l.key === 'linear-960-1000@tiny/backward')?.status).toBe('unsupported');
  });
});
