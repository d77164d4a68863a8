import type { Case, NetworkCase, OpCase } from '../cases/case.js';
import { networkBatch, opInputs, opOracle } from '../cases/inputs.js';
import { buildModel, type CanonicalNetwork, canonicalNetwork, loadModels } from '../cases/model.js';
import { type LoadSample, sampleLoad } from '../method/load.js';
import { type MemoryWatch, watchMemory } from '../method/memory.js';
import { measure, type TimingOptions, timeOnce } from '../method/timing.js';
import { type HostOutputs, hostOutputs, toleranceOf, validate } from '../method/validate.js';
import {
  isUnsupported,
  type NetworkInputs,
  type Prepared,
  type TargetDefinition,
  type TargetOptions,
  type TargetSession,
  TargetUnavailableError,
  type Unsupported,
} from '../targets/target.js';
import { networkOracle, type OracleStore } from './oracle.js';
import { isPhased, measurePhases } from './phases.js';
import type { CaseResult, RunnerEvent, VariantResult } from './result.js';

/**
 * Runs one target over a list of cases in this process: for each case, make the inputs, get the
 * reference's outputs, prepare the target's variants, run each once and check it (validate, then
 * time), time the valid ones, and report the fastest with the others beside it.
 */
export interface ExecuteOptions {
  timing: TimingOptions;
  target: TargetOptions;
  oracles: OracleStore;
  /** Multiplies the core-speed probe's times (method/core.ts): a test hook that makes a process look slow; 1 otherwise. */
  probeScale?: number;
}

function base(def: TargetDefinition, c: Case): Omit<CaseResult, 'status'> {
  return {
    target: def.name,
    kind: def.kind,
    suite: c.suite,
    caseId: c.id,
    caseKey: c.key,
    direction: c.direction,
    title: c.title,
    flops: c.flops,
    bytes: c.bytes,
  };
}

/**
 * A backend still being written says so when called ("not implemented yet", "no kernel for it yet"): that
 * is a case it cannot run yet, not a failure of the case.
 */
function notImplemented(error: unknown): boolean {
  return /not implemented|no kernel for it yet/i.test(message(error));
}

function message(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] || error.name : String(error);
}

/** Canonical networks are shared by the cases of one configuration (b1 and b8 of g3 1.0x at 224, say). */
const networks = new Map<string, Promise<CanonicalNetwork>>();

function networkOf(c: NetworkCase): Promise<CanonicalNetwork> {
  const key = JSON.stringify([c.net, c.seed]);
  let net = networks.get(key);
  if (!net) {
    net = canonicalNetwork(c);
    networks.set(key, net);
  }
  return net;
}

interface CaseSetup {
  prepare(session: TargetSession): Promise<Prepared[] | Unsupported>;
  /** The reference's outputs; null when this run is to produce them (the reference target on a network case). */
  oracle: HostOutputs | null;
  /** Called with the first valid outputs when oracle was null. */
  adopt?(outputs: HostOutputs): void;
}

async function setupOp(c: OpCase): Promise<CaseSetup> {
  const inputs = opInputs(c);
  return { prepare: (session) => session.prepareOp(c, inputs), oracle: hostOutputs(opOracle(c, inputs)) };
}

async function setupNetwork(def: TargetDefinition, c: NetworkCase, oracles: OracleStore): Promise<CaseSetup | Unsupported> {
  const models = await loadModels();
  if (typeof models === 'string') return { unsupported: models };
  const net = await networkOf(c);
  const { x, labels } = networkBatch(c);
  const host = { shape: [...x.shape], data: x.data as Float32Array };
  const inputs: NetworkInputs = { ...net, x: host, labels, buildModel: (backend) => buildModel(c, net, backend) };
  const prepare = (session: TargetSession) => session.prepareNetwork(c, inputs);
  const known = oracles.get(c.key);
  if (known) return { prepare, oracle: known };
  if (def.name === 'reference') return { prepare, oracle: null, adopt: (outputs) => oracles.put(c.key, outputs) };
  const computed = await networkOracle(c, net, host, labels);
  oracles.put(c.key, computed);
  return { prepare, oracle: computed };
}

/** One run timed between load samples, as the validation run is. */
async function timeSteady(p: Prepared): Promise<{ ms: number; start: LoadSample; end: LoadSample }> {
  const start = sampleLoad();
  const ms = await timeOnce(() => p.run());
  return { ms, start, end: sampleLoad() };
}

