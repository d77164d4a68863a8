import os from 'node:os';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { NetworkSpec } from '../../benchmarks/cases/case.js';
import { planFromSpec, planMacs } from '../../benchmarks/cases/network.js';
import { backwardFlops, forwardFlops, opCases } from '../../benchmarks/cases/ops.js';
import { loadBetween } from '../../benchmarks/method/load.js';
import { measure, median } from '../../benchmarks/method/timing.js';
import { validate } from '../../benchmarks/method/validate.js';
import { OnnxGraph, ProtoWriter } from '../../benchmarks/peers/onnx-proto.js';
import { markdownReport } from '../../benchmarks/report/markdown.js';
import type { RunRecord } from '../../benchmarks/report/record.js';
import { speedup } from '../../benchmarks/report/record.js';
import { svgChart } from '../../benchmarks/report/svg.js';
import { terminalTable } from '../../benchmarks/report/table.js';
import { parseOptions, selectCases } from '../../benchmarks/runner/options.js';
import type { CaseResult } from '../../benchmarks/runner/result.js';

describe('protobuf writer', () => {
  it('encodes varints, keys, strings and floats as the protobuf documentation does', () => {
    // The documentation's examples: field 1 = 150 is 08 96 01; field 2 = "testing" is 12 07 74 65 73 74 69 6e 67.
    expect([...new ProtoWriter().int(1, 150).finish()]).toEqual([0x08, 0x96, 0x01]);
    expect([...new ProtoWriter().string(2, 'testing').finish()]).toEqual([0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67]);
    // A negative int64 is its 64-bit two's complement: ten bytes.
    expect([...new ProtoWriter().int(1, -1).finish()]).toEqual([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    // Wire type 5: 1.0f is 00 00 80 3f little-endian.
    expect([...new ProtoWriter().float(2, 1).finish()]).toEqual([0x15, 0x00, 0x00, 0x80, 0x3f]);
  });

  it('writes a nested message as its length then its bytes', () => {
    const inner = new ProtoWriter().int(1, 150);
    expect([...new ProtoWriter().message(3, inner).finish()]).toEqual([0x1a, 0x03, 0x08, 0x96, 0x01]);
  });

  it('round-trips any varint through a decoder', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        const bytes = new ProtoWriter().int(1, n).finish();
        let value = 0n;
        for (let i = bytes.length - 1; i >= 1; i--) value = (value << 7n) | BigInt((bytes[i] as number) & 0x7f);
        expect(bytes[0]).toBe(0x08);
        expect(Number(value)).toBe(n);
      }),
    );
  });

  it('names graph values so that graphs read like straight-line code', () => {
    const g = new OnnxGraph();
    const x = g.input('x', [1, 2]);
    expect(g.node('Relu', [x])).toMatch(/^relu_/);
    expect(g.node('Relu', [x], {}, 'y')).toBe('y');
  });
});

describe('FLOP counts', () => {
  it('counts ShuffleNet v1 g=3 1.0x at 224 as 137.46 M multiply-adds (the papers\' 140 "MFLOPs")', () => {
    const spec: NetworkSpec = { groups: 3, width: 1, inputSize: 224, stem: 'imagenet', numClasses: 1000 };
    expect(planMacs(planFromSpec(spec), 224)).toBe(137_460_672);
  });

  it('counts a multiply-add as 2 FLOPs, and a conv backward as twice its forward', () => {
    const gconv = opCases().find((c) => c.key === 'gconv-240-60@28/forward');
    if (gconv?.kind !== 'op') throw new Error('no gconv case');
    // 28 * 28 outputs x 60 channels, each 80 multiply-adds.
    expect(forwardFlops(gconv.spec)).toBe(2 * 28 * 28 * 60 * 80);
    expect(backwardFlops(gconv.spec)).toBe(4 * 28 * 28 * 60 * 80);
    expect(opCases({ batch: 8 }).find((c) => c.key === 'gconv-240-60@28/forward')?.flops).toBe(8 * 2 * 28 * 28 * 60 * 80);
  });
});

