import type { Suite } from '../cases/case.js';
import type { CaseResult } from '../runner/result.js';
import { formatMs, formatRatio, type RunRecord, resultFor } from './record.js';

/**
 * The gpu section of the reports: per gpu mode and case, the time split into compile, upload, run and
 * readback (runner/phases.ts), and where each mode stands against our cpu backend in the same run.
 */

/** The target the gpu modes are compared with: the fast cpu backend on one thread. */
export const CPU_TARGET = 'cpu';

const SUITE_NAMES: Record<Suite, string> = { ops: 'Ops', network: 'Whole network, forward', train: 'Training step' };

/** Devices that are a CPU underneath, by what the targets report (Dawn's adapter; headlessgl on Xvfb). */
const SOFTWARE_DEVICE = /llvmpipe|softpipe|lavapipe|swiftshader|Xvfb/i;

export function phasedResults(record: RunRecord): CaseResult[] {
  return record.results.filter((r) => r.status === 'ok' && r.phases);
}

/** The cpu backend's median for a case, divided by `ms`: above 1, the gpu mode is faster than cpu. */
export function versusCpu(record: RunRecord, caseKey: string, ms: number): number | null {
  const cpu = resultFor(record, CPU_TARGET, caseKey);
  if (cpu?.status !== 'ok' || !cpu.timing || ms <= 0) return null;
  return cpu.timing.medianMs / ms;
}

function ratioCell(x: number | null): string {
  return x === null ? '–' : formatRatio(x);
}

function geometricMean(values: readonly number[]): number | null {
  return values.length ? Math.exp(values.reduce((a, v) => a + Math.log(v), 0) / values.length) : null;
}

/**
 * The row cells of one phased result: mode, compile, upload, run, readback, [host,] total, vs cpu (total),
 * vs cpu (run). `withHost`: the table has a host column (training steps: the SGD update).
 */
function phaseCells(record: RunRecord, r: CaseResult, markdown: boolean, withHost: boolean): string[] {
  const p = r.phases;
  const t = r.timing;
  if (!p || !t) return [];
  const mode = p.executor ? `${r.target} (${p.executor})` : r.target;
  const pipeline = p.pipelineFirstRunMs === undefined ? '' : `; pipeline recorded, first run ${formatMs(p.pipelineFirstRunMs)}`;
  const kernels = `${p.kernels} kernel${p.kernels === 1 ? '' : 's'}`;
  const compile = `${formatMs(p.compileMs)}${markdown ? ` (${kernels}${pipeline}; first call ${formatMs(p.firstCallMs)})` : ''}`;
  return [
    mode,
    compile,
    `${formatMs(p.upload.medianMs)}${markdown ? ` (${p.uploads})` : ''}`,
    `${formatMs(p.run.medianMs)}${p.load.busy ? (markdown ? '\\*' : '*') : ''}`,
    formatMs(p.readback.medianMs),
    ...(withHost ? [p.host ? formatMs(p.host.medianMs) : ''] : []),
    `${formatMs(t.medianMs)}${t.load.busy ? (markdown ? '\\*' : '*') : ''}`,
    ratioCell(versusCpu(record, r.caseKey, t.medianMs)),
    ratioCell(versusCpu(record, r.caseKey, p.run.medianMs)),
  ];
}

function header(withHost: boolean): string[] {
  return ['case', 'mode', 'compile', 'upload', 'run', 'readback', ...(withHost ? ['host'] : []), 'total', 'vs cpu', 'run vs cpu'];
}

/** One row per (case, gpu mode) of `results`, in case order; a host column when any has host work. */
function phaseTable(record: RunRecord, results: CaseResult[], markdown: boolean): { header: string[]; rows: string[][] } {
  const withHost = results.some((r) => r.phases?.host);
  const rows = record.cases.flatMap((c) =>
    results.filter((r) => r.caseKey === c.key).map((r) => [c.key, ...phaseCells(record, r, markdown, withHost)]),
  );
  return { header: header(withHost), rows };
}

/** Per mode, the geometric mean over the op cases of cpu time / mode time, whole call and run alone. */
export function standings(record: RunRecord): { target: string; cases: number; total: number | null; run: number | null }[] {
  const byTarget = new Map<string, CaseResult[]>();
  for (const r of phasedResults(record)) if (r.suite === 'ops') byTarget.set(r.target, [...(byTarget.get(r.target) ?? []), r]);
  return [...byTarget].map(([target, results]) => {
    const totals = results.flatMap((r) => versusCpu(record, r.caseKey, r.timing?.medianMs ?? 0) ?? []);
    const runs = results.flatMap((r) => versusCpu(record, r.caseKey, r.phases?.run.medianMs ?? 0) ?? []);
    return {
      target,
      cases: results.length,
      total: totals.length === results.length ? geometricMean(totals) : null,
      run: geometricMean(runs),
    };
  });
}

/** The terminal's phase block: one row per (case, gpu mode), median ms. Empty without gpu results. */
export function phaseRows(record: RunRecord): { header: string[]; rows: string[][] } | null {
  const phased = phasedResults(record);
  return phased.length ? phaseTable(record, phased, false) : null;
}

