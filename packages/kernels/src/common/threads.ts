import { fail } from '@shuffle/core';
import { nodeThreadPlatform } from './threads-node.js';

/*
 * Worker threads for the GEMM-heavy CPU kernels, behind a synchronous API.
 *
 * A kernel that is worth splitting cuts its output into `parts` disjoint pieces (bands of the GEMM's C,
 * ranges of pixels or channels) and calls runParallel: thread t (the main thread is 0) computes part t,
 * then each thread claims the next unclaimed part from a shared counter until none is left, and the
 * main thread blocks in Atomics.wait until the workers are done. Every element is computed by the same
 * operations in the same order as with one thread, so results are bit-identical whatever the thread
 * count, the number of parts or who claimed what; only which thread does it changes.
 *
 * Why claim parts rather than give each thread one: the two vCPUs of the machine this was measured on
 * are not equally fast (a fixed scalar loop pinned to each takes 12.6 ms on one and 22 ms on the other,
 * which one being slow changing over time), and with a fixed half each a product ends when the slow
 * half does. partsFor cuts a large product into a few parts per thread (PARTS_PER_THREAD), so that the
 * faster thread takes more of them: a grouped 1x1 conv 240 -> 240, g = 3, at 28x28 took 8.4 ms on one
 * thread, 8.6 on two with one part each, 6.9-7.0 with 2, 4 or 8 parts each (medians, interleaved).
 *
 * Workers see only shared memory. The kernels copy their inputs into named shared slots (sharedF32, a
 * SharedArrayBuffer-backed scratch that grows like common/scratch.ts), the task writes its outputs
 * there, and the kernel copies them out; a task's numeric parameters go in the shared `jobArgs`. Each
 * thread packs its own GEMM panels in its own (private) scratch: packing is a copy anyway, and this way
 * it is split too. A new or regrown slot, and the name of a task a worker has not run yet, reach the
 * worker as messages that it reads synchronously (receiveMessageOnPort) when woken; everything else is
 * Atomics on a small control block per worker:
 *
 *   main: write args, set TASK / PART / PARTS, REQUEST = ++sequence, notify   -> worker wakes
 *   worker: run the task; STATUS = ok | failed (error message posted); RESPONSE = REQUEST, notify
 *
 * Both sides poll briefly before they sleep (SPIN_MS), so a round trip costs ~2 us, against 0.3-50 ms
 * for the products that are split (PARALLEL_MIN_MACS). Failures never hang: an exception in a worker's
 * task comes back as an exception on the main thread (the worker stays usable); a worker that dies or
 * fails to load says so in its control block; one that stops answering is given up after a guard time
 * and the pool is discarded.
 *
 * Workers are unref()'d and wait in Atomics.wait between jobs, so they never keep a finished script
 * alive. The platform part (starting a worker, its message port) is an adapter: threads-node.ts for
 * Node's worker_threads, reached without a static import of any Node module.
 */

/** The most threads setNumThreads accepts. */
export const MAX_THREADS = 64;

/**
 * Multiply-adds from which a kernel splits its products across threads. Measured with
 * benchmarks/dev/threads.ts on this 2-core machine while otherwise idle (wall time, 1 -> 2 threads):
 * grouped 1x1 convolutions gain from ~0.3 M (NCHW) and ~0.9 M (NHWC) multiply-adds, with a noisy
 * x0.9-1.3 between; from 1 M the ShuffleNet shapes gain x1.5-1.9 at batch 1 and x1.6-2.0 at batch 8.
 * Below ~1 M the gain is small against the CPU the split adds (copies, the polling, both threads packing
 * the shorter operand: +10-20% CPU time), which other work on the machine could have used.
 */
export const PARALLEL_MIN_MACS = 1_000_000;

/**
 * Parts per thread for a large product. More parts balance unequal cores better (a thread idles at most
 * one part's time at the end), but each part packs the product's shorter operand again and runs a
 * smaller GEMM; so a part is not cut below PARALLEL_MIN_MACS / PARTS_PER_THREAD multiply-adds (a product
 * at the threshold gets PARTS_PER_THREAD parts whatever the thread count).
 */
