import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tensor } from '@shuffle/core';
import { cpu, reference } from '@shuffle/kernels';
import { describe, expect, it } from 'vitest';
import { networkBatch } from '../../benchmarks/cases/inputs.js';
import { buildModel, type ContractModel, canonicalNetwork } from '../../benchmarks/cases/model.js';
import { attributeLayers, OpRecorder, timedBackend } from '../../benchmarks/profile/record.js';
import { exportedBackends, parseProfileOptions, profileCase, profileCases, profileMarkdown } from '../../benchmarks/profile/session.js';
import { opTableRows, summarize } from '../../benchmarks/profile/summary.js';

/** The per-op profile (pnpm bench:profile): the timing Proxy, the medians, and the command at tiny sizes. */

describe('timing Proxy of a backend', () => {
  it('times every function-valued property, own, inherited or added after wrapping, and passes the rest through', () => {
    class Base {
      readonly name = 'fake';
      inherited(x: number) {
        return x + 1;
      }
    }
    const backend = Object.assign(new Base(), { own: (x: number) => x * 2 }) as unknown as Base & Record<string, unknown>;
    const recorder = new OpRecorder();
    const timed = timedBackend(backend, recorder);
    // A fused op the backend gains later is timed too, with no list to update.
    backend.fusedLater = (x: number) => x - 3;
    expect(timed.name).toBe('fake');
    expect(timed.inherited(1)).toBe(2);
    expect((timed.own as (x: number) => number)(5)).toBe(10);
    expect((timed.fusedLater as (x: number) => number)(5)).toBe(2);
    expect((timed.own as (x: number) => number)(1)).toBe(2);
    const calls = recorder.take();
    expect(calls.map((c) => c.op)).toEqual(['inherited', 'own', 'fusedLater', 'own']);
    for (const c of calls) expect(c.ms).toBeGreaterThanOrEqual(0);
    expect(recorder.take()).toEqual([]);
  });

  it('times a call made through the Proxy during another call once, as the outer op', () => {
    const recorder = new OpRecorder();
    const holder: { timed?: { outer(): number; inner(): number } } = {};
    const backend = { outer: () => (holder.timed?.inner() ?? 0) + 1, inner: () => 41 };
    holder.timed = timedBackend(backend, recorder);
    expect(holder.timed.outer()).toBe(42);
    expect(recorder.take().map((c) => c.op)).toEqual(['outer']);
  });

  it('still records a call that throws, and rethrows', () => {
    const recorder = new OpRecorder();
    const timed = timedBackend(
      {
        bad: () => {
          throw new Error('boom');
        },
      },
      recorder,
    );
    expect(() => timed.bad()).toThrow('boom');
    expect(recorder.take().map((c) => c.op)).toEqual(['bad']);
  });

  it('attributes calls to the layer that made them, forward and backward', () => {
    const recorder = new OpRecorder();
    const timed = timedBackend({ relu: (x: number) => Math.max(x, 0) }, recorder);
    const layer = { name: 'stage2.unit1.relu', forward: (x: number) => timed.relu(x), backward: (d: number) => timed.relu(d) };
    const model = { layers: () => [layer] };
    expect(attributeLayers(model, recorder)).toBe(1);
    layer.forward(-1);
    layer.backward(2);
    timed.relu(3);
    expect(recorder.take().map(({ layer, phase }) => [layer, phase])).toEqual([
      ['stage2.unit1.relu', 'forward'],
      ['stage2.unit1.relu', 'backward'],
      [null, null],
    ]);
    expect(attributeLayers({}, recorder)).toBe(0);
  });
});

describe('profile summary', () => {
  it('takes medians over runs of each row, and shares of the rows that add up to 1', () => {
    const call = (op: string, ms: number) => ({ op, ms, layer: null, phase: null });
    const summary = summarize([
      { wallMs: 11, calls: [call('a', 2), call('b', 3)] },
      { wallMs: 14, calls: [call('a', 1), call('a', 3), call('b', 1)] },
      { wallMs: 31, calls: [call('a', 20), call('b', 3)] },
    ]);
    expect(summary.wallMs).toBe(14);
    // a: totals 2, 4, 20 -> 4; b: 3, 1, 3 -> 3; outside: 6, 9, 8 -> 8. The rows' medians add up to 15, not 14.
    expect(summary.ops.map((r) => [r.op, r.ms, r.calls])).toEqual([
      ['a', 4, 1],
      ['b', 3, 1],
    ]);
    expect(summary.outsideMs).toBe(8);
    expect(summary.ops[0]?.share).toBeCloseTo(4 / 15, 12);
    expect(summary.ops.reduce((s, r) => s + r.share, summary.outsideShare)).toBeCloseTo(1, 12);
    expect(summary.layers).toEqual([]);
    expect(opTableRows(summary).map((r) => r[0])).toEqual(['a', 'b', '(outside op calls)', 'whole run (median)']);
  });
});