describe('timing', () => {
  const sample = (wallMs: number) => ({ wallMs, cpuTimes: null, ownMicros: 0 });
  const options = { minReps: 3, maxReps: 7, minTimeMs: 0, maxTimeMs: 1000, warmupMaxMs: 0, warmupMaxReps: 0, busyThresholdCores: 0.25 };

  it('takes the median, min and max of the timed runs, within the count bounds', async () => {
    let runs = 0;
    const t = await measure(() => void runs++, { ms: 0.1, start: sample(0), end: sample(0.1) }, options);
    expect(t.reps).toBe(3);
    expect(runs).toBe(3);
    expect(t.minMs).toBeLessThanOrEqual(t.medianMs);
    expect(t.medianMs).toBeLessThanOrEqual(t.maxMs);
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('reports a run longer than --max-time from its validation run alone', async () => {
    let runs = 0;
    const t = await measure(() => void runs++, { ms: 2000, start: sample(0), end: sample(2000) }, options);
    expect(runs).toBe(0);
    expect(t).toMatchObject({ single: true, reps: 1, medianMs: 2000 });
  });

  it('stops timed runs at --max-time even before --min-reps', async () => {
    const slow = () => {
      const end = performance.now() + 30;
      while (performance.now() < end) {}
    };
    const t = await measure(
      slow,
      { ms: 30, start: sample(0), end: sample(30) },
      { ...options, minReps: 100, maxReps: 1000, maxTimeMs: 100 },
    );
    expect(t.reps).toBeGreaterThanOrEqual(1);
    expect(t.reps).toBeLessThanOrEqual(5);
  });

  it("counts other processes' CPU time as busy cores, from the machine's busy share minus our own", () => {
    const cpus = os.cpus().length;
    // Over 1 s the machine was fully busy and we used one core: the others used cpus - 1.
    const load = loadBetween(
      { wallMs: 0, cpuTimes: { busy: 0, total: 0 }, ownMicros: 0 },
      { wallMs: 1000, cpuTimes: { busy: 100 * cpus, total: 100 * cpus }, ownMicros: 1_000_000 },
      0.25,
    );
    expect(load.ownCores).toBeCloseTo(1);
    expect(load.othersCores).toBeCloseTo(cpus - 1);
    expect(load.busy).toBe(cpus - 1 > 0.25);
    const idle = loadBetween(
      { wallMs: 0, cpuTimes: { busy: 0, total: 0 }, ownMicros: 0 },
      { wallMs: 1000, cpuTimes: { busy: 100, total: 100 * cpus }, ownMicros: 1_000_000 },
      0.25,
    );
    expect(idle.othersCores).toBeCloseTo(0);
    expect(idle.busy).toBe(false);
  });
});

describe('command-line options', () => {
  it('parses lists, seconds and selections, and rejects what it does not know', () => {
    const o = parseOptions([
      '--backend',
      'reference,ort',
      '--case',
      'gconv*',
      '--direction',
      'backward',
      '--max-time',
      '2',
      '--baseline',
      'ort',
    ]);
    expect(o.backends).toEqual(['reference', 'ort']);
    expect(o.timing.maxTimeMs).toBe(2000);
    expect(o.baseline).toBe('ort');
    expect(selectCases(o).map((c) => c.key)).toEqual(['gconv-240-60@28/backward', 'gconv-120-480@14/backward']);
    expect(selectCases(parseOptions(['--suite', 'train'])).every((c) => c.direction === 'train')).toBe(true);
    expect(() => parseOptions(['--no-such-flag'])).toThrow();
    expect(() => parseOptions(['--suite', 'nope'])).toThrow(/--suite/);
    expect(() => parseOptions(['--batch', '0'])).toThrow(/--batch/);
  });
});

describe('validation', () => {
  const out = (...values: number[]) => ({ y: { shape: [values.length], data: Float64Array.from(values) } });

  it('measures the largest difference against the largest reference value', () => {
    expect(validate(out(1, 2.001, -4), out(1, 2, -4), 1e-3)).toMatchObject({ ok: true, worst: 'y' });
    expect(validate(out(1, 2.001, -4), out(1, 2, -4), 1e-3).error).toBeCloseTo(0.001 / 4);
    expect(validate(out(1, 3, -4), out(1, 2, -4), 1e-3).ok).toBe(false);
  });

  it('fails on NaN, on a missing output and on a wrong shape', () => {
    expect(validate(out(1, Number.NaN), out(1, 2), 1).ok).toBe(false);
    expect(validate({}, out(1), 1).ok).toBe(false);
    expect(validate(out(1, 2), out(1, 2, 3), 1).ok).toBe(false);
  });
});

describe('reports', () => {
  const result = (target: string, medianMs: number, busy = false): CaseResult => ({
    target,
    kind: target === 'reference' ? 'ours' : 'peer',
    suite: 'ops',
    caseId: 'gconv-240-60@28',
    caseKey: 'gconv-240-60@28/forward',
    direction: 'forward',
    title: 'grouped 1x1 conv',
    status: 'ok',
    timing: {
      medianMs,
      minMs: medianMs * 0.9,
      maxMs: medianMs * 1.5,
      reps: 10,
      warmupReps: 3,
      settled: true,
      single: false,
      load: { cpus: 2, ownCores: 1, othersCores: busy ? 1 : 0, busy },
    },
    flops: 7_526_400,
    bytes: 1000,
  });
  const record: RunRecord = {
    date: '2025-01-02T03:04:05.000Z',
    machine: { name: 'test-2c', cpu: 'Test CPU', cpus: 2, memoryGiB: 4, os: 'Linux', node: 'v20', v8: '11', commit: 'abc' },
    versions: { 'onnxruntime-node': '1.30.0' },
    command: 'pnpm bench',
    tiny: false,
    batch: 1,
    layout: 'NCHW',
    timing: { minReps: 5, maxReps: 1000, minTimeMs: 500, maxTimeMs: 5000, warmupMaxMs: 1500, warmupMaxReps: 50, busyThresholdCores: 0.25 },
    baseline: 'reference',
    targets: [
      { name: 'reference', kind: 'ours', description: 'ref', details: {} },
      { name: 'ort', kind: 'peer', description: 'ort', details: { 'intra-op threads': '1' } },
    ],
    cases: [
      {
        key: 'gconv-240-60@28/forward',
        id: 'gconv-240-60@28',
        suite: 'ops',
        direction: 'forward',
        title: 'grouped 1x1 conv',
        flops: 7_526_400,
        bytes: 1000,
      },
    ],
    results: [result('reference', 100), result('ort', 0.5, true)],
    seconds: 12,
  };

  it('computes speed-ups as baseline time / time', () => {
    expect(speedup(record, record.results[1] as CaseResult)).toBe(200);
    expect(speedup(record, record.results[0] as CaseResult)).toBe(1);
  });

  it('marks busy results in the table, the Markdown and the chart', () => {
    expect(terminalTable(record)).toMatch(/0\.500 ms\* 200x/);
    const md = markdownReport(record, 'chart.svg');
    expect(md).toContain('# Benchmarks: 2025-01-02 on test-2c');
    expect(md).toContain('![median time per case, log scale](chart.svg)');
    expect(md).toMatch(/\| gconv-240-60@28\/forward \| 100 ms \(90.0–150\) \| 0\.500 ms \(0\.450–0\.750\)\\\* \|/);
    expect(md).toContain('15.05');
    const svg = svgChart(record);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('url(#busy)');
    expect(svg.match(/<rect [^>]*fill="#/g)?.length).toBeGreaterThanOrEqual(4);
  });
});