export const PARTS_PER_THREAD = 4;
let partsPerThread = PARTS_PER_THREAD;

/** Control block slots (Int32Array indices), shared with the worker bootstrap in threads-node.ts. */
export const CONTROL = {
  /** Job sequence number, written by the main thread; -1 asks the worker to stop. */
  request: 0,
  /** Sequence number of the last job the worker finished. */
  response: 1,
  /** How that job ended: one of STATUS. */
  status: 2,
  /** 0 while the worker loads, 1 once it serves, -1 if it failed to load or died. */
  ready: 3,
  task: 4,
  part: 5,
  parts: 6,
  length: 8,
} as const;

export const STATUS = { ok: 0, failed: 1, dead: 2 } as const;

/** One end of a worker's message channel: `receive` never blocks (undefined when nothing is queued). */
export interface ThreadPort {
  post(message: unknown): void;
  receive(): unknown;
}

/** A started worker, seen from the main thread. */
export interface WorkerThread extends ThreadPort {
  terminate(): void;
}

/** What a platform adapter provides: starting a worker that will call serveThread(control, port, ...). */
export interface ThreadPlatform {
  spawn(control: Int32Array): WorkerThread;
}

/** A unit of splittable work: `run(args, part, parts)` computes part `part` of `parts`. */
export interface ParallelTask {
  readonly name: string;
  readonly id: number;
  readonly run: (args: Float64Array, part: number, parts: number) => void;
}

type SharedArray = Float32Array | Float64Array;

interface SlotMessage {
  slot: string;
  buffer: SharedArrayBuffer;
  float64: boolean;
}
interface TaskMessage {
  task: string;
  id: number;
}
interface ClaimsMessage {
  claims: SharedArrayBuffer;
}
interface ErrorMessage {
  error: string;
  stack?: string;
  /** The part whose task threw (absent when the worker itself failed). */
  part?: number;
}

interface WorkerState {
  thread: WorkerThread;
  control: Int32Array;
  /** Whether READY has been seen. */
  ready: boolean;
  /** The buffer last posted for each slot. */
  posted: Map<string, SharedArrayBuffer>;
  /** Task ids the worker has been told about. */
  tasks: Set<number>;
  /** Whether the pool's claim counter has been posted. */
  hasClaims: boolean;
}

interface Pool {
  workers: WorkerState[];
  /** claims[0]: the next part nobody has taken yet (shared by every thread of the pool). */
  claims: Int32Array;
}

const tasksByName = new Map<string, ParallelTask>();
let nextTaskId = 1;

/**
 * Declares a task under a unique name. The kernel module that owns the work defines it at top level;
 * the worker entry (gemm-worker.ts) imports the same modules and serves the same task objects.
 */
export function defineTask(name: string, run: (args: Float64Array, part: number, parts: number) => void): ParallelTask {
  if (tasksByName.has(name)) throw new Error(`threads: task ${name} defined twice`);
  const task: ParallelTask = { name, id: nextTaskId++, run };
  tasksByName.set(name, task);
  return task;
}

/** Shared slots by name: on the main thread, grown by sharedF32 / jobArgs; in a worker, as last posted. */
const slots = new Map<string, SharedArray>();

/**
 * A Float32Array over shared memory, at least `length` long, reused across calls with the same slot name
 * (prefix it with the op's name) like scratchF32; its contents are whatever was last written. Main thread only.
 */
export function sharedF32(slot: string, length: number): Float32Array {
  const held = slots.get(slot);
  if (held instanceof Float32Array && held.length >= length) return held;
  const grown = Math.max(length, held === undefined ? 0 : Math.ceil(held.length * 1.5));
  const array = new Float32Array(new SharedArrayBuffer(grown * 4));
  slots.set(slot, array);
  return array;
}

