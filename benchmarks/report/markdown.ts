import type { Suite } from '../cases/case.js';
import { formatBytes } from '../method/memory.js';
import type { CaseResult } from '../runner/result.js';
import { phaseSection } from './phases.js';
import {
  formatMs,
  formatRatio,
  gbps,
  gflops,
  peakRssCell,
  type RunRecord,
  resultFor,
  slowCoreThreshold,
  speedup,
  statusMark,
} from './record.js';

/** The Markdown report: machine, versions, method, the tables, the chart, and every caveat. */

const SUITE_TITLES: Record<Suite, string> = {
  ops: 'Ops at ShuffleNet v1 shapes (g=3, 1.0x, 224x224 input)',
  network: 'Whole network, forward (inference)',
  train: 'Training step (forward + backward + SGD update)',
};

/** A Markdown table; columns after the first are right-aligned (numbers) unless `textColumns`. */
function table(header: string[], rows: string[][], textColumns = false): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 || textColumns ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

function timeCell(r: CaseResult | undefined, withRange: boolean): string {
  if (r?.status !== 'ok' || !r.timing) return statusMark(r);
  const t = r.timing;
  const busy = t.load.busy ? '\\*' : '';
  const slow = t.core?.slow ? ' †' : '';
  const single = t.single ? ' (1 run)' : '';
  const range = withRange && !t.single ? ` (${formatMs(t.minMs, false)}–${formatMs(t.maxMs, false)})` : '';
  return `${formatMs(t.medianMs)}${range}${single}${busy}${slow}`;
}

/** The method's paragraph on the core-speed probe (method/core.ts), for records that have it. */
function coreMethod(record: RunRecord): string {
  const core = record.core;
  if (!core) return '';
  return (
    `Results marked † were timed on a slow core. Each target's process runs a core-speed probe (${core.probe}, ` +
    "a few ms, no memory traffic) right before and right after each case's timed runs and about once a second among them " +
    '(a "1 run" result: right after its run), outside the timed spans. The median of those probe times over the run\'s ' +
    `reference, the fastest probe of the whole run (at most the best of 10 in the runner's own process at the start; ` +
    `${formatMs(core.referenceMs)} here), is the result's probe slowdown; above ${core.threshold}x the process ran on a core that much ` +
    'slower than the fastest seen (on a small VM one vCPU can run ~1.8x slower for a while, with no steal time and nothing else ' +
    'running, and a process tends to stay on the vCPU it started on), so its time, and every ratio with it, is inflated by up to ' +
    'that factor. Another process sharing the core slows the probe too: such a result is usually marked \\* as well. ' +
    'Times are never rescaled; the JSON record keeps every probe (timing.core). ' +
    (core.rerun
      ? 'A whole-network case whose process probed slow is run once more in a fresh process, and the attempt with the faster ' +
        'probe is reported (the slow-core section lists them, and the JSON keeps the other attempt in slowCoreRerun); op cases ' +
        'share a process and are only marked.'
      : 'Slow results were not rerun (--no-slow-rerun).')
  );
}

