/** What a run records for its plot. */
export interface TrainingHistory {
  /** One point per optimizer step: the batch's mean loss and accuracy (training mode). */
  steps: { step: number; loss: number; accuracy: number }[];
  /** One point per epoch, at the step it ended: held-out loss and accuracy (evaluation mode). */
  epochs: { epoch: number; step: number; testLoss: number; testAccuracy: number }[];
}

const WIDTH = 720;
const PANEL_HEIGHT = 260;
const MARGIN = { left: 64, right: 24, top: 36, bottom: 40 };
const COLORS = { step: '#9ab8dc', smooth: '#1f5fa8', test: '#d4492a', grid: '#e4e4e4', axis: '#444' };

/**
 * The training curves as a standalone SVG: loss (top) and accuracy (bottom) against the step, each
 * batch's value faint, a running mean over about 2% of the steps bold, and the held-out figures of each
 * epoch as red points. Plain SVG 1.1 text, no script or external resource.
 */
export function trainingCurvesSvg(history: TrainingHistory, title = 'training curves'): string {
  const lastStep = Math.max(1, ...history.steps.map((s) => s.step), ...history.epochs.map((e) => e.step));
  const window = Math.max(1, Math.round(history.steps.length / 50));
  const maxLoss = Math.max(1e-9, ...history.steps.map((s) => s.loss).filter(Number.isFinite), ...history.epochs.map((e) => e.testLoss));
  const panels = [
    panel(0, 'loss', [0, niceCeiling(maxLoss)], (v) => String(Number(v.toFixed(3))), {
      steps: history.steps.map((s) => [s.step, s.loss]),
      smooth: runningMean(
        history.steps.map((s) => [s.step, s.loss]),
        window,
      ),
      test: history.epochs.map((e) => [e.step, e.testLoss]),
      lastStep,
    }),
    panel(1, 'accuracy', [0, 1], (v) => `${Math.round(v * 100)}%`, {
      steps: history.steps.map((s) => [s.step, s.accuracy]),
      smooth: runningMean(
        history.steps.map((s) => [s.step, s.accuracy]),
        window,
      ),
      test: history.epochs.map((e) => [e.step, e.testAccuracy]),
      lastStep,
    }),
  ];
  const height = 2 * PANEL_HEIGHT + 56;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
    ...panels,
    legend(height - 10),
    '</svg>',
    '',
  ].join('\n');
}

type Point = [number, number];

function panel(
  index: number,
  label: string,
  [low, high]: [number, number],
  format: (v: number) => string,
  series: { steps: Point[]; smooth: Point[]; test: Point[]; lastStep: number },
): string {
  const top = 24 + index * PANEL_HEIGHT;
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const x0 = MARGIN.left;
  const y0 = top + MARGIN.top;
  const sx = (step: number) => x0 + (step / series.lastStep) * plotWidth;
  const sy = (v: number) => y0 + plotHeight - ((Math.min(high, Math.max(low, v)) - low) / (high - low)) * plotHeight;
  const parts: string[] = [`<g aria-label="${label}">`];
  for (let i = 0; i <= 4; i++) {
    const v = low + ((high - low) * i) / 4;
    const y = sy(v).toFixed(1);
    parts.push(`<line x1="${x0}" x2="${x0 + plotWidth}" y1="${y}" y2="${y}" stroke="${COLORS.grid}"/>`);
    parts.push(`<text x="${x0 - 6}" y="${y}" dy="4" text-anchor="end">${format(v)}</text>`);
  }
  for (let i = 0; i <= 5; i++) {
    const step = Math.round((series.lastStep * i) / 5);
    parts.push(`<text x="${sx(step).toFixed(1)}" y="${y0 + plotHeight + 16}" text-anchor="middle">${step}</text>`);
  }
  parts.push(`<rect x="${x0}" y="${y0}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="${COLORS.axis}"/>`);
  parts.push(`<text x="${x0}" y="${y0 - 8}" font-weight="bold">${label}</text>`);
  parts.push(`<text x="${x0 + plotWidth / 2}" y="${y0 + plotHeight + 32}" text-anchor="middle">step</text>`);
  const polyline = (points: Point[], color: string, width: number) =>
    points.length === 0
      ? ''
      : `<polyline fill="none" stroke="${color}" stroke-width="${width}" points="${points
          .filter(([, v]) => Number.isFinite(v))
          .map(([s, v]) => `${sx(s).toFixed(1)},${sy(v).toFixed(1)}`)
          .join(' ')}"/>`;
  parts.push(polyline(series.steps, COLORS.step, 0.8));
  parts.push(polyline(series.smooth, COLORS.smooth, 2));
  for (const [s, v] of series.test) {
    parts.push(
      `<circle cx="${sx(s).toFixed(1)}" cy="${sy(v).toFixed(1)}" r="4" fill="${COLORS.test}"><title>${format(v)}</title></circle>`,
    );
  }
  parts.push('</g>');
  return parts.filter((p) => p !== '').join('\n');
}

function legend(y: number): string {
  const items: [string, string][] = [
    [COLORS.step, 'per batch (training)'],
    [COLORS.smooth, 'running mean (training)'],
    [COLORS.test, 'held-out, end of epoch'],
  ];
  return items
    .map(([color, text], i) => {
      const x = MARGIN.left + i * 210;
      return `<rect x="${x}" y="${y - 9}" width="14" height="10" fill="${color}"/><text x="${x + 20}" y="${y}">${text}</text>`;
    })
    .join('\n');
}

/** The mean of each point and up to `window - 1` before it. */
function runningMean(points: Point[], window: number): Point[] {
  let sum = 0;
  return points.map(([s, v], i) => {
    sum += v;
    if (i >= window) sum -= (points[i - window] as Point)[1];
    return [s, sum / Math.min(i + 1, window)];
  });
}

/** The smallest of 1, 2, 3, 4, 6, 8 times a power of ten that is at least `v`: a quarter of it is a round tick. */
function niceCeiling(v: number): number {
  const power = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 3, 4, 6, 8, 10]) if (m * power >= v) return m * power;
  return 10 * power;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
