import { randomNormal, randomUniform, type Tensor, tensor } from '@shuffle/core';
import { type Backend, reference } from '@shuffle/kernels';
import { type NetworkCase, type NetworkSpec, TRAIN_SGD } from './case.js';
import { type NetworkPlan, planFromSpec, planFromWeights, type WeightEntry, type WeightMap } from './network.js';

/**
 * The design contract's model, as the whole-network cases use it. @shuffle/models is imported lazily and
 * only its contract is relied on:
 *
 *   shuffleNetV1({ groups, width, numClasses, inputSize, stem, backend }): Model
 *   model.forward(x, { training }) -> logits;  model.backward(dLogits);  (forwardAsync / backwardAsync on async backends)
 *   model.parameters() -> { name, value, grad }[];  model.buffers() -> { name, value }[]
 *
 * so the cases join as soon as the package exports `shuffleNetV1`, and say why they are skipped before.
 */

export interface ContractParameter {
  name: string;
  value: Tensor;
  grad: Tensor;
}

export interface ContractModel {
  forward(x: Tensor, options?: { training?: boolean }): Tensor;
  backward(dLogits: Tensor): unknown;
  forwardAsync?(x: unknown, options?: { training?: boolean }): Promise<unknown>;
  backwardAsync?(dLogits: unknown): Promise<unknown>;
  parameters(): ContractParameter[];
  buffers?(): { name: string; value: Tensor }[];
  /** On a gpu backend: how the last forwardAsync ran, 'ops' (op by op) or the gpu.js executor of its inference pipeline. */
  readonly lastForwardExecutor?: string | null;
  /** On a gpu backend: the inference pipeline the last inference forwardAsync ran (recorded at its first call for a shape). */
  readonly pipeline?: ContractPipeline | null;
}

/** What the benchmarks read of a model's inference pipeline (a GpuPipeline of @shuffle/kernels). */
export interface ContractPipeline {
  readonly executor: string | null;
  /** Runs so far, the first run's time (gpu.js compiles the plan then) and the later runs' total. */
  readonly stats: { runs: number; firstRunMs: number; runMs: number };
}

interface ModelsModule {
  shuffleNetV1(options: NetworkSpec & { backend: unknown }): ContractModel;
  /** Used when present (the library's optimizer); otherwise the cases update the weights themselves. */
  Sgd?: new (
    parameters: ContractParameter[],
    options: { lr: number; momentum: number },
  ) => { step(): void };
}

let models: Promise<ModelsModule | string> | undefined;