/** The note under a phase table: what the columns are, and the software-rasteriser caveat. */
export function phaseLegend(record: RunRecord): string[] {
  const lines = [
    'gpu phases (medians): compile = kernels compiled by the first call; upload = host inputs to the device; run = kernels until done; ' +
      'readback = outputs to the host; total = the whole call, host to host (timed apart); vs cpu = cpu time / this time (above 1: faster than cpu); ' +
      '* after run (the phase runs) or total: timed while other processes were busy',
  ];
  const software = softwareModes(record);
  if (software.length) {
    lines.push(
      `${software.join(' and ')} ran on Mesa's llvmpipe, a CPU rasteriser: ${software.length > 1 ? 'their' : 'its'} times say little about real GPUs (see the device in the target details)`,
    );
  }
  return lines;
}

/** GL-based gpu modes whose device is a CPU underneath. */
function softwareModes(record: RunRecord): string[] {
  return record.targets.filter((t) => t.name.startsWith('gpu-') && SOFTWARE_DEVICE.test(t.details.device ?? '')).map((t) => t.name);
}

/** The Markdown gpu section: method, caveat, standings, and one table per suite. Empty without gpu results. */
export function phaseSection(record: RunRecord, table: (header: string[], rows: string[][]) => string): string[] {
  const phased = phasedResults(record);
  if (!phased.length) return [];
  const out: string[] = ['## GPU modes: compile, upload, run, readback', ''];
  const software = softwareModes(record);
  const devices = record.targets
    .filter((t) => t.name.startsWith('gpu-') && t.details.device)
    .map((t) => `- **${t.name}**: ${t.details.device}`);
  out.push(
    software.length
      ? `**Here ${software.join(' and ')} ran on Mesa's llvmpipe, a software rasteriser on this machine's CPU, so ${software.length > 1 ? 'their' : 'its'} times say little about real GPUs**: ` +
          "they show gpu.js's and Mesa's overheads (shader translation, texture or buffer traffic, llvmpipe's threads) on the CPU. " +
          "gpu-cpu (gpu.js's JavaScript fallback) and gpu-webasm (its WebAssembly backend) are CPU paths by design."
      : 'The gpu modes ran on the devices below.',
    '',
    ...devices,
    '',
    'Each gpu case is timed whole first (the total: host inputs uploaded, the op or forward run, its outputs read back, as a call of the cpu backend ' +
      'goes from host to host), then run again with each phase isolated, medians over the runs (benchmarks/targets/ours.ts, AsyncBackendSession):',
    '',
    "- **compile**: the kernel compile time the backend counted during the case's first call (gpu.js's build plus the first run, where drivers " +
      "finish compiling), how many kernels it compiled, and that first call's wall time;",
    "- **upload** (tensors per call): `upload()` of every input, plus the backend's 'upload' kernel, which headlessgl and webgpu defer until a kernel first needs " +
      'the tensor; weights a model uploads again after an SGD update count here;',
    '- **run**: the call on device tensors, less those deferred uploads, plus the wait for device work still queued when its promise settled ' +
      '(a first read of the outputs beyond a second read of the same outputs: webgpu queues work until a read);',
    "- **readback**: that second read, on an idle device, and the reads the call made itself, by the backend's read counter (a training step reads its " +
      'gradients inside backwardAsync: those include the wait for device work queued before them);',
    '- **host**: training steps only, the SGD update of the host parameters;',
    "- **mode (executor)**: for the whole-network cases, how the model's forward ran: `ops` (op by op: training steps, and forwards " +
      'without a pipeline) or the gpu.js executor of its inference pipeline (`fused-threaded`, `fused-sync`, `fused-encoder`, `generic`);',
    `- **vs cpu**: our \`${CPU_TARGET}\` backend's median for the same case in this run divided by the mode's (above 1: faster than cpu), for the whole call and for run alone.`,
    '',
    'The phase medians come from other runs than the total and need not add up to it. A \\* after run (for the phase runs) or after the total marks runs timed while other processes were busy.',
    '',
    'A whole-network forward that ran as the inference pipeline (an executor other than `ops`) falls into the phases as follows: ' +
      "**compile** is the first call's wall time less its uploads and reads: recording the pipeline (one op-by-op forward, compiling its kernels) " +
      "and gpu.js's first run of it, which compiles the plan (shown beside it); **upload** is x, and the logits, which the pipeline returns on the host " +
      'and the model uploads again (forwardAsync resolves to a device tensor; the logits are a few KiB); **run** is the pipeline call, which copies ' +
      'x and every parameter to the device, runs every step and reads the outputs back inside gpu.js, where these transfers cannot be told apart; ' +
      '**readback** is the read of the device x that the pipeline takes as a host array, and the read of the logits.',
    '',
  );
  const summary = standings(record);
  if (summary.length) {
    out.push('Across the op cases (geometric mean of cpu time / mode time):', '');
    out.push(
      table(
        ['mode', 'op cases', 'whole call vs cpu', 'run vs cpu'],
        summary.map((s) => [s.target, String(s.cases), ratioCell(s.total), ratioCell(s.run)]),
      ),
      '',
    );
  }
  for (const suite of [...new Set(record.cases.map((c) => c.suite))]) {
    const inSuite = phased.filter((r) => r.suite === suite);
    if (!inSuite.length) continue;
    const { header: columns, rows } = phaseTable(record, inSuite, true);
    out.push(`### ${SUITE_NAMES[suite]}`, '', table(columns, rows), '');
  }
  const compiling = phased.filter((r) => (r.phases?.compilingReps ?? 0) > 0);
  if (compiling.length) {
    out.push(
      `In ${compiling.map((r) => `${r.target} ${r.caseKey}`).join(', ')}, some phase runs compiled kernels again (a kernel cache miss after the first call): those phases include compile time.`,
      '',
    );
  }
  return out;
}
