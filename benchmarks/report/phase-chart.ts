import { phasedResults, versusCpu } from './phases.js';
import { formatMs, formatRatio, type RunRecord } from './record.js';

/**
 * The gpu block under the SVG chart: per (case, gpu mode) one bar split into the shares of upload, run,
 * readback (and host work) in the phase medians, so where a mode's time goes reads at a glance on every
 * case alike; the whole call's median and its ratio to the cpu backend beside it.
 */

const PHASES = [
  { key: 'upload', color: '#4e79a7' },
  { key: 'run', color: '#f28e2b' },
  { key: 'readback', color: '#59a14f' },
  { key: 'host', color: '#bab0ac' },
] as const;

const ROW = 13;

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** SVG elements from y = `top` down, and their height (0, no elements, without gpu results). */
export function phaseChart(
  record: RunRecord,
  layout: { top: number; labelWidth: number; plotWidth: number },
): { parts: string[]; height: number } {
  const rows = record.cases.flatMap((c) => phasedResults(record).filter((r) => r.caseKey === c.key));
  if (!rows.length) return { parts: [], height: 0 };
  const { top, labelWidth } = layout;
  // Narrower than the chart above, to leave room for the figures at the right.
  const plotWidth = layout.plotWidth - 60;
  const parts: string[] = [
    `<text x="${labelWidth}" y="${top + 16}" font-size="13" font-weight="bold">GPU modes: share of each phase (medians); whole call and cpu time / call time at the right</text>`,
  ];
  PHASES.forEach((p, i) => {
    const lx = labelWidth + i * 90;
    parts.push(
      `<rect x="${lx}" y="${top + 26}" width="10" height="10" fill="${p.color}"/>`,
      `<text x="${lx + 14}" y="${top + 35}">${p.key}</text>`,
    );
  });
  const first = top + 48;
  rows.forEach((r, i) => {
    const p = r.phases;
    if (!p || !r.timing) return;
    const y = first + i * ROW;
    const medians = { upload: p.upload.medianMs, run: p.run.medianMs, readback: p.readback.medianMs, host: p.host?.medianMs ?? 0 };
    const sum = Object.values(medians).reduce((a, b) => a + b, 0) || 1;
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 9}" text-anchor="end" font-size="9">${escapeXml(`${r.caseKey} · ${r.target}`)}</text>`,
    );
    let x = labelWidth;
    for (const phase of PHASES) {
      const w = (medians[phase.key] / sum) * plotWidth;
      if (w <= 0) continue;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${ROW - 3}" fill="${phase.color}"><title>${escapeXml(`${phase.key}: ${formatMs(medians[phase.key])}`)}</title></rect>`,
      );
      x += w;
    }
    const ratio = versusCpu(record, r.caseKey, r.timing.medianMs);
    const right = `${formatMs(r.timing.medianMs)}${ratio === null ? '' : ` · ${formatRatio(ratio)} vs cpu`}`;
    parts.push(`<text x="${labelWidth + plotWidth + 4}" y="${y + 9}" font-size="9" fill="#333">${escapeXml(right)}</text>`);
  });
  return { parts, height: 48 + rows.length * ROW + 16 };
}