/** The shared Float32Array of a slot, inside a task: the main thread's, or in a worker the one last posted. */
export function sharedSlot(slot: string): Float32Array {
  const held = slots.get(slot);
  if (!(held instanceof Float32Array)) throw new Error(`threads: no shared slot ${slot}`);
  return held;
}

const ARGS_SLOT = 'threads.args';

/** The shared parameters of the next job (at least `length` numbers); a task receives them as `args`. */
export function jobArgs(length: number): Float64Array {
  const held = slots.get(ARGS_SLOT);
  if (held instanceof Float64Array && held.length >= length) return held;
  const array = new Float64Array(new SharedArrayBuffer(Math.max(length, 256) * 8));
  slots.set(ARGS_SLOT, array);
  return array;
}

let threads = 1;
let pool: Pool | undefined;
let running = false;
let sequence = 0;
const timeouts = { startupMs: 60_000, jobMs: 30_000 };

/**
 * How many threads the fast CPU kernels may use: 1 (the default) runs everything on the calling thread;
 * n > 1 starts n - 1 workers now (they load in the background) and splits large convolutions and
 * matrix products n ways. Results are bit-identical for every n. Workers never keep a finished script
 * alive. Node only (worker_threads); elsewhere only 1 is accepted.
 *
 * The default is 1 because threads pay only for large products, cost a worker's start-up (~0.1-1 s) and
 * memory, and compete with whatever else runs on the machine's cores; a user who opts in with 2 gets both.
 */
export function setNumThreads(n: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_THREADS) {
    fail('setNumThreads', 'n', `an integer from 1 to ${MAX_THREADS}`, n);
  }
  if (n > 1 && platform() === undefined) {
    fail('setNumThreads', 'n', '1 here (more threads need Node.js >= 20.16 and its worker_threads)', n);
  }
  if (n === threads && (n === 1 || pool !== undefined)) return;
  stopPool();
  threads = n;
  if (n > 1) pool = startPool(n - 1);
  // Back to one thread, the shared copies are dead weight (they grow to the largest call's inputs).
  else slots.clear();
}

/** The thread count set by setNumThreads (1 unless changed). */
export function getNumThreads(): number {
  return threads;
}

/**
 * Into how many parts a kernel should split work of `macs` multiply-adds: 1 with one thread, inside a
 * task (no nesting) or below the threshold; else PARTS_PER_THREAD per thread, fewer when a part would
 * drop under threshold / PARTS_PER_THREAD, and never fewer than the threads. (With the threshold at 0,
 * as the identity tests set it, every product gets the most parts, empty ones included.)
 */
export function partsFor(macs: number): number {
  if (threads === 1 || running || macs < parallelMinMacs) return 1;
  const byWork = parallelMinMacs > 0 ? Math.floor((macs * partsPerThread) / parallelMinMacs) : Number.POSITIVE_INFINITY;
  return Math.max(threads, Math.min(threads * partsPerThread, byWork));
}

/** Sets the parts per thread of partsFor (benchmarks/dev/network-threads.ts compares them); undefined restores it. */
export function setPartsPerThread(n: number | undefined): void {
  partsPerThread = n ?? PARTS_PER_THREAD;
}

let parallelMinMacs = PARALLEL_MIN_MACS;
let jobs = 0;

/** Moves the threshold of partsFor (tests split small shapes; the benchmark finds the crossover); undefined restores it. */
export function setParallelMinMacs(macs: number | undefined): void {
  parallelMinMacs = macs ?? PARALLEL_MIN_MACS;
}

/** How many jobs have run on workers so far (tests and benchmarks check that a call was split). */
export function parallelJobs(): number {
  return jobs;
}

/**
 * Runs `task` split into `parts`: part t on thread t (part 0 here, 1.. on workers), then the rest as the
 * threads claim them, and returns when all are done. With one thread (or inside a task) it runs the
 * parts here, in order. The task reads its parameters from jobArgs() and its data from shared slots.
 * Throws if any part threw, naming the part; waits for every worker first, so that no worker is still
 * writing a slot when this returns.
 */
