import { beforeAll, expect, it } from 'vitest';
import type { RunRecord } from '../../benchmarks/report/record.js';
import { describeGpuMode } from '../gpu/support.js';
import { expectNetworkPhases, expectOpPhases, expectPhaseReports, NETWORK_CASES, runPhased } from './gpu-phases.js';

/**
 * The phase split on headlessgl, in a process of its own (this file: vitest gives each file one), where
 * an upload reaches the device only when a kernel first needs it: the backend's 'upload' kernel.
 */
await describeGpuMode('headlessgl', () => {
  let record: RunRecord;

  beforeAll(async () => {
    // The training step's 200-odd kernels would take seconds to compile here; the cpu and webasm file runs it.
    record = await runPhased(['cpu', 'gpu-headlessgl'], [NETWORK_CASES[0] as string]);
  }, 120_000);

  it('every op case is valid and split into compile, upload, run and readback', () => {
    expectOpPhases(record, 'gpu-headlessgl');
  });

  it("the whole-network cases run and are split too (a forward as the model's pipeline)", () => {
    expectNetworkPhases(record, 'gpu-headlessgl');
  });

  it('the reports show it against the cpu backend, and name the X display it drew on', () => {
    expectPhaseReports(record, ['gpu-headlessgl']);
    expect(record.targets.find((t) => t.name === 'gpu-headlessgl')?.details.device).toContain(`display ${process.env.DISPLAY}`);
  });
});
