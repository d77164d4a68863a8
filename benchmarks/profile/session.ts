import { parseArgs } from 'node:util';
import * as kernels from '@shuffle/kernels';
import type { NetworkCase } from '../cases/case.js';
import { networkBatch } from '../cases/inputs.js';
import { buildModel, type ContractModel, canonicalNetwork, trainingStep } from '../cases/model.js';
import { networkCases } from '../cases/network.js';
import { describeMachine } from '../method/machine.js';
import { attributeLayers, OpRecorder, timedBackend } from './record.js';
import {
  LAYER_TABLE_HEADER,
  layerTableRows,
  OP_TABLE_HEADER,
  opTableRows,
  type ProfiledRun,
  type ProfileSummary,
  summarize,
} from './summary.js';

/** The profile's options, the cases it runs, one case's profile, and its Markdown (benchmarks/profile.ts is the command). */

export interface ProfileOptions {
  backend: string;
  threads: number;
  layout: 'NCHW' | 'NHWC';
  cases: string[];
  reps: number;
  warmup: number;
  tiny: boolean;
  byLayer: boolean;
  out: string;
  name: string | null;
  files: boolean;
  help: boolean;
}

function count(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} expects an integer >= ${min}, got '${value}'`);
  return n;
}

export function parseProfileOptions(argv: readonly string[]): ProfileOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      backend: { type: 'string' },
      threads: { type: 'string' },
      layout: { type: 'string' },
      case: { type: 'string', multiple: true },
      reps: { type: 'string' },
      warmup: { type: 'string' },
      tiny: { type: 'boolean' },
      'by-layer': { type: 'boolean' },
      out: { type: 'string' },
      name: { type: 'string' },
      'no-files': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const layout = values.layout ?? 'NCHW';
  if (layout !== 'NCHW' && layout !== 'NHWC') throw new Error(`--layout expects NCHW or NHWC, got '${layout}'`);
  const tiny = values.tiny ?? false;
  return {
    backend: values.backend ?? 'cpu',
    threads: count('threads', values.threads, 1, 1),
    layout,
    cases: (values.case ?? [])
      .flatMap((c) => c.split(','))
      .map((c) => c.trim())
      .filter(Boolean),
    reps: count('reps', values.reps, tiny ? 3 : 10, 1),
    warmup: count('warmup', values.warmup, tiny ? 1 : 3, 0),
    tiny,
    byLayer: values['by-layer'] ?? false,
    out: values.out ?? '',
    name: values.name ?? null,
    files: !(values['no-files'] ?? false),
    help: values.help ?? false,
  };
}

/** The synchronous backends @shuffle/kernels exports (objects with a conv2d method), by export name. */
export function exportedBackends(): Map<string, kernels.Backend> {
  const found = new Map<string, kernels.Backend>();
  for (const [name, value] of Object.entries(kernels as Record<string, unknown>)) {
    if (typeof value === 'object' && value !== null && typeof (value as kernels.Backend).conv2d === 'function')
      found.set(name, value as kernels.Backend);
  }
  return found;
}

export function profileCases(options: Pick<ProfileOptions, 'cases' | 'tiny'>): NetworkCase[] {
  const all = networkCases({ tiny: options.tiny });
  if (options.cases.length === 0) {
    const forward = all.find((c) => c.direction === 'forward');
    const train = all.find((c) => c.direction === 'train');
    return [forward, train].filter((c): c is NetworkCase => c !== undefined);
  }
  const patterns = options.cases.map((p) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i'));
  return all.filter((c) => patterns.some((p) => p.test(c.key) || p.test(c.id)));
}

export interface CaseProfile {
  caseKey: string;
  title: string;
  /** Layers whose calls are attributed (0 when the model does not list its layers). */
  layers: number;
  summary: ProfileSummary;
}

/** Profiles one network case: warm-up runs, then `reps` runs through the timing Proxy. */
export async function profileCase(
  c: NetworkCase,
  backend: kernels.Backend,
  options: Pick<ProfileOptions, 'layout' | 'reps' | 'warmup'>,
): Promise<CaseProfile> {
  const recorder = new OpRecorder();
  const timed = timedBackend(backend, recorder);
  const model = (await buildModel(c, await canonicalNetwork(c), timed)) as ContractModel;
  const layers = attributeLayers(model, recorder);
  const { x: logical, labels } = networkBatch(c);
  const x = logical.toLayout(options.layout);
  const run =
    c.direction === 'forward' ? () => void model.forward(x, { training: false }) : (await trainingStep(model, timed, x, labels)).step;
  for (let i = 0; i < options.warmup; i++) run();
  recorder.take();
  const runs: ProfiledRun[] = [];
  for (let i = 0; i < options.reps; i++) {
    const start = performance.now();
    run();
    runs.push({ wallMs: performance.now() - start, calls: recorder.take() });
  }
  return { caseKey: c.key, title: c.title, layers, summary: summarize(runs) };
}

function markdownTable(header: string[], rows: string[][], textColumns: number[] = []): string {
  const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  const rule = header.map((_, i) => (i === 0 || textColumns.includes(i) ? '---' : '---:'));
  return [line(header), line(rule), ...rows.map(line)].join('\n');
}

export function setting(options: Pick<ProfileOptions, 'backend' | 'threads' | 'layout'>): string {
  return `backend ${options.backend}, ${options.threads} thread${options.threads > 1 ? 's' : ''}, ${options.layout} input`;
}

export function profileMarkdown(profiles: readonly CaseProfile[], options: ProfileOptions, command: string): string {
  const machine = describeMachine();
  const out = [
    `# Where the time goes: ${setting(options)}`,
    '',
    `- **Machine**: ${machine.cpu}, ${machine.cpus} CPUs; Node ${machine.node}; commit ${machine.commit ?? 'unknown'}`,
    `- **Run**: \`${command}\`, ${new Date().toISOString()}`,
    '',
    `Every call the model and the training step make to the backend is timed through a Proxy of it (benchmarks/profile/record.ts). ` +
      `After ${options.warmup} warm-up run(s), ${options.reps} runs are profiled; each figure is the median over those runs of the run's total ` +
      "(medians of different rows may come from different runs, so shares are of the rows' sum, not of the median run). " +
      '"(outside op calls)" is the rest of the wall time: model code, copies out of the ' +
      "model's buffers, the loss's bookkeeping and, in a training step, the SGD update. Layers are the model's own (its `layers()`); " +
      '"(no layer)" are the calls a unit or the training step makes itself (the residual add and concat, the loss).',
    '',
  ];
  for (const p of profiles) {
    out.push(`## ${p.caseKey}: ${p.title}`, '', `Median run: ${p.summary.wallMs.toFixed(1)} ms over ${p.summary.runs} runs.`, '');
    out.push(markdownTable(OP_TABLE_HEADER, opTableRows(p.summary)), '');
    if (p.summary.layers.length) out.push('### Per layer', '', markdownTable(LAYER_TABLE_HEADER, layerTableRows(p.summary), [1]), '');
  }
  return `${out.join('\n')}\n`;
}