export function runParallel(task: ParallelTask, parts: number): void {
  const args = jobArgs(0);
  const helpers = pool === undefined || running ? 0 : Math.min(parts, threads) - 1;
  if (helpers <= 0) {
    for (let part = 0; part < parts; part++) task.run(args, part, parts);
    return;
  }
  const { workers, claims } = awaitReady(pool as Pool);
  jobs++;
  sequence = sequence >= 0x3fffffff ? 1 : sequence + 1;
  // Parts 0..helpers are handed out below; the counter holds the first one left to claim.
  Atomics.store(claims, 0, helpers + 1);
  for (let i = 0; i < helpers; i++) {
    const worker = workers[i] as WorkerState;
    sync(worker, task, claims);
    const control = worker.control;
    control[CONTROL.task] = task.id;
    control[CONTROL.part] = i + 1;
    control[CONTROL.parts] = parts;
    Atomics.store(control, CONTROL.request, sequence);
    Atomics.notify(control, CONTROL.request);
  }
  running = true;
  let failure: unknown;
  const start = performance.now();
  try {
    runClaimedParts(task, args, claims, 0, parts);
  } catch (error) {
    failure = error;
  }
  // Whatever happened here, the workers are still using the shared slots: wait for every one of them.
  const guardMs = Math.max(timeouts.jobMs, 50 * (performance.now() - start));
  const current = pool;
  try {
    // A dead or silent worker discards the pool (terminating the others): then nobody is left to wait for.
    for (let i = 0; i < helpers && pool === current; i++) {
      const error = awaitJob(workers[i] as WorkerState, i + 1, task, guardMs);
      failure ??= error;
    }
  } finally {
    running = false;
  }
  if (failure !== undefined) throw failure;
}

/** Sets the guards (tests force them short): how long a worker may take to load, and a job at least. */
export function setThreadTimeouts(next: { startupMs?: number; jobMs?: number }): void {
  timeouts.startupMs = next.startupMs ?? timeouts.startupMs;
  timeouts.jobMs = next.jobMs ?? timeouts.jobMs;
}

let cachedPlatform: ThreadPlatform | null | undefined;
let platformOverride: ThreadPlatform | undefined;

function platform(): ThreadPlatform | undefined {
  if (platformOverride !== undefined) return platformOverride;
  if (cachedPlatform === undefined) cachedPlatform = nodeThreadPlatform() ?? null;
  return cachedPlatform ?? undefined;
}

/** Replaces the platform adapter (tests use it to start workers from a broken entry); undefined restores it. */
export function setThreadPlatform(next: ThreadPlatform | undefined): void {
  stopPool();
  platformOverride = next;
  if (threads > 1) pool = startPool(threads - 1);
}

function startPool(count: number): Pool {
  const spawner = platform() as ThreadPlatform;
  const workers: WorkerState[] = [];
  for (let i = 0; i < count; i++) {
    const control = new Int32Array(new SharedArrayBuffer(CONTROL.length * 4));
    workers.push({ thread: spawner.spawn(control), control, ready: false, posted: new Map(), tasks: new Set(), hasClaims: false });
  }
  return { workers, claims: new Int32Array(new SharedArrayBuffer(4)) };
}

/**
 * Runs part `first`, then claims parts from `claims[0]` until they run out. A throwing part ends this
 * thread's share (the others claim the rest); the error names the part.
 */
function runClaimedParts(task: ParallelTask, args: Float64Array, claims: Int32Array, first: number, parts: number): void {
  for (let part = first; part < parts; part = Atomics.add(claims, 0, 1)) {
    try {
      task.run(args, part, parts);
    } catch (error) {
      throw Object.assign(error instanceof Error ? error : new Error(String(error)), { part });
    }
  }
}

function stopPool(): void {
  if (pool === undefined) return;
  for (const worker of pool.workers) {
    Atomics.store(worker.control, CONTROL.request, -1);
    Atomics.notify(worker.control, CONTROL.request);
    worker.thread.terminate();
  }
  pool = undefined;
}