/** @shuffle/models, or the reason the whole-network cases cannot run yet. */
export function loadModels(): Promise<ModelsModule | string> {
  models ??= import('@shuffle/models').then(
    (m: Record<string, unknown>) =>
      typeof m.shuffleNetV1 === 'function' ? (m as unknown as ModelsModule) : '@shuffle/models does not export shuffleNetV1 yet',
    (error: Error) => `@shuffle/models could not be loaded (${error.message.split('\n')[0]})`,
  );
  return models;
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * Values for one parameter or buffer, chosen by its name so they do not depend on the order parameters()
 * lists them in: He-normal conv weights, a classifier with unit-variance logits, and batch-norm scales,
 * shifts and running statistics away from the identity, so that every target must really apply them.
 */
function valuesFor(name: string, shape: readonly number[], seed: number): Float32Array {
  const s = (seed + hash(name)) >>> 0;
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  const uniform = (low: number, high: number) => randomUniform(shape, { seed: s, low, high }).data as Float32Array;
  if (name.endsWith('running_mean')) return uniform(-0.1, 0.1);
  if (name.endsWith('running_var')) return uniform(0.5, 1.5);
  if (shape.length === 1) return name.endsWith('.weight') ? uniform(0.5, 1.5) : uniform(-0.1, 0.1);
  const std = shape.length === 4 ? Math.sqrt(2 / fanIn) : Math.sqrt(1 / fanIn);
  return randomNormal(shape, { seed: s, std }).data as Float32Array;
}

export interface CanonicalNetwork {
  plan: NetworkPlan;
  weights: WeightMap;
  buffers: WeightMap;
}

/** The case's network: built through the contract on the reference backend, then filled with seeded values. */
export async function canonicalNetwork(c: NetworkCase): Promise<CanonicalNetwork> {
  const m = await loadModels();
  if (typeof m === 'string') throw new Error(m);
  const model = m.shuffleNetV1({ ...c.net, backend: reference });
  const weights = new Map<string, WeightEntry>();
  for (const p of model.parameters()) weights.set(p.name, { shape: [...p.value.shape], data: valuesFor(p.name, p.value.shape, c.seed) });
  const buffers = new Map<string, WeightEntry>();
  for (const b of model.buffers?.() ?? [])
    buffers.set(b.name, { shape: [...b.value.shape], data: valuesFor(b.name, b.value.shape, c.seed) });
  const plan = planFromWeights(c.net, weights);
  const expected = planFromSpec(c.net);
  const channels = (p: NetworkPlan) => JSON.stringify([p.conv1, p.units.map((u) => [u.outChannels, u.mid, u.firstGroups, u.groups])]);
  if (channels(plan) !== channels(expected)) {
    throw new Error(
      `shuffleNetV1(${JSON.stringify(c.net)}) has other channels than the benchmarks' table: ${channels(plan)} vs ${channels(expected)}`,
    );
  }
  return { plan, weights, buffers };
}

/** Copies the canonical values into a model's live parameters and buffers (logical layout, any storage layout). */
export function loadInto(model: ContractModel, net: CanonicalNetwork): void {
  const copy = (target: Tensor, entry: WeightEntry | undefined, name: string) => {
    if (!entry) throw new Error(`no value for '${name}'`);
    const source = tensor(entry.data, entry.shape);
    target.data.set((target.rank === 4 ? source.toLayout(target.layout) : source).data);
  };
  for (const p of model.parameters()) copy(p.value, net.weights.get(p.name), p.name);
  for (const b of model.buffers?.() ?? []) copy(b.value, net.buffers.get(b.name), b.name);
}

export async function buildModel(c: NetworkCase, net: CanonicalNetwork, backend: unknown): Promise<ContractModel> {
  const m = await loadModels();
  if (typeof m === 'string') throw new Error(m);
  const model = m.shuffleNetV1({ ...c.net, backend });
  loadInto(model, net);
  return model;
}

/** Parameters whose gradients a training step is checked on: the first and last layers, and inside the network. */
export const CHECKED_GRADIENTS = [
  'first_conv.0.weight',
  'first_conv.1.weight',
  'features.0.branch_main_1.0.weight',
  'features.5.branch_main_1.3.weight',
  'features.15.branch_main_2.0.weight',
  'classifier.0.weight',
] as const;

/** A training step on a synchronous backend of ours: forward (training), mean cross-entropy, backward, SGD. */
export async function trainingStep(model: ContractModel, backend: Backend, input: Tensor, labels: Int32Array) {
  const sgd = await trainingOptimizer(model.parameters());
  const one = tensor([1], [], 'NCHW', input.dtype);
  let loss = Number.NaN;
  const step = () => {
    const logits = model.forward(input, { training: true });
    loss = backend.softmaxCrossEntropy(logits, labels).data[0] as number;
    const { dlogits } = backend.softmaxCrossEntropyBackward(one, logits, labels);
    model.backward(dlogits);
    sgd.step();
  };
  return { step, loss: () => loss };
}

/** The training-step cases' optimizer: the library's Sgd with TRAIN_SGD, or PlainSgd when it has none. */
export async function trainingOptimizer(parameters: ContractParameter[]): Promise<{ step(): void }> {
  const m = await loadModels();
  return typeof m !== 'string' && m.Sgd ? new m.Sgd(parameters, { ...TRAIN_SGD }) : new PlainSgd(parameters);
}

/** Momentum SGD (PyTorch semantics, dampening 0), for when @shuffle/models has no optimizer to offer. */
class PlainSgd {
  private readonly momenta: Float32Array[];
  constructor(private readonly parameters: ContractParameter[]) {
    this.momenta = parameters.map((p) => new Float32Array(p.value.size));
  }
  step(): void {
    const { lr, momentum } = TRAIN_SGD;
    this.parameters.forEach((p, i) => {
      const w = p.value.data;
      const g = p.grad.data;
      const buf = this.momenta[i] as Float32Array;
      for (let k = 0; k < w.length; k++) {
        buf[k] = momentum * (buf[k] as number) + (g[k] as number);
        w[k] = (w[k] as number) - lr * (buf[k] as number);
      }
    });
  }
}
