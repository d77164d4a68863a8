import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Case } from '../cases/case.js';
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
}

export async function runTargets(targets: readonly TargetDefinition[], cases: readonly Case[], options: RunTargetsOptions): Promise<void> {
  const oracles = new OracleStore(options.oracleDir);
  for (const t of targets) {
    if (options.inProcess && !t.isolated) await executeTarget(t, cases, { ...options.execute, oracles }, options.onEvent);
    else for (const group of processGroups(cases)) await runChild([t], group, options);
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