/** Discards the pool after a failure that leaves its workers in doubt; the next job starts a fresh one. */
function discardPool(): void {
  stopPool();
  if (threads > 1) pool = startPool(threads - 1);
}

function awaitReady(current: Pool): Pool {
  for (const [i, worker] of current.workers.entries()) {
    if (worker.ready) continue;
    const control = worker.control;
    const deadline = performance.now() + timeouts.startupMs;
    let state = Atomics.load(control, CONTROL.ready);
    while (state === 0) {
      const left = deadline - performance.now();
      if (left <= 0) {
        discardPool();
        throw new Error(`threads: worker ${i + 1} did not start within ${timeouts.startupMs} ms`);
      }
      Atomics.wait(control, CONTROL.ready, 0, Math.min(left, 1000));
      state = Atomics.load(control, CONTROL.ready);
    }
    if (state !== 1) {
      const message = lastError(worker);
      discardPool();
      throw new Error(`threads: worker ${i + 1} failed to start: ${message.error}`, { cause: message.stack });
    }
    worker.ready = true;
  }
  return current;
}

/** Posts what the worker lacks for this job: the claim counter, slots created or regrown since, the task's name. */
function sync(worker: WorkerState, task: ParallelTask, claims: Int32Array): void {
  if (!worker.hasClaims) {
    worker.thread.post({ claims: claims.buffer as SharedArrayBuffer } satisfies ClaimsMessage);
    worker.hasClaims = true;
  }
  for (const [slot, array] of slots) {
    const buffer = array.buffer as SharedArrayBuffer;
    if (worker.posted.get(slot) === buffer) continue;
    worker.thread.post({ slot, buffer, float64: array instanceof Float64Array } satisfies SlotMessage);
    worker.posted.set(slot, buffer);
  }
  if (!worker.tasks.has(task.id)) {
    worker.thread.post({ task: task.name, id: task.id } satisfies TaskMessage);
    worker.tasks.add(task.id);
  }
}

/** Waits for a worker's part; returns its error (a failed task) or throws (a dead or silent worker). */
function awaitJob(worker: WorkerState, part: number, task: ParallelTask, guardMs: number): Error | undefined {
  const control = worker.control;
  const deadline = performance.now() + guardMs;
  const previous = Atomics.load(control, CONTROL.response);
  if (previous !== sequence) spinWhile(control, CONTROL.response, previous, SPIN_MS);
  for (;;) {
    const response = Atomics.load(control, CONTROL.response);
    if (response === sequence) break;
    const left = deadline - performance.now();
    if (left <= 0) {
      discardPool();
      return new Error(`threads: ${task.name} part ${part} got no answer from its worker within ${Math.round(guardMs)} ms`);
    }
    Atomics.wait(control, CONTROL.response, response, Math.min(left, 1000));
  }
  const status = control[CONTROL.status];
  if (status === STATUS.ok) return undefined;
  const message = lastError(worker);
  if (status === STATUS.dead) discardPool();
  const error = new Error(`threads: ${task.name} part ${message.part ?? part} failed in its worker: ${message.error}`);
  if (message.stack !== undefined) error.stack = `${error.stack}\n  worker stack:\n${message.stack}`;
  return error;
}

function lastError(worker: WorkerState): ErrorMessage {
  let last: ErrorMessage = { error: 'no message from the worker' };
  for (let message = worker.thread.receive(); message !== undefined; message = worker.thread.receive()) {
    if (typeof message === 'object' && message !== null && 'error' in message) last = message as ErrorMessage;
  }
  return last;
}

/**
 * How long a thread that waits for the other side polls before it sleeps in Atomics.wait: an empty
 * job's round trip measured ~2 us polling against 15-80 us through the kernel's futex wake-up (more on a
 * busy machine). Both sides poll: the main thread for the workers' answers, a worker for the next job
 * (a network's convolutions come a fraction of a millisecond apart). Short, because polling takes a
 * core from whoever else needs it: a worker burns at most this much after its last job.
 */
const SPIN_MS = 0.2;

