import { parseArgs } from 'node:util';
import { type Case, type Direction, SUITES, type Suite } from '../cases/case.js';
import { networkCases } from '../cases/network.js';
import { opCases } from '../cases/ops.js';
import { DEFAULT_SLOW_CORE } from '../method/core.js';
import { DEFAULT_TIMING, QUICK_TIMING, type TimingOptions } from '../method/timing.js';
import type { TargetOptions } from '../targets/target.js';

export interface RunOptions {
  suites: Suite[];
  /** Case patterns (globs on the id or the id/direction key); empty: every case. */
  cases: string[];
  directions: Direction[] | null;
  /** Target names; null: every registered target. */
  backends: string[] | null;
  baseline: string | null;
  tiny: boolean;
  batch: number;
  timing: TimingOptions;
  /** Rerun a whole-network case once in a fresh process when its process probed as a slow core (method/core.ts). */
  slowRerun: boolean;
  /**
   * Test hook (SHUFFLE_BENCH_PROBE_SCALE=<first>[,<rerun>]): multiplies the core-speed probe's times in the
   * targets' processes, the first attempt's and a rerun's, so that a run can be made to look slow. null: off.
   */
  probeScale: [number, number] | null;
  target: TargetOptions;
  json: boolean;
  out: string;
  name: string | null;
  machine: string | null;
  files: boolean;
  /** Lines for the top of the Markdown report (e.g. why a run covers only a subset). */
  notes: string[];
  /** Re-render the reports of a saved JSON record instead of running. */
  render: string | null;
  inProcess: boolean;
  list: boolean;
  quiet: boolean;
  help: boolean;
}

export const HELP = `pnpm bench [options]

Runs the benchmark suites: every selected case on every selected backend and peer, each target in a
process of its own, validating every case against the reference before timing it.

Selection
  --suite <list>         ops, network, train (default: all). network = whole-network forwards,
                         train = training steps (forward + backward + SGD update)
  --case <patterns>      case ids or id/direction keys, * as a wildcard, comma-separated:
                         --case 'gconv*'  --case 'conv-stem@224/backward,shuffle*'
  --direction <list>     forward, backward, train
  --backend <list>       targets to run (default: all): reference, tfjs-cpu, tfjs-wasm, ort, and any
                         backend registered later (cpu, gpu-<mode>). --list shows them
  --baseline <name>      target the ratio columns compare with (default: reference, or the first target)
  --tiny                 tiny shapes and a few runs each (seconds; what the test suite runs)
  --batch <n>            batch of the op cases (default 1)
  --layout <NCHW|NHWC>   layout of our backends' inputs (default NCHW)

Timing (warm-up until the last 3 runs agree with the 3 before within 5%, then timed runs)
  --min-reps <n>         (default ${DEFAULT_TIMING.minReps})     --max-reps <n>    (default ${DEFAULT_TIMING.maxReps})
  --min-time <s>         (default ${DEFAULT_TIMING.minTimeMs / 1000})   --max-time <s>    (default ${DEFAULT_TIMING.maxTimeMs / 1000}): timed runs stop after max-time; a
                         case whose single run exceeds it is reported from its validation run
  --warmup <s>           warm-up time bound (default ${DEFAULT_TIMING.warmupMaxMs / 1000})
  --busy <cores>         mark a result busy when other processes used more than this many cores
                         on average while it was timed (default ${DEFAULT_TIMING.busyThresholdCores})
  --slow-core <ratio>    mark a result "slow core" when the core-speed probe timed around its runs in
                         its process took more than this times the fastest probe of the run, i.e. the
                         process ran on a core that slow (default ${DEFAULT_SLOW_CORE})
  --no-slow-rerun        do not run a whole-network case again in a fresh process when its process was
                         on a slow core (by default it is, once, and the attempt with the faster probe is
                         reported, the other kept in the JSON)

Peers
  --ort-threads <n>      onnxruntime intra-op threads (default 1)
  --tfjs-grouped <name>  one TensorFlow.js grouped-conv emulation everywhere instead of measuring all:
                         split-conv, blockdiag-conv, split-matmul, blockdiag-matmul, batched-matmul

Output
  --json                 one JSON line per (backend, case) on stdout instead of the table
  --out <dir>            where the JSON, Markdown and SVG files go (default benchmarks/results)
  --name <stem>          file name stem (default <date>-<time>-<machine>)
  --machine <label>      machine label in reports and file names (default from the CPU model)
  --no-files             write no files
  --note <text>          a line for the top of the Markdown report (repeatable), e.g. why a run is a subset
  --render <file.json>   write the Markdown and SVG of a saved JSON record again (with --note, --out, --name)
  --quiet                no progress line, no output from the targets' processes

Other
  --in-process           run the targets in this process (quicker to start, timings less clean);
                         the gpu.js GL modes still get a process each
  --list                 list the cases and targets and exit
  --help                 this text
`;

function list(value: string | undefined): string[] {
  return value === undefined
    ? []
    : value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
}

function number(name: string, value: string | undefined, fallback: number, integer = false): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n)))
    throw new Error(`--${name} expects a ${integer ? 'non-negative integer' : 'number >= 0'}, got '${value}'`);
  return n;
}

