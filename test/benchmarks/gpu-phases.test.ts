import { beforeAll, describe, expect, it } from 'vitest';
import { phaseLegend, phaseSection } from '../../benchmarks/report/phases.js';
import type { RunRecord } from '../../benchmarks/report/record.js';
import { expectNetworkPhases, expectOpPhases, expectPhaseReports, runPhased } from './gpu-phases.js';

/**
 * The phase split on the gpu.js modes that need no GL (gpu.js's JavaScript and WebAssembly backends),
 * beside the cpu backend the reports compare them with. headlessgl runs in a process of its own
 * (gpu-phases.headlessgl.test.ts).
 */

const GPU = ['gpu-cpu', 'gpu-webasm'];
let record: RunRecord;

beforeAll(async () => {
  record = await runPhased(['cpu', ...GPU]);
}, 120_000);

describe('gpu benchmark phases (cpu and webasm modes)', () => {
  it.each(GPU)('%s: every op case is valid and split into compile, upload, run and readback', (target) => {
    expectOpPhases(record, target);
  });

  it.each(GPU)("%s: the whole-network cases run and are split too (a forward as the model's pipeline)", (target) => {
    expectNetworkPhases(record, target);
  });

  it('the cpu backend has no phases: it is what the gpu modes are compared with', () => {
    const cpu = record.results.filter((r) => r.target === 'cpu');
    expect(cpu.length).toBeGreaterThan(0);
    for (const r of cpu) expect(r.phases, r.caseKey).toBeUndefined();
  });

  it('the terminal table and the Markdown section show every phased result against the cpu backend', () => {
    expectPhaseReports(record, GPU);
  });

  it("says when a GL mode ran on Mesa's llvmpipe, and only then", () => {
    const render = (r: RunRecord) =>
      [...phaseSection(r, (header, rows) => [header, ...rows].map((c) => c.join(' | ')).join('\n')), ...phaseLegend(r)].join('\n');
    expect(render(record)).not.toMatch(/llvmpipe/);
    // The same results as if webasm's had come from Dawn on Mesa's software rasteriser.
    const asWebgpu = (name: string) => (name === 'gpu-webasm' ? 'gpu-webgpu' : name);
    const software: RunRecord = {
      ...record,
      targets: record.targets.map((t) =>
        t.name === 'gpu-webasm'
          ? { ...t, name: 'gpu-webgpu', details: { ...t.details, device: 'Dawn: OpenGL ES 3.2 Mesa 22.3.6 llvmpipe' } }
          : t,
      ),
      results: record.results.map((r) => ({ ...r, target: asWebgpu(r.target) })),
    };
    const text = render(software);
    expect(text).toMatch(/gpu-webgpu ran on Mesa's llvmpipe/);
    expect(text).toMatch(/say little about real GPUs/);
    expect(text).not.toMatch(/gpu-cpu ran on Mesa/);
  });
});
