import { executeTarget } from './runner/execute.js';
import { allCases } from './runner/options.js';
import { OracleStore } from './runner/oracle.js';
import { CHILD_CONFIG_ENV, type ChildConfig } from './runner/processes.js';
import { getTarget } from './targets/registry.js';

/** A target's process: rebuilds the cases the runner chose, runs its targets, reports over IPC. */
const config = JSON.parse(process.env[CHILD_CONFIG_ENV] ?? 'null') as ChildConfig | null;
if (!config || typeof process.send !== 'function') {
  console.error('benchmarks/child.ts is started by benchmarks/run.ts (pnpm bench), not by hand');
  process.exit(2);
}
const keys = new Set(config.caseKeys);
const cases = allCases(config).filter((c) => keys.has(c.key));
const oracles = new OracleStore(config.oracleDir);
const send = (message: unknown) =>
  new Promise<void>((resolve, reject) => process.send?.(message, undefined, {}, (error) => (error ? reject(error) : resolve())));
for (const name of config.targets) {
  const events: Promise<void>[] = [];
  await executeTarget(getTarget(name), cases, { ...config.execute, oracles }, (event) => {
    events.push(send(event));
  });
  await Promise.all(events);
}
process.disconnect?.();
// Native add-ons (onnxruntime's thread pool) may keep the event loop alive: everything is reported, so leave.
process.exit(0);