/** The core-speed probe's test hook: see RunOptions.probeScale. */
export const PROBE_SCALE_ENV = 'SHUFFLE_BENCH_PROBE_SCALE';

export function probeScale(value: string | undefined): [number, number] | null {
  if (!value) return null;
  const scales = list(value).map(Number);
  if (scales.length < 1 || scales.length > 2 || scales.some((x) => !Number.isFinite(x) || x <= 0))
    throw new Error(`${PROBE_SCALE_ENV} expects one or two positive numbers (first attempt, rerun), got '${value}'`);
  return [scales[0] as number, scales[1] ?? (scales[0] as number)];
}

export function parseOptions(argv: readonly string[]): RunOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      suite: { type: 'string' },
      case: { type: 'string', multiple: true },
      direction: { type: 'string' },
      backend: { type: 'string', multiple: true },
      baseline: { type: 'string' },
      tiny: { type: 'boolean' },
      batch: { type: 'string' },
      layout: { type: 'string' },
      'min-reps': { type: 'string' },
      'max-reps': { type: 'string' },
      'min-time': { type: 'string' },
      'max-time': { type: 'string' },
      warmup: { type: 'string' },
      busy: { type: 'string' },
      'slow-core': { type: 'string' },
      'no-slow-rerun': { type: 'boolean' },
      'ort-threads': { type: 'string' },
      'tfjs-grouped': { type: 'string' },
      json: { type: 'boolean' },
      out: { type: 'string' },
      name: { type: 'string' },
      machine: { type: 'string' },
      'no-files': { type: 'boolean' },
      note: { type: 'string', multiple: true },
      render: { type: 'string' },
      quiet: { type: 'boolean' },
      'in-process': { type: 'boolean' },
      list: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const suites = list(values.suite);
  for (const s of suites)
    if (!(SUITES as readonly string[]).includes(s)) throw new Error(`--suite expects ${SUITES.join(', ')}, got '${s}'`);
  const directions = list(values.direction);
  for (const d of directions)
    if (!['forward', 'backward', 'train'].includes(d)) throw new Error(`--direction expects forward, backward or train, got '${d}'`);
  const layout = values.layout ?? 'NCHW';
  if (layout !== 'NCHW' && layout !== 'NHWC') throw new Error(`--layout expects NCHW or NHWC, got '${layout}'`);
  const tiny = values.tiny ?? false;
  const defaults = tiny ? QUICK_TIMING : DEFAULT_TIMING;
  const seconds = (name: string, value: string | undefined, fallbackMs: number) => number(name, value, fallbackMs / 1000) * 1000;
  const batch = number('batch', values.batch, 1, true);
  if (batch < 1) throw new Error('--batch expects a positive integer');
  const timing: TimingOptions = {
    minReps: number('min-reps', values['min-reps'], defaults.minReps, true),
    maxReps: Math.max(1, number('max-reps', values['max-reps'], defaults.maxReps, true)),
    minTimeMs: seconds('min-time', values['min-time'], defaults.minTimeMs),
    maxTimeMs: seconds('max-time', values['max-time'], defaults.maxTimeMs),
    warmupMaxMs: seconds('warmup', values.warmup, defaults.warmupMaxMs),
    warmupMaxReps: defaults.warmupMaxReps,
    busyThresholdCores: number('busy', values.busy, defaults.busyThresholdCores),
    slowCore: number('slow-core', values['slow-core'], defaults.slowCore ?? DEFAULT_SLOW_CORE),
  };
  const backends = (values.backend ?? []).flatMap((b) => list(b));
  return {
    suites: suites.length ? (suites as Suite[]) : [...SUITES],
    cases: (values.case ?? []).flatMap((c) => list(c)),
    directions: directions.length ? (directions as Direction[]) : null,
    backends: backends.length ? backends : null,
    baseline: values.baseline ?? null,
    tiny,
    batch,
    timing,
    slowRerun: !(values['no-slow-rerun'] ?? false),
    probeScale: probeScale(process.env[PROBE_SCALE_ENV]),
    target: {
      layout,
      ortThreads: Math.max(1, number('ort-threads', values['ort-threads'], 1, true)),
      tfjsGrouped: values['tfjs-grouped'],
    },
    json: values.json ?? false,
    out: values.out ?? '',
    name: values.name ?? null,
    machine: values.machine ?? null,
    files: !(values['no-files'] ?? false),
    notes: values.note ?? [],
    render: values.render ?? null,
    inProcess: values['in-process'] ?? false,
    list: values.list ?? false,
    quiet: values.quiet ?? false,
    help: values.help ?? false,
  };
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`, 'i');
}

/** Every case of the chosen size, in run order: ops, whole network, training steps. */
export function allCases({ tiny, batch }: { tiny: boolean; batch: number }): Case[] {
  return [...opCases({ tiny, batch }), ...networkCases({ tiny })];
}

export function selectCases(options: Pick<RunOptions, 'suites' | 'cases' | 'directions' | 'tiny' | 'batch'>): Case[] {
  const patterns = options.cases.map(globToRegExp);
  return allCases(options).filter(
    (c) =>
      options.suites.includes(c.suite) &&
      (options.directions === null || options.directions.includes(c.direction)) &&
      (patterns.length === 0 || patterns.some((p) => p.test(c.id) || p.test(c.key))),
  );
}
