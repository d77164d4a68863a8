import { CONTROL, STATUS, type ThreadPlatform, type WorkerThread } from './threads.js';

/*
 * The Node.js adapter of the thread pool (common/threads.ts): worker_threads, reached through
 * process.getBuiltinModule (Node >= 20.16) at the first setNumThreads(n > 1), so that importing the
 * kernels never loads a Node module and a browser bundle finds nothing here to resolve.
 *
 * A worker starts from a small CommonJS bootstrap (below) that loads the real entry, gemm-worker, and
 * calls its serve(). The bootstrap reports what the entry cannot: a failure to load, an uncaught
 * exception, an exit, written into the worker's control block, where the main thread, blocked in
 * Atomics.wait, sees it (it cannot see a Worker 'error' event while blocked).
 *
 * Loading the entry:
 *   - from the built package (this file is .js): gemm-worker.js next to it, by import(), with no
 *     execArgv (a loader the user's script runs under, e.g. tsx, is not needed and not inherited).
 *   - from the TypeScript sources (this file is .ts: under tsx, or under vitest, which transforms the
 *     main thread's modules itself and gives a worker nothing): gemm-worker.ts, required through tsx's
 *     CommonJS hook (--require tsx/cjs). Not `--import tsx`: on Node 20 its module hooks run on a
 *     separate thread that the blocked main thread stalls, so the worker would never finish loading.
 */

interface BootData {
  control: Int32Array;
  port: unknown;
  entry: string;
  source: boolean;
}

/** The bootstrap's source (built when a worker starts: CONTROL comes from threads.ts, which imports this module). */
const bootstrap = () => `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { control, port, entry, source } = workerData;
const C = ${JSON.stringify(CONTROL)};
const S = ${JSON.stringify(STATUS)};
const channel = {
  post: (message) => port.postMessage(message),
  receive: () => { const got = receiveMessageOnPort(port); return got === undefined ? undefined : got.message; },
};
function die(error) {
  try { port.postMessage({ error: error instanceof Error ? error.message : String(error), stack: error && error.stack }); } catch {}
  Atomics.store(control, C.status, S.dead);
  Atomics.store(control, C.ready, -1);
  Atomics.store(control, C.response, Atomics.load(control, C.request));
  Atomics.notify(control, C.ready);
  Atomics.notify(control, C.response);
}
process.on('uncaughtException', (error) => { die(error); process.exit(1); });
process.on('exit', (code) => { if (Atomics.load(control, C.request) !== -1) die(new Error('the worker exited (code ' + code + ')')); });
if (source) {
  let served;
  try { served = require(entry); } catch (error) { die(error); }
  if (served) served.serve(control, channel);
} else {
  import(entry).then((served) => served.serve(control, channel), die);
}
`;

interface NodeWorker {
  unref(): void;
  terminate(): Promise<number>;
  on(event: 'error', listener: (error: unknown) => void): void;
}
interface NodePort {
  postMessage(message: unknown): void;
  unref(): void;
}
interface WorkerThreads {
  Worker: new (
    code: string,
    options: { eval: true; workerData: BootData; transferList: unknown[]; execArgv: string[]; stdout?: boolean; stderr?: boolean },
  ) => NodeWorker;
  MessageChannel: new () => { port1: NodePort; port2: NodePort };
  receiveMessageOnPort(port: NodePort): { message: unknown } | undefined;
}

type GetBuiltin = (id: string) => unknown;

/**
 * Node's thread platform, or undefined where worker_threads is not available. `entry` overrides the
 * worker entry (tests point it at a broken file).
 */
export function nodeThreadPlatform(entry?: URL): ThreadPlatform | undefined {
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: GetBuiltin } }).process?.getBuiltinModule;
  if (typeof getBuiltin !== 'function') return undefined;
  const threads = getBuiltin('node:worker_threads') as WorkerThreads | undefined;
  if (threads === undefined) return undefined;
  const here = import.meta.url;
  const source = here.endsWith('.ts');
  const target = entry ?? (source ? new URL('./gemm-worker.ts', here) : new URL('./gemm-worker.js', here));
  let execArgv: string[] = [];
  let entryName = target.href;
  if (source) {
    const url = getBuiltin('node:url') as { fileURLToPath(url: URL): string };
    const module = getBuiltin('node:module') as { createRequire(from: string): { resolve(id: string): string } };
    entryName = url.fileURLToPath(target);
    let hook: string;
    try {
      hook = module.createRequire(here).resolve('tsx/cjs');
    } catch {
      throw new Error('threads: running the kernels from their TypeScript sources needs tsx installed to load the worker');
    }
    execArgv = ['--require', hook];
  }
  return {
    spawn(control: Int32Array): WorkerThread {
      const { port1, port2 } = new threads.MessageChannel();
      const worker = new threads.Worker(bootstrap(), {
        eval: true,
        workerData: { control, port: port2, entry: entryName, source },
        transferList: [port2],
        execArgv,
      });
      // Failures reach the main thread through the control block (see the bootstrap); without a listener an
      // 'error' event would also be rethrown on the main thread as an uncaught exception.
      worker.on('error', () => {});
      worker.unref();
      port1.unref();
      return {
        post: (message) => port1.postMessage(message),
        receive: () => threads.receiveMessageOnPort(port1)?.message,
        terminate: () => void worker.terminate(),
      };
    },
  };
}
