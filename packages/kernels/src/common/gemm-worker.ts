import { conv2dTasks } from '../conv2d/cpu.js';
import { linearTasks } from '../linear/cpu.js';
import { probeTask, serveThread, type ThreadPort } from './threads.js';

/*
 * The entry of a worker thread (started by threads-node.ts): it loads the kernels whose products can be
 * split across threads and serves their tasks until the pool stops it. No code runs at import.
 */

/** Serves jobs on `control` (see common/threads.ts) until asked to stop. */
export function serve(control: Int32Array, port: ThreadPort): void {
  serveThread(control, port, [probeTask, ...conv2dTasks, ...linearTasks]);
}