/** Polls `control[index]` while it equals `value`, for at most `ms`. */
function spinWhile(control: Int32Array, index: number, value: number, ms: number): void {
  if (Atomics.load(control, index) !== value) return;
  const deadline = performance.now() + ms;
  while (Atomics.load(control, index) === value && performance.now() < deadline) {
    // Polling without a pause instruction: JavaScript has none.
  }
}

// ---- The worker's side ----

/**
 * The worker's loop: waits for a job, reads any slot or task messages, runs its part, answers. Never
 * returns until asked to stop; an exception in a task is reported and the loop goes on.
 */
export function serveThread(control: Int32Array, port: ThreadPort, served: readonly ParallelTask[]): void {
  const byName = new Map(served.map((task) => [task.name, task]));
  const byId = new Map<number, ParallelTask>();
  let claims: Int32Array | undefined;
  onWorker = true;
  Atomics.store(control, CONTROL.ready, 1);
  Atomics.notify(control, CONTROL.ready);
  let seen = 0;
  for (;;) {
    spinWhile(control, CONTROL.request, seen, SPIN_MS);
    Atomics.wait(control, CONTROL.request, seen);
    const request = Atomics.load(control, CONTROL.request);
    if (request === seen) continue;
    if (request === -1) return;
    seen = request;
    let status: number = STATUS.ok;
    try {
      for (let message = port.receive(); message !== undefined; message = port.receive()) {
        if ('slot' in (message as object)) {
          const { slot, buffer, float64 } = message as SlotMessage;
          slots.set(slot, float64 ? new Float64Array(buffer) : new Float32Array(buffer));
        } else if ('claims' in (message as object)) {
          claims = new Int32Array((message as ClaimsMessage).claims);
        } else {
          const { task, id } = message as TaskMessage;
          const found = byName.get(task);
          if (found === undefined) throw new Error(`task ${task} is not served by this worker`);
          byId.set(id, found);
        }
      }
      const task = byId.get(control[CONTROL.task] as number);
      if (task === undefined) throw new Error(`unknown task id ${control[CONTROL.task]}`);
      if (claims === undefined) throw new Error('no claim counter was posted');
      const args = slots.get(ARGS_SLOT) as Float64Array;
      runClaimedParts(task, args, claims, control[CONTROL.part] as number, control[CONTROL.parts] as number);
    } catch (error) {
      const part = (error as { part?: number }).part;
      port.post({
        error: error instanceof Error ? error.message : String(error),
        stack: error instanceof Error ? error.stack : undefined,
        part,
      } satisfies ErrorMessage);
      status = STATUS.failed;
    }
    Atomics.store(control, CONTROL.status, status);
    Atomics.store(control, CONTROL.response, request);
    Atomics.notify(control, CONTROL.response);
  }
}

/** True in a worker of the pool (set by serveThread); the probe task reports who ran a part. */
let onWorker = false;

/**
 * A task for testing the pool itself, on slot 'threads.probe'. args[0] picks what a part does: 0 writes
 * part + 1 at index `part` and, at index 32 + part, 1 if the main thread ran it or 2 if a worker did;
 * 1, 2, 3 make part 1 (always a worker's first part) throw, never return, or end its worker (Node only);
 * 4 is 0 with part 0 first waiting (at most args[1] ms) until every other part is written, so that the
 * workers must have claimed them all.
 */
export const probeTask = defineTask('threads.probe', (args, part, parts) => {
  const mode = args[0];
  if (part === 1 && mode === 1) throw new Error('forced failure in a worker');
  if (part === 1 && mode === 2) for (;;);
  if (part === 1 && mode === 3) (globalThis as { process?: { exit(code: number): never } }).process?.exit(7);
  const slot = sharedSlot('threads.probe');
  if (part === 0 && mode === 4) {
    const until = performance.now() + (args[1] as number);
    while (slot.subarray(1, parts).includes(0) && performance.now() < until);
  }
  slot[part] = part + 1;
  slot[32 + part] = onWorker ? 2 : 1;
});
