import { describe, expect, it } from 'vitest';
import { measureCopyBandwidth } from '../../benchmarks/method/bandwidth.js';
import { markdownReport } from '../../benchmarks/report/markdown.js';
import type { RunRecord } from '../../benchmarks/report/record.js';
import type { CaseResult } from '../../benchmarks/runner/result.js';
import { testRecord, testTiming } from './fixtures.js';

/*
 * The copy bandwidth a run measures, and the op suite's memory-traffic table that compares each case's
 * GB/s with it (how close depthwise and pooling come to being memory-bound).
 */

const result = (target: string, medianMs: number): CaseResult => ({
  target,
  kind: target === 'cpu' ? 'ours' : 'peer',
  suite: 'ops',
  caseId: 'dwconv-s1-60@28',
  caseKey: 'dwconv-s1-60@28/forward',
  direction: 'forward',
  title: 'depthwise conv',
  status: 'ok',
  timing: testTiming(medianMs),
  flops: 850_000,
  bytes: 2_000_000,
});

const record = (bandwidth: RunRecord['bandwidth']): RunRecord =>
  testRecord({
    targets: [
      { name: 'cpu', kind: 'ours', description: 'cpu', details: {} },
      { name: 'tfjs-wasm', kind: 'peer', description: 'wasm', details: {} },
    ],
    cases: [
      {
        key: 'dwconv-s1-60@28/forward',
        id: 'dwconv-s1-60@28',
        suite: 'ops',
        direction: 'forward',
        title: 'depthwise conv',
        flops: 850_000,
        bytes: 2_000_000,
      },
    ],
    results: [result('cpu', 1), result('tfjs-wasm', 0.05)],
    bandwidth,
  });

describe('memory traffic against the copy bandwidth', () => {
  it('measures a positive, finite copy bandwidth at both sizes', () => {
    const measured = measureCopyBandwidth();
    for (const value of [measured.cacheGBps, measured.memoryGBps]) {
      expect(Number.isFinite(value)).toBe(true);
      expect(value).toBeGreaterThan(0);
    }
    expect(measured.method).toContain('Float32Array.prototype.set');
  });

  it('shows each op case as GB/s and as a share of the cache-sized copy', () => {
    const md = markdownReport(record({ method: 'a copy', cacheGBps: 50, memoryGBps: 20 }), null);
    expect(md).toContain('### Memory traffic (GB/s of inputs and outputs; the best copy here: 50.0 GB/s at 1 MiB, 20.0 GB/s at 64 MiB)');
    // 2 MB in 1 ms is 2 GB/s, 4% of 50; in 0.05 ms, 40 GB/s, 80%.
    expect(md).toMatch(/\| dwconv-s1-60@28\/forward \| [^|]+ \| 2\.00 GB\/s \(4%\) \| 40\.00 GB\/s \(80%\) \|/);
  });

  it('leaves the table out of records made before the measurement', () => {
    expect(markdownReport(record(undefined), null)).not.toContain('### Memory traffic');
  });
});
