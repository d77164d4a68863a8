import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as kernels from '@shuffle/kernels';
import { fileStamp } from './method/machine.js';
import {
  type CaseProfile,
  exportedBackends,
  type ProfileOptions,
  parseProfileOptions,
  profileCase,
  profileCases,
  profileMarkdown,
  setting,
} from './profile/session.js';
import { LAYER_TABLE_HEADER, layerTableRows, OP_TABLE_HEADER, opTableRows } from './profile/summary.js';

/**
 * `pnpm bench:profile`: where the time of a whole ShuffleNet v1 forward and training step goes, per op
 * and per layer, on one of our synchronous backends. The model is built on a timing Proxy of the backend
 * (profile/record.ts), run a few times to warm up, then `--reps` times; every figure is a median over
 * those runs. Prints the tables and writes them as Markdown and JSON under benchmarks/results.
 */

const HELP = `pnpm bench:profile [options]

Times every backend call of a whole ShuffleNet v1 forward and training step (the benchmark suite's
network cases, same weights and inputs) and prints, per op: calls per run, median ms per run, share of
the run; and per layer of the model with --by-layer (always in the Markdown file).

  --backend <name>      a Backend exported by @shuffle/kernels: cpu (default), reference, or any added later
  --threads <n>         setNumThreads for the run (default 1)
  --layout <NCHW|NHWC>  layout of the input (default NCHW)
  --case <patterns>     network case keys, * as a wildcard (default: g3-1.0x@224-b1/forward,g3-1.0x@224-b8/train;
                        with --tiny: the tiny forward and training cases). pnpm bench --list shows them
  --reps <n>            profiled runs (default 10; 3 with --tiny)
  --warmup <n>          runs before them, not profiled (default 3; 1 with --tiny)
  --tiny                tiny network cases (seconds: what the test suite runs)
  --by-layer            print the per-layer table too (the 25 slowest layers)
  --out <dir>           where the Markdown and JSON files go (default benchmarks/results)
  --name <stem>         file name stem (default profile-<date>-<time>-<backend>-<threads>t-<layout>)
  --no-files            write no files
  --help                this text
`;

function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function main(argv: string[]): Promise<number> {
  let options: ProfileOptions;
  try {
    options = parseProfileOptions(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const backends = exportedBackends();
  const backend = backends.get(options.backend);
  if (!backend) {
    process.stderr.write(
      `--backend ${options.backend} is not a backend @shuffle/kernels exports; it has: ${[...backends.keys()].join(', ')}\n`,
    );
    return 2;
  }
  const cases = profileCases(options);
  if (cases.length === 0) {
    process.stderr.write('no network case matches --case (pnpm bench --list --suite network,train shows them)\n');
    return 2;
  }
  const threadsBefore = kernels.getNumThreads();
  kernels.setNumThreads(options.threads);
  const profiles: CaseProfile[] = [];
  try {
    for (const c of cases) {
      process.stderr.write(`profiling ${c.key} (${setting(options)}): ${options.warmup} warm-up + ${options.reps} runs\n`);
      const p = await profileCase(c, backend, options);
      profiles.push(p);
      process.stdout.write(`\n${c.key}: median run ${p.summary.wallMs.toFixed(1)} ms (${setting(options)})\n`);
      process.stdout.write(`${textTable(OP_TABLE_HEADER, opTableRows(p.summary))}\n`);
      if (options.byLayer && p.summary.layers.length) {
        process.stdout.write(`\nslowest layers:\n${textTable(LAYER_TABLE_HEADER, layerTableRows(p.summary, 25))}\n`);
      }
    }
  } finally {
    kernels.setNumThreads(threadsBefore);
  }
  if (options.files) {
    const invokedFrom = process.env.INIT_CWD ?? process.cwd();
    const dir = options.out ? resolve(invokedFrom, options.out) : join(dirname(fileURLToPath(import.meta.url)), 'results');
    mkdirSync(dir, { recursive: true });
    const name = options.name ?? `profile-${fileStamp(new Date())}-${options.backend}-${options.threads}t-${options.layout}`;
    const command = `pnpm bench:profile ${argv.join(' ')}`.trim();
    writeFileSync(join(dir, `${name}.md`), profileMarkdown(profiles, options, command));
    writeFileSync(join(dir, `${name}.json`), `${JSON.stringify({ command, options, profiles }, null, 2)}\n`);
    process.stderr.write(`wrote ${[`${name}.md`, `${name}.json`].map((f) => relative(invokedFrom, join(dir, f))).join(', ')}\n`);
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
