import { phaseChart } from './phase-chart.js';
import { formatMs, type RunRecord, resultFor } from './record.js';

/**
 * A hand-written SVG chart: for each case a group of horizontal bars, one per target, whose length is
 * the median time on a log scale (so a 1000x spread stays readable); whiskers show min and max. Results
 * timed on a busy machine are drawn hatched; those timed on a slow core (method/core.ts) carry a †.
 */

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** Axis labels at powers of ten: 0.001 ms ... 100 ms, 1 s, 10 s. */
function decadeLabel(ms: number): string {
  if (ms >= 1000) return `${Math.round(ms / 1000)} s`;
  return `${ms >= 1 ? Math.round(ms) : Number(ms.toPrecision(1))} ms`;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function svgChart(record: RunRecord): string {
  const targets = record.targets.map((t) => t.name);
  const times = record.results.flatMap((r) => (r.status === 'ok' && r.timing ? [r.timing.minMs, r.timing.maxMs] : [])).filter((t) => t > 0);
  const low = 10 ** Math.floor(Math.log10(Math.min(...times, 1)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(...times, 10)));
  const labelWidth = 250;
  const plotWidth = 640;
  const right = 90;
  const bar = 9;
  const gap = 2;
  const groupGap = 10;
  const top = 56;
  const groupHeight = targets.length * (bar + gap) + groupGap;
  const chartHeight = top + record.cases.length * groupHeight + 30;
  const width = labelWidth + plotWidth + right;
  // The gpu modes' phase shares (phase-chart.ts), under the chart when any gpu target ran.
  const phases = phaseChart(record, { top: chartHeight, labelWidth, plotWidth });
  const height = chartHeight + phases.height;
  const x = (ms: number) => labelWidth + (Math.log10(ms / low) / Math.log10(high / low)) * plotWidth;

  const title = `Median time per case (log scale) — ${record.machine.name}, ${record.date.slice(0, 10)}`;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11" role="img" aria-labelledby="chart-title">`,
    `<title id="chart-title">${escapeXml(title)}</title>`,
    '<defs><pattern id="busy" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="2" height="4" fill="#fff" fill-opacity="0.6"/></pattern></defs>',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${labelWidth}" y="16" font-size="13" font-weight="bold">${escapeXml(title)}</text>`,
  );
  targets.forEach((t, i) => {
    const lx = labelWidth + i * 120;
    parts.push(
      `<rect x="${lx}" y="26" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${lx + 14}" y="35">${escapeXml(t)}</text>`,
    );
  });
  for (let decade = low; decade <= high * 1.0001; decade *= 10) {
    const gx = x(decade);
    parts.push(
      `<line x1="${gx.toFixed(1)}" y1="${top - 6}" x2="${gx.toFixed(1)}" y2="${chartHeight - 24}" stroke="#ddd"/>`,
      `<text x="${gx.toFixed(1)}" y="${chartHeight - 10}" text-anchor="middle" fill="#555">${escapeXml(decadeLabel(decade))}</text>`,
    );
  }
  record.cases.forEach((c, ci) => {
    const gy = top + ci * groupHeight;
    parts.push(
      `<text x="${labelWidth - 8}" y="${gy + (targets.length * (bar + gap)) / 2 + 3}" text-anchor="end">${escapeXml(c.key)}</text>`,
    );
    targets.forEach((t, ti) => {
      const r = resultFor(record, t, c.key);
      const y = gy + ti * (bar + gap);
      if (r?.status !== 'ok' || !r.timing) {
        const why = r ? (r.status === 'unsupported' ? 'n/a' : r.status) : '';
        if (why) parts.push(`<text x="${labelWidth + 4}" y="${y + bar - 1}" fill="#999" font-size="9">${escapeXml(`${t}: ${why}`)}</text>`);
        return;
      }
      const { medianMs, minMs, maxMs, load } = r.timing;
      const slow = r.timing.core?.slow ? '†' : '';
      const color = COLORS[ti % COLORS.length];
      const w = Math.max(1, x(medianMs) - labelWidth);
      parts.push(
        `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${bar}" fill="${color}"><title>${escapeXml(`${t} ${c.key}: ${formatMs(medianMs)} (min ${formatMs(minMs)}, max ${formatMs(maxMs)}, ${r.timing.reps} runs)${slow ? `, slow core: probe ${r.timing.core?.slowdown?.toFixed(2)}x` : ''}`)}</title></rect>`,
      );
      if (load.busy) parts.push(`<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${bar}" fill="url(#busy)"/>`);
      const my = y + bar / 2;
      parts.push(`<line x1="${x(minMs).toFixed(1)}" y1="${my}" x2="${x(maxMs).toFixed(1)}" y2="${my}" stroke="#333" stroke-width="1"/>`);
      parts.push(
        `<text x="${(Math.max(x(maxMs), x(medianMs)) + 4).toFixed(1)}" y="${y + bar - 1}" font-size="9" fill="#333">${escapeXml(formatMs(medianMs))}${load.busy ? '*' : ''}${slow}</text>`,
      );
    });
  });
  parts.push(...phases.parts, '</svg>');
  return `${parts.join('\n')}\n`;
}
