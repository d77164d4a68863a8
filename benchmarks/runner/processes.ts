import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Case } from '../cases/case.js';
import type { CoreReference } from '../method/core.js';
import type { TargetDefinition } from '../targets/target.js';
import { type ExecuteOptions, executeTarget } from './execute.js';
import { OracleStore } from './oracle.js';
import type { CaseResult, RunnerEvent } from './result.js';

/**
 * Runs the targets one after the other (so they never compete for the CPUs), each in a child process of
 * its own: a target's timings then owe nothing to another's heap, JIT state or native threads, and the
 * gpu.js GL modes, which cannot share a process, never do. With --in-process (and in the test suite),
 * the targets run in this process instead, except the isolated ones. Children report over Node's IPC
 * channel; what they print goes to our stderr, so stdout stays clean for --json.
 *
 * A target's op cases share one process; each whole-network case gets a fresh one, so that its memory
 * figures (method/memory.ts) start from the runtime and its libraries rather than from what earlier cases
 * left in the allocator. A network case runs for seconds, so the process start (~1-2 s) costs little.
 * Children run with --expose-gc, so the memory watch can collect before it starts.
 *
 * Every result's core-speed probes (method/core.ts) go into the run's reference as they arrive. A
 * whole-network case whose process probed slower than the threshold is run once more in a fresh process
 * (which the scheduler may well put on another core), and the attempt whose probe was faster is reported,
 * with the other kept beside it (CaseResult.slowCoreRerun). Op cases share a process, so they are only
 * marked, never rerun.
 */

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, '..', 'child.ts');

/** What a child needs to rebuild the same cases and settings. */
export interface ChildConfig {
  targets: string[];
  caseKeys: string[];
  tiny: boolean;
  batch: number;
  execute: Omit<ExecuteOptions, 'oracles'>;
  oracleDir: string;
}

export const CHILD_CONFIG_ENV = 'SHUFFLE_BENCH_CHILD';

export interface RunTargetsOptions {
  inProcess: boolean;
  quiet: boolean;
  tiny: boolean;
  batch: number;
  execute: Omit<ExecuteOptions, 'oracles'>;
  oracleDir: string;
  onEvent: (event: RunnerEvent) => void;
  /** Called before a child's output is copied to stderr (to clear a progress line). */
  beforeOutput?: () => void;
  /**
   * The slow-core check: the run's reference (fed every probe that arrives), the slowdown threshold, and
   * whether a whole-network case run in a child process is rerun once when its probe was slower than that.
   * `rerunProbeScale` is the test hook's scale for reruns (default: execute.probeScale).
   */
  core?: { reference: CoreReference; threshold: number; rerun: boolean; rerunProbeScale?: number };
}

export async function runTargets(targets: readonly TargetDefinition[], cases: readonly Case[], options: RunTargetsOptions): Promise<void> {
  const oracles = new OracleStore(options.oracleDir);
  const onEvent = (event: RunnerEvent) => {
    if (event.type === 'result') options.core?.reference.see(event.result);
    options.onEvent(event);
  };
  const direct = { ...options, onEvent };
  for (const t of targets) {
    if (options.inProcess && !t.isolated) await executeTarget(t, cases, { ...options.execute, oracles }, onEvent);
    else
      for (const group of processGroups(cases)) {
        if (options.core?.rerun && group.every((c) => c.kind === 'network')) await runChildRerunSlow(t, group, direct);
        else await runChild([t], group, direct);
      }
  }
}

