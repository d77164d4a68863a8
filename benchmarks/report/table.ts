import { phaseLegend, phaseRows } from './phases.js';
import { formatMs, formatRatio, peakRssCell, type RunRecord, resultFor, slowCoreThreshold, speedup, statusMark } from './record.js';

/**
 * The terminal table: one row per case, per target its median time and its speed-up over the baseline
 * (baseline time / its time). A trailing * marks a result timed while other processes were busy, a †
 * one timed on a slow core (method/core.ts).
 */
export function terminalTable(record: RunRecord): string {
  const targets = record.targets.map((t) => t.name);
  const header = ['case', ...targets];
  const rows: string[][] = [];
  let busy = false;
  let slow = false;
  for (const c of record.cases) {
    const row = [c.key];
    for (const t of targets) {
      const r = resultFor(record, t, c.key);
      if (r?.status !== 'ok' || !r.timing) {
        row.push(statusMark(r));
        continue;
      }
      const ratio = t === record.baseline ? '' : speedup(record, r);
      const mark = `${r.timing.load.busy ? '*' : ''}${r.timing.core?.slow ? '†' : ''}`;
      if (r.timing.load.busy) busy = true;
      if (r.timing.core?.slow) slow = true;
      row.push(`${formatMs(r.timing.medianMs)}${mark}${ratio ? ` ${formatRatio(ratio)}` : ''}`);
    }
    rows.push(row);
  }
  const out = aligned(header, rows);
  // Peak memory of the whole-network cases (method/memory.ts), when any was measured.
  const measured = record.cases.filter((c) => targets.some((t) => resultFor(record, t, c.key)?.memory));
  if (measured.length) {
    out.push('', 'peak RSS while the case ran (increase over the RSS it started from):');
    out.push(
      ...aligned(
        header,
        measured.map((c) => [c.key, ...targets.map((t) => peakRssCell(resultFor(record, t, c.key)))]),
      ),
    );
  }
  // The gpu modes' phases (report/phases.ts), when any gpu target ran.
  const phases = phaseRows(record);
  if (phases) out.push('', ...aligned(phases.header, phases.rows), ...phaseLegend(record));
  const notes: string[] = [];
  if (record.baseline) notes.push(`ratios: ${record.baseline} time / this time (above 1: faster than ${record.baseline})`);
  if (busy) notes.push('*: other processes kept the CPUs busy while this was timed (see the report)');
  if (slow)
    notes.push(
      `†: timed on a slow core: the core-speed probe in its process ran over ${slowCoreThreshold(record)}x the fastest of the run, so the time (and its ratio) is inflated (see the report)`,
    );
  for (const r of record.results.filter((r) => r.slowCoreRerun))
    notes.push(`${r.target} ${r.caseKey}: rerun in a fresh process after a slow-core probe; reported: the ${r.slowCoreRerun?.kept}`);
  const problems = record.results.filter((r) => r.status === 'invalid' || r.status === 'failed');
  for (const r of problems) notes.push(`${r.target} ${r.caseKey}: ${r.status} (${r.reason ?? 'no reason given'})`);
  return `${[...out, '', ...notes].join('\n')}\n`;
}

/** Header, rule and rows, the first column left-aligned and the others right-aligned. */
export function aligned(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}