describe('profile of the tiny network cases', () => {
  const options = parseProfileOptions(['--tiny', '--reps', '2', '--warmup', '0']);
  const [forward, train] = profileCases(options);

  it('finds our backends among the exports and picks a tiny forward and a tiny training step', () => {
    const backends = exportedBackends();
    expect(backends.get('cpu')).toBe(cpu);
    expect(backends.get('reference')).toBe(reference);
    expect(forward?.direction).toBe('forward');
    expect(train?.direction).toBe('train');
    expect(profileCases({ tiny: true, cases: ['*small*'] }).map((c) => c.key)).toEqual(['g3-0.25x@8-small-b8/train']);
  });

  it.each([
    ['cpu', cpu],
    ['reference', reference],
  ] as const)('counts every op call of a forward on %s, attributed to layers, without changing the logits', async (_, backend) => {
    if (!forward) throw new Error('no tiny forward case');
    const profile = await profileCase(forward, backend, { ...options, layout: 'NHWC' });
    const calls = (op: string) => profile.summary.ops.find((r) => r.op === op)?.calls;
    // g=3 0.25x: the stem conv and two 1x1 convs in each of 16 units; a depthwise conv and a shuffle per unit.
    expect(calls('conv2d')).toBe(33);
    expect(calls('depthwiseConv2d')).toBe(16);
    expect(calls('channelShuffle')).toBe(16);
    expect(calls('linear')).toBe(1);
    expect(profile.layers).toBeGreaterThan(100);
    expect(profile.summary.layers.find((r) => r.layer === 'stage2.unit1.pw1')?.ops).toEqual(['conv2d']);
    // Only the units' own joins (the residual add, fused with its ReLU or not, and the concat) are made outside a layer.
    const outside = profile.summary.layers.find((r) => r.layer === '(no layer)')?.ops ?? [];
    expect(outside).toContain('concat');
    for (const op of outside) expect(op).toMatch(/^(add|addRelu|concat)$/);

    // The profiled model computes what an unprofiled one does.
    const net = await canonicalNetwork(forward);
    const { x } = networkBatch(forward);
    const recorder = new OpRecorder();
    const plain = (await buildModel(forward, net, backend)) as ContractModel;
    const timed = (await buildModel(forward, net, timedBackend(backend, recorder))) as ContractModel;
    attributeLayers(timed, recorder);
    const input = tensor(x.data, x.shape).toLayout('NHWC');
    expect([...timed.forward(input).data]).toEqual([...plain.forward(input).data]);
  });

  it('profiles a training step: backward ops, and layer rows with backward time', async () => {
    if (!train) throw new Error('no tiny training case');
    const profile = await profileCase(train, cpu, options);
    const ops = profile.summary.ops.map((r) => r.op);
    for (const op of ['conv2dBackward', 'depthwiseConv2dBackward', 'batchNorm2dBackward', 'softmaxCrossEntropyBackward'])
      expect(ops).toContain(op);
    expect(profile.summary.layers.find((r) => r.layer === 'stage3.unit2.dw')?.backwardMs).toBeGreaterThan(0);
    const md = profileMarkdown([profile], options, 'pnpm bench:profile --tiny');
    expect(md).toContain(`## ${train.key}`);
    expect(md).toContain('| conv2dBackward | 33 |');
    expect(md).toContain('### Per layer');
  });
});

describe('pnpm bench:profile command line', () => {
  const profile = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../benchmarks/profile.ts', import.meta.url)), ...args], {
      encoding: 'utf8',
      timeout: 120_000,
    });

  it('prints the per-op table and writes Markdown and JSON', () => {
    const dir = mkdtempSync(join(os.tmpdir(), 'shuffle-profile-test-'));
    try {
      const run = profile(['--tiny', '--reps', '1', '--warmup', '0', '--threads', '2', '--by-layer', '--out', dir, '--name', 'p']);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/backend cpu, 2 threads, NCHW input/);
      expect(run.stdout).toMatch(/^conv2d\s+33\s/m);
      expect(run.stdout).toContain('slowest layers');
      expect(existsSync(join(dir, 'p.md'))).toBe(true);
      const json = JSON.parse(readFileSync(join(dir, 'p.json'), 'utf8'));
      expect(json.profiles.map((p: { caseKey: string }) => p.caseKey)).toEqual(profileCases({ tiny: true, cases: [] }).map((c) => c.key));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the backends it knows when given another', () => {
    const run = profile(['--tiny', '--no-files', '--backend', 'nope']);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--backend nope .*cpu.*reference|--backend nope .*reference.*cpu/);
  });
});