async function runVariant(
  p: Prepared,
  setup: CaseSetup,
  c: Case,
  timing: TimingOptions,
  memory: MemoryWatch | null,
  probeScale: number,
): Promise<VariantResult & { error?: unknown }> {
  const result: VariantResult & { error?: unknown } = { variant: p.variant, note: p.note, status: 'failed' };
  try {
    const start = sampleLoad();
    const ms = await timeOnce(() => p.run());
    const end = sampleLoad();
    memory?.sample();
    const outputs = await p.outputs();
    if (setup.oracle === null) {
      setup.adopt?.(outputs);
      setup.oracle = outputs;
    }
    result.validation = validate(outputs, setup.oracle, toleranceOf(c));
    if (!result.validation.ok) {
      result.status = 'invalid';
      result.reason = result.validation.message;
      return result;
    }
    // A gpu target's first call compiles the case's kernels, which its compile phase reports: the timing
    // starts from a second call, so that a first call longer than maxTimeMs is not taken as the only sample.
    const steady = isPhased(p) ? await timeSteady(p) : { ms, start, end };
    result.timing = await measure(() => p.run(), steady, timing, memory ? () => memory.sample() : undefined, probeScale);
    if (isPhased(p)) result.phases = await measurePhases(p, timing);
    result.status = 'ok';
  } catch (error) {
    result.reason = message(error);
    result.error = error;
  }
  return result;
}

export async function runCase(def: TargetDefinition, session: TargetSession, c: Case, options: ExecuteOptions): Promise<CaseResult> {
  const head = base(def, c);
  let prepared: Prepared[] = [];
  try {
    const setup = c.kind === 'op' ? await setupOp(c) : await setupNetwork(def, c, options.oracles);
    if ('unsupported' in setup) return { ...head, status: 'unsupported', reason: setup.unsupported };
    // Memory is watched from here (inputs and oracle ready) over preparing and running the case: see method/memory.ts.
    const memory = c.kind === 'network' ? watchMemory() : null;
    const p = await setup.prepare(session);
    if (isUnsupported(p)) return { ...head, status: 'unsupported', reason: p.unsupported };
    prepared = p;
    const variants: (VariantResult & { error?: unknown })[] = [];
    for (const variant of prepared) variants.push(await runVariant(variant, setup, c, options.timing, memory, options.probeScale ?? 1));
    const memoryUse = memory?.stop();
    const valid = variants.filter((v) => v.status === 'ok');
    const best = valid.sort((a, b) => (a.timing?.medianMs ?? 0) - (b.timing?.medianMs ?? 0))[0];
    const shown = best ?? variants.find((v) => v.status === 'invalid') ?? variants[0];
    if (!shown) return { ...head, status: 'unsupported', reason: 'the target offered no implementation' };
    if (!best && variants.every((v) => v.status === 'failed' && v.error !== undefined && notImplemented(v.error))) {
      return { ...head, status: 'unsupported', reason: shown.reason };
    }
    return {
      ...head,
      status: shown.status,
      reason: shown.reason,
      variant: shown.variant,
      note: shown.note,
      timing: shown.timing,
      validation: shown.validation,
      phases: shown.phases,
      variants: variants.length > 1 ? variants.map(({ error: _, ...v }) => v) : undefined,
      memory: best ? memoryUse : undefined,
    };
  } catch (error) {
    return { ...head, status: notImplemented(error) ? 'unsupported' : 'failed', reason: message(error) };
  } finally {
    for (const p of prepared) {
      try {
        await p.dispose?.();
      } catch {
        // A failed cleanup must not hide the result.
      }
    }
  }
}

/** Opens a target and runs every case on it, reporting through `emit`. */
export async function executeTarget(
  def: TargetDefinition,
  cases: readonly Case[],
  options: ExecuteOptions,
  emit: (event: RunnerEvent) => void,
): Promise<void> {
  let session: TargetSession;
  try {
    session = await def.open(options.target);
  } catch (error) {
    const reason = error instanceof TargetUnavailableError ? message(error).replace(`${def.name} is unavailable: `, '') : message(error);
    for (const c of cases) emit({ type: 'result', result: { ...base(def, c), status: 'unavailable', reason } });
    return;
  }
  emit({ type: 'details', target: def.name, details: session.details });
  try {
    for (const c of cases) {
      emit({ type: 'start', target: def.name, caseKey: c.key });
      emit({ type: 'result', result: await runCase(def, session, c, options) });
    }
  } finally {
    await session.close();
  }
}