/** The footnote on results marked †, the reruns, and the test hook if it was on (empty when none). */
function coreSection(record: RunRecord): string[] {
  const core = record.core;
  const threshold = slowCoreThreshold(record);
  const slow = record.results.filter((r) => r.status === 'ok' && r.timing?.core?.slow);
  const reruns = record.results.filter((r) => r.slowCoreRerun);
  if (!core || (!slow.length && !reruns.length && !core.probeScale)) return [];
  const out = ['## Slow core (†)', ''];
  if (core.probeScale) {
    out.push(
      `**The probe's test hook was on** (SHUFFLE_BENCH_PROBE_SCALE): every probe time in the targets' processes was multiplied by ` +
        `${core.probeScale[0]} (a rerun's by ${core.probeScale[1]}), so this run's slow-core marks are forced, not measured.`,
      '',
    );
  }
  if (slow.length) {
    const ok = record.results.filter((r) => r.status === 'ok').length;
    const worst = Math.max(...slow.map((r) => r.timing?.core?.slowdown ?? 0));
    out.push(
      `† ${slow.length} of ${ok} results were timed in a process whose core-speed probe ran more than ${threshold}x the run's ` +
        `reference of ${formatMs(core.referenceMs)} (up to ${worst.toFixed(2)}x): that process was on a slower core, so these times are ` +
        'likely inflated by up to their factor, and ratios with them (marked † too) are not to be trusted. They are shown as measured.',
      '',
    );
    for (const r of slow) {
      const c = r.timing?.core;
      if (!c) continue;
      out.push(
        `- ${r.target} ${r.caseKey}: ${formatMs(r.timing?.medianMs ?? 0)}, probe ${(c.slowdown ?? 0).toFixed(2)}x ` +
          `(${c.probesMs.map((ms) => ms.toFixed(1)).join(', ')} ms)`,
      );
    }
    out.push('');
  }
  if (reruns.length) {
    out.push('Whole-network cases run again in a fresh process because their first process probed slow:', '');
    for (const r of reruns) {
      const rerun = r.slowCoreRerun;
      if (!rerun) continue;
      const [first, second] = rerun.kept === 'first' ? [r, rerun.other] : [rerun.other, r];
      const attempt = (a: typeof r) =>
        a.status === 'ok' && a.timing
          ? `${formatMs(a.timing.medianMs)} (probe ${a.timing.core?.slowdown?.toFixed(2) ?? '?'}x)`
          : `${a.status}${a.reason ? ` (${a.reason})` : ''}`;
      out.push(
        `- ${r.target} ${r.caseKey}: first ${attempt(first)}, rerun ${attempt(second)}; reported: the ${rerun.kept === 'first' ? 'first' : 'rerun'}`,
      );
    }
    out.push('');
  }
  return out;
}