/** Runs the cases in a child; each result whose probe was slow is run once more in a fresh child (see above). */
async function runChildRerunSlow(t: TargetDefinition, cases: readonly Case[], options: RunTargetsOptions): Promise<void> {
  const core = options.core;
  if (!core) return runChild([t], cases, options);
  const attempt = async (group: readonly Case[], probeScale: number | undefined): Promise<CaseResult[]> => {
    const results: CaseResult[] = [];
    await runChild([t], group, {
      ...options,
      execute: { ...options.execute, probeScale },
      onEvent: (event) => {
        if (event.type !== 'result') return options.onEvent(event);
        core.reference.see(event.result);
        results.push(event.result);
      },
    });
    return results;
  };
  for (const first of await attempt(cases, options.execute.probeScale)) {
    const slowdown = core.reference.slowdown(first);
    const c = cases.find((k) => k.key === first.caseKey);
    if (first.status !== 'ok' || slowdown === null || slowdown <= core.threshold || !c) {
      options.onEvent({ type: 'result', result: first });
      continue;
    }
    if (!options.quiet) {
      options.beforeOutput?.();
      process.stderr.write(
        `${t.name} ${first.caseKey}: its process probed ${slowdown.toFixed(2)}x slower than the fastest core seen; running it again in a fresh process\n`,
      );
    }
    const again = (await attempt([c], core.rerunProbeScale ?? options.execute.probeScale)).find((r) => r.caseKey === first.caseKey);
    const rerunSlowdown = again ? core.reference.slowdown(again) : null;
    // Both are judged against the same (updated) reference: the lower median probe wins.
    const keepRerun = again?.status === 'ok' && rerunSlowdown !== null && rerunSlowdown < (core.reference.slowdown(first) ?? slowdown);
    const result: CaseResult =
      keepRerun && again
        ? { ...again, slowCoreRerun: { kept: 'rerun', other: first } }
        : again
          ? { ...first, slowCoreRerun: { kept: 'first', other: again } }
          : first;
    options.onEvent({ type: 'result', result });
  }
}

/** The cases of one target, split into processes: the op cases together, each network case alone (in run order). */
export function processGroups(cases: readonly Case[]): Case[][] {
  const ops = cases.filter((c) => c.kind === 'op');
  const groups = cases.filter((c) => c.kind === 'network').map((c) => [c]);
  return ops.length ? [ops, ...groups] : groups;
}

function runChild(group: readonly TargetDefinition[], cases: readonly Case[], options: RunTargetsOptions): Promise<void> {
  const config: ChildConfig = {
    targets: group.map((t) => t.name),
    caseKeys: cases.map((c) => c.key),
    tiny: options.tiny,
    batch: options.batch,
    execute: options.execute,
    oracleDir: options.oracleDir,
  };
  const wrapper = group.flatMap((t) => t.wrapper?.() ?? []);
  const command = [...wrapper, process.execPath, '--expose-gc', '--import', 'tsx', CHILD];
  const reported = new Set<string>();
  let stderrTail = '';
  return new Promise((resolve) => {
    const child = spawn(command[0] as string, command.slice(1), {
      cwd: join(here, '..'),
      env: { ...process.env, [CHILD_CONFIG_ENV]: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const forward = (chunk: Buffer) => {
      const text = chunk.toString();
      stderrTail = (stderrTail + text).slice(-2000);
      if (!options.quiet) {
        options.beforeOutput?.();
        process.stderr.write(text);
      }
    };
    child.stdout?.on('data', forward);
    child.stderr?.on('data', forward);
    child.on('message', (event: RunnerEvent) => {
      if (event.type === 'result') reported.add(`${event.result.target} ${event.result.caseKey}`);
      options.onEvent(event);
    });
    let done = false;
    const finish = (why: string) => {
      if (done) return;
      done = true;
      // Whatever the child did not report (it crashed, or was killed) is reported as failed here.
      for (const t of group) {
        for (const c of cases) {
          if (reported.has(`${t.name} ${c.key}`)) continue;
          const result: CaseResult = {
            target: t.name,
            kind: t.kind,
            suite: c.suite,
            caseId: c.id,
            caseKey: c.key,
            direction: c.direction,
            title: c.title,
            status: 'failed',
            reason: `${why}${stderrTail.trim() ? `: ${stderrTail.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
            flops: c.flops,
            bytes: c.bytes,
          };
          options.onEvent({ type: 'result', result });
        }
      }
      resolve();
    };
    child.on('error', (error) => finish(`could not start the process (${error.message})`));
    // 'close' comes after the process ended and its pipes and IPC channel drained, so no report is lost.
    child.on('close', (code, signal) => finish(signal ? `the process was killed (${signal})` : `the process exited with code ${code}`));
  });
}

export type { CaseResult };
