import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureCopyBandwidth } from './method/bandwidth.js';
import { assessCore, CoreReference, calibrateCore, DEFAULT_SLOW_CORE, PROBE_DESCRIPTION } from './method/core.js';
import { describeMachine, fileStamp, packageVersions } from './method/machine.js';
import { markdownReport } from './report/markdown.js';
import { jsonLine, type RunRecord } from './report/record.js';
import { svgChart } from './report/svg.js';
import { terminalTable } from './report/table.js';
import { HELP, parseOptions, type RunOptions, selectCases } from './runner/options.js';
import { runTargets } from './runner/processes.js';
import { Progress } from './runner/progress.js';
import type { CaseResult } from './runner/result.js';
import { listTargets } from './targets/registry.js';
import type { TargetDefinition } from './targets/target.js';

/** `pnpm bench`: parse the flags, run every target in its own process, print and write the reports. */

const here = dirname(fileURLToPath(import.meta.url));

function chooseTargets(options: RunOptions): TargetDefinition[] {
  const all = listTargets();
  if (!options.backends) return all;
  const unknown = options.backends.filter((b) => !all.some((t) => t.name === b));
  if (unknown.length) throw new Error(`unknown --backend ${unknown.join(', ')}; known: ${all.map((t) => t.name).join(', ')}`);
  // Registry order, whatever the order on the command line: ours first, so the reference leads.
  return all.filter((t) => options.backends?.includes(t.name));
}

/** The JSON record (unless re-rendering one), the SVG chart and the Markdown report, side by side. */
function writeReports(record: RunRecord, options: RunOptions, defaultName: string, json = false): void {
  // pnpm runs the script in benchmarks/; a relative --out means relative to where `pnpm bench` was typed.
  const invokedFrom = process.env.INIT_CWD ?? process.cwd();
  const dir = options.out ? resolve(invokedFrom, options.out) : join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const name = options.name ?? defaultName;
  const file = (ext: string) => join(dir, `${name}.${ext}`);
  const written = [file('md'), file('svg')];
  if (json) {
    writeFileSync(file('json'), `${JSON.stringify(record, null, 2)}\n`);
    written.push(file('json'));
  }
  writeFileSync(file('svg'), svgChart(record));
  writeFileSync(file('md'), markdownReport(record, `${name}.svg`));
  process.stderr.write(`wrote ${written.map((f) => relative(invokedFrom, f) || f).join(', ')}\n`);
}

async function main(argv: string[]): Promise<number> {
  let options: RunOptions;
  try {
    options = parseOptions(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (options.render) {
    const record = JSON.parse(readFileSync(resolve(process.env.INIT_CWD ?? process.cwd(), options.render), 'utf8')) as RunRecord;
    if (options.notes.length) record.notes = options.notes;
    process.stdout.write(terminalTable(record));
    writeReports(record, options, basename(options.render, '.json'));
    return 0;
  }
  const targets = chooseTargets(options);
  const cases = selectCases(options);
  if (options.list) {
    process.stdout.write('Targets (in run order):\n');
    for (const t of targets) process.stdout.write(`  ${t.name.padEnd(16)} ${t.kind.padEnd(5)} ${t.description}\n`);
    process.stdout.write(`\nCases (${cases.length}${options.tiny ? ', tiny' : ''}):\n`);
    for (const c of cases) process.stdout.write(`  ${c.key.padEnd(44)} ${c.title}\n`);
    return 0;
  }
  if (cases.length === 0) {
    process.stderr.write('no case matches the selection (see --list)\n');
    return 2;
  }
  const baseline = options.baseline ?? (targets.some((t) => t.name === 'reference') ? 'reference' : (targets[0]?.name ?? null));
  if (baseline && !targets.some((t) => t.name === baseline)) {
    process.stderr.write(`--baseline ${baseline} is not among the targets run (${targets.map((t) => t.name).join(', ')})\n`);
    return 2;
  }

  const started = new Date();
  const startedMs = performance.now();
  const machine = describeMachine(options.machine ?? undefined);
  const results: CaseResult[] = [];
  const details = new Map<string, Record<string, string>>();
  const progress = new Progress(targets.length * cases.length, !options.quiet);
  const oracleDir = mkdtempSync(join(os.tmpdir(), 'shuffle-bench-'));
  // The core-speed reference (method/core.ts): best of a few probes here, lowered by every faster probe a target reports.
  const calibrationMs = calibrateCore();
  const bandwidth = measureCopyBandwidth();
  const slowThreshold = options.timing.slowCore ?? DEFAULT_SLOW_CORE;
  const reference = new CoreReference(calibrationMs);
  try {
    await runTargets(targets, cases, {
      inProcess: options.inProcess,
      quiet: options.quiet,
      tiny: options.tiny,
      batch: options.batch,
      execute: { timing: options.timing, target: options.target, probeScale: options.probeScale?.[0] },
      oracleDir,
      core: { reference, threshold: slowThreshold, rerun: options.slowRerun, rerunProbeScale: options.probeScale?.[1] },
      beforeOutput: () => progress.interrupt(),
      onEvent: (event) => {
        if (event.type === 'start') progress.start(event.target, event.caseKey);
        else if (event.type === 'details') details.set(event.target, event.details);
        else {
          results.push(event.result);
          progress.result(event.result);
        }
      },
    });
  } finally {
    rmSync(oracleDir, { recursive: true, force: true });
  }
  progress.finish();
  // Every slowdown against the fastest probe of the whole run (results stay in run order; times are as measured).
  const referenceMs = assessCore(results, calibrationMs, slowThreshold);

  const record: RunRecord = {
    date: started.toISOString(),
    machine,
    versions: packageVersions(),
    // The notes are printed on their own; the command shows what was measured.
    command: `pnpm bench ${argv.filter((a, i) => a !== '--note' && argv[i - 1] !== '--note' && !a.startsWith('--note=')).join(' ')}`.trim(),
    tiny: options.tiny,
    batch: options.batch,
    layout: options.target.layout,
    timing: options.timing,
    baseline,
    targets: targets.map((t) => ({ name: t.name, kind: t.kind, description: t.description, details: details.get(t.name) ?? {} })),
    cases: cases.map(({ key, id, suite, direction, title, flops, bytes }) => ({ key, id, suite, direction, title, flops, bytes })),
    results,
    seconds: (performance.now() - startedMs) / 1000,
    notes: options.notes.length ? options.notes : undefined,
    core: {
      probe: PROBE_DESCRIPTION,
      calibrationMs,
      referenceMs,
      threshold: slowThreshold,
      rerun: options.slowRerun && !options.inProcess,
      probeScale: options.probeScale ?? undefined,
    },
    bandwidth,
  };

  if (options.json) {
    for (const r of results) process.stdout.write(`${JSON.stringify(jsonLine(record, r))}\n`);
  } else {
    process.stdout.write(`\n${terminalTable(record)}`);
  }

  if (options.files) writeReports(record, options, `${fileStamp(started)}-${machine.name}`, true);
  const bad = results.filter((r) => r.status === 'invalid' || r.status === 'failed');
  return bad.length ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