export function markdownReport(record: RunRecord, chartFile: string | null): string {
  const { machine } = record;
  const targets = record.targets.map((t) => t.name);
  const out: string[] = [];
  out.push(`# Benchmarks: ${record.date.slice(0, 10)} on ${machine.name}`, '');
  for (const note of record.notes ?? []) out.push(`> ${note}`, '');
  out.push(
    `- **Machine**: ${machine.cpu}, ${machine.cpus} CPUs, ${machine.memoryGiB} GiB; ${machine.os}; Node ${machine.node} (V8 ${machine.v8})`,
    `- **Commit**: ${machine.commit ?? 'unknown'}`,
    `- **Run**: \`${record.command}\`, started ${record.date}, took ${Math.round(record.seconds)} s${record.tiny ? ' (tiny shapes: a smoke run, not a measurement)' : ''}`,
    `- **Packages**: ${Object.entries(record.versions)
      .filter(([, v]) => v)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    '',
  );

  out.push('## Targets', '');
  for (const t of record.targets) {
    const details = Object.entries(t.details)
      .map(([k, v]) => `${k}: ${v}`)
      .join('; ');
    out.push(`- **${t.name}** (${t.kind === 'ours' ? 'ours' : 'peer'}): ${t.description}${details ? `. ${details}` : ''}`);
  }
  out.push('');

  out.push(
    '## Method',
    '',
    `Every case is first run once and checked against our reference backend (largest |difference| over the largest |reference value|, per output: ` +
      `ops within 1e-4, network forwards 1e-3, training steps 2e-3 at tiny sizes and 0.1 at full size, where float32 accumulation ` +
      `in batch norm's backward (tfjs-wasm's) moves early gradients by percents: see benchmarks/cases/network.ts); ` +
      'a case that disagrees is reported INVALID and not timed; the Validation section lists every difference. ' +
      `Then warm-up runs until the median of the last 3 runs is within 5% of the 3 before (at most ${record.timing.warmupMaxMs / 1000} s), ` +
      `then timed runs: at least ${record.timing.minReps} runs and ${record.timing.minTimeMs / 1000} s, at most ${record.timing.maxReps} runs or ${record.timing.maxTimeMs / 1000} s. ` +
      `A case whose single run already exceeds ${record.timing.maxTimeMs / 1000} s is reported from its validation run ("1 run"). ` +
      'Cells show the median, with (min–max). Each target runs in a process of its own, one after the other. ' +
      `Results marked \\* were timed while other processes kept more than ${record.timing.busyThresholdCores} cores busy on average ` +
      "(machine CPU time from /proc/stat minus this process's own): treat them as noisy. " +
      (coreMethod(record) ? `${coreMethod(record)} ` : '') +
      'FLOPs count a multiply-add as 2 (the ShuffleNet papers count multiply-adds, so their "FLOPs" are half of ours); pooling counts one operation per window tap; a training step counts 3 forwards. ' +
      `Our backends take ${record.layout} inputs; TensorFlow.js runs NHWC (its CPU and WASM kernels take nothing else); onnxruntime NCHW.`,
    '',
  );
  if (record.results.some((r) => r.memory)) {
    out.push(
      'Memory (whole-network cases): each such case runs in a fresh process of its target (unless --in-process). Once its inputs and the reference outputs ' +
        "are ready, a garbage collection runs and the kernel's high-water mark of the process's resident set is reset (Linux: " +
        '`/proc/self/clear_refs`); the peak RSS is that mark after the case was prepared (model built), validated, warmed up and timed, ' +
        'shown with its increase over the RSS the case started from (the runtime and the loaded libraries). "process peak" marks a ' +
        "process whose mark could not be reset (its lifetime peak). ArrayBuffer bytes (Node's count of live ArrayBuffers, which V8 heap " +
        'figures leave out) cannot be sampled inside a synchronous run: the largest value seen after each run, before garbage ' +
        "collection, is shown, a lower bound of their peak. A WebAssembly memory (tfjs-wasm's heap) is not among them: it is in the " +
        "RSS, and in V8's external bytes that the JSON record also gives (peakExternalBytes).",
      '',
    );
  }
  if (chartFile) out.push(`![median time per case, log scale](${chartFile})`, '');

  const suites = [...new Set(record.cases.map((c) => c.suite))];
  for (const suite of suites) {
    const cases = record.cases.filter((c) => c.suite === suite);
    out.push(`## ${SUITE_TITLES[suite]}`, '', '### Median time (min–max)', '');
    out.push(
      table(
        ['case', ...targets],
        cases.map((c) => [c.key, ...targets.map((t) => timeCell(resultFor(record, t, c.key), true))]),
      ),
      '',
    );
    if (record.baseline) {
      out.push(`### Speed-up over ${record.baseline} (${record.baseline}'s time / this time)`, '');
      const others = targets.filter((t) => t !== record.baseline);
      out.push(
        table(
          ['case', ...others],
          cases.map((c) => [
            c.key,
            ...others.map((t) => {
              const r = resultFor(record, t, c.key);
              const x = r ? speedup(record, r) : null;
              if (x === null) return statusMark(r) || '–';
              const slow = r?.timing?.core?.slow || resultFor(record, record.baseline ?? '', c.key)?.timing?.core?.slow;
              return `${formatRatio(x)}${slow ? ' †' : ''}`;
            }),
          ]),
        ),
        '',
      );
    }
    if (cases.some((c) => targets.some((t) => resultFor(record, t, c.key)?.memory))) {
      out.push('### Peak memory: RSS while the case ran (increase over its start)', '');
      out.push(
        table(
          ['case', ...targets],
          cases.map((c) => [c.key, ...targets.map((t) => peakRssCell(resultFor(record, t, c.key)))]),
        ),
        '',
      );
      out.push('### ArrayBuffer bytes: largest seen after a run (at the start)', '');
      out.push(
        table(
          ['case', ...targets],
          cases.map((c) => [
            c.key,
            ...targets.map((t) => {
              const m = resultFor(record, t, c.key)?.memory;
              return m ? `${formatBytes(m.peakArrayBufferBytes)} (${formatBytes(m.startArrayBufferBytes)})` : '';
            }),
          ]),
        ),
        '',
      );
    }
    out.push('### Throughput (GFLOP/s; GB/s of inputs and outputs for the shuffle)', '');
    out.push(
      table(
        ['case', 'FLOPs', ...targets],
        cases.map((c) => [
          c.key,
          c.flops ? `${(c.flops / 1e6).toFixed(c.flops < 1e7 ? 2 : 1)} M` : '0',
          ...targets.map((t) => {
            const r = resultFor(record, t, c.key);
            if (r?.status !== 'ok') return statusMark(r);
            const g = gflops(r);
            if (g !== null) return g.toFixed(2);
            const b = gbps(r);
            return b === null ? '' : `${b.toFixed(2)} GB/s`;
          }),
        ]),
      ),
      '',
    );
    const copy = record.bandwidth;
    if (suite === 'ops' && copy) {
      out.push(
        `### Memory traffic (GB/s of inputs and outputs; the best copy here: ${copy.cacheGBps.toFixed(1)} GB/s at 1 MiB, ${copy.memoryGBps.toFixed(1)} GB/s at 64 MiB)`,
        '',
        'The bytes each case must read and write at least, over its median time, and that as a share of the cache-sized copy ' +
          `(${copy.method}, measured in the runner's process at the start of this run): how close a case comes to being bound by memory ` +
          'rather than by arithmetic.',
        '',
      );
      out.push(
        table(
          ['case', 'bytes', ...targets],
          cases.map((c) => [
            c.key,
            formatBytes(c.bytes),
            ...targets.map((t) => {
              const r = resultFor(record, t, c.key);
              if (r?.status !== 'ok') return statusMark(r);
              const b = gbps(r);
              return b === null ? '' : `${b.toFixed(2)} GB/s (${((100 * b) / copy.cacheGBps).toFixed(b < copy.cacheGBps / 100 ? 1 : 0)}%)`;
            }),
          ]),
        ),
        '',
      );
    }
  }

  out.push(...phaseSection(record, table));

  const variantResults = record.results.filter((r) => r.variants && r.variants.length > 1);
  if (variantResults.length) {
    out.push(
      '## Variants (TensorFlow.js emulations and alternatives)',
      '',
      'Where a peer has several ways to compute a case, all are validated and timed and the fastest is reported above. ' +
        'TensorFlow.js has no grouped convolution; see benchmarks/peers/tfjs-grouped.ts for the five emulations.',
      '',
    );
    out.push(
      table(
        ['target', 'case', 'used (fastest)', 'all (median)'],
        variantResults.map((r) => [
          r.target,
          r.caseKey,
          r.variant ?? '',
          (r.variants ?? [])
            .map((v) => `${v.variant}: ${v.status === 'ok' && v.timing ? formatMs(v.timing.medianMs) : v.status}`)
            .join('; '),
        ]),
        true,
      ),
      '',
    );
  }

  // Each note once, with the cases it applies to.
  const notes = new Map<string, string[]>();
  for (const r of record.results) {
    if (!r.note) continue;
    const key = `${r.target}: ${r.note}`;
    notes.set(key, [...(notes.get(key) ?? []), r.caseKey]);
  }
  const problems = record.results.filter((r) => r.status !== 'ok');
  const listed = (keys: string[]) => (keys.length > 4 ? `${keys.length} cases` : keys.join(', '));
  if (notes.size || problems.length) {
    out.push('## Notes', '');
    for (const [note, keys] of notes) out.push(`- ${note} (${listed(keys)})`);
    const reasons = new Map<string, string[]>();
    for (const r of problems) {
      const key = `${r.target}: ${r.status}${r.reason ? ` (${r.reason})` : ''}`;
      reasons.set(key, [...(reasons.get(key) ?? []), r.caseKey]);
    }
    for (const [reason, keys] of reasons) out.push(`- ${reason}: ${listed(keys)}`);
    out.push('');
  }

  out.push(
    '## Validation',
    '',
    "Largest |difference| from the reference over each output, relative to the output's largest |value| (the worst output).",
    '',
  );
  out.push(
    table(
      ['case', 'tolerance', ...targets],
      record.cases.map((c) => {
        const first = record.results.find((r) => r.caseKey === c.key && r.validation);
        return [
          c.key,
          first?.validation ? String(first.validation.tolerance) : '',
          ...targets.map((t) => {
            const r = resultFor(record, t, c.key);
            if (!r?.validation) return statusMark(r);
            return `${r.validation.error === 0 ? '0' : r.validation.error.toExponential(1)}${r.validation.ok ? '' : ' INVALID'}`;
          }),
        ];
      }),
    ),
    '',
  );

  const busy = record.results.filter((r) => r.timing?.load.busy);
  if (busy.length) {
    const worst = Math.max(...busy.map((r) => r.timing?.load.othersCores ?? 0));
    out.push(
      `${busy.length} of ${record.results.filter((r) => r.status === 'ok').length} results were timed while other processes were busy ` +
        `(up to ${worst.toFixed(2)} of ${machine.cpus} cores on average): their numbers are noisier than the rest.`,
      '',
    );
  }
  out.push(...coreSection(record));
  return `${out.join('\n')}\n`;
}
