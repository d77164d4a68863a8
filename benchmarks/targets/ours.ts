import { type Tensor, tensor } from '@shuffle/core';
import { type Backend, getNumThreads, setNumThreads } from '@shuffle/kernels';
import type { NetworkCase, OpCase } from '../cases/case.js';
import { namedOutputs, type OpInputs, opCall, runOp } from '../cases/inputs.js';
import { CHECKED_GRADIENTS, type ContractModel, trainingStep } from '../cases/model.js';
import { type HostOutputs, hostOf, hostOutputs } from '../method/validate.js';
import type { NetworkInputs, Prepared, TargetDefinition, TargetOptions, TargetSession, Unsupported } from './target.js';

/**
 * Our backends as targets. A synchronous backend (reference, the coming cpu) is an object with one
 * method per op (the design contract's Backend); an asynchronous one (the coming gpu backends) takes
 * device tensors from `upload` and returns promises of device tensors that `read()` back to the host.
 */

function inLayout(t: Tensor | undefined, layout: TargetOptions['layout']): Tensor | undefined {
  return t && t.rank === 4 ? t.toLayout(layout) : t;
}

/** The inputs in the layout asked for (weights stay in logical OIHW: the contract accepts either). */
function layoutInputs(inputs: OpInputs, layout: TargetOptions['layout']): OpInputs {
  return { ...inputs, x: inLayout(inputs.x, layout) as Tensor, dy: inLayout(inputs.dy, layout), y: inLayout(inputs.y, layout) };
}

/**
 * `threads`: the kernels' setNumThreads while the target is open (the fast cpu backend's worker pool;
 * the pool starts here, outside any timing), restored when it closes. Left out for backends that do not
 * use the pool.
 */
export function syncBackendTarget(definition: {
  name: string;
  description: string;
  load: () => Promise<Backend>;
  threads?: number;
}): TargetDefinition {
  return {
    name: definition.name,
    kind: 'ours',
    description: definition.description,
    async open(options) {
      const backend = await definition.load();
      return new SyncBackendSession(backend, options, definition.threads);
    },
  };
}

class SyncBackendSession implements TargetSession {
  readonly details: Record<string, string>;
  private readonly threadsBefore = getNumThreads();

  constructor(
    private readonly backend: Backend,
    private readonly options: TargetOptions,
    private readonly threads?: number,
  ) {
    this.details = { backend: backend.name, layout: options.layout };
    if (threads !== undefined) {
      setNumThreads(threads);
      this.details.threads = String(getNumThreads());
    }
  }

  async prepareOp(c: OpCase, inputs: OpInputs): Promise<Prepared[]> {
    const call = opCall(c, layoutInputs(inputs, this.options.layout));
    let result: unknown;
    return [
      {
        run: () => {
          result = runOp(this.backend, call);
        },
        outputs: () => hostOutputs(namedOutputs<Tensor>(c.direction, result)),
      },
    ];
  }

  async prepareNetwork(c: NetworkCase, inputs: NetworkInputs): Promise<Prepared[]> {
    const model = (await inputs.buildModel(this.backend)) as ContractModel;
    const x = tensor(inputs.x.data, inputs.x.shape).toLayout(this.options.layout);
    if (c.direction === 'forward') {
      let logits: Tensor | undefined;
      return [
        {
          run: () => {
            logits = model.forward(x, { training: false });
          },
          outputs: () => ({ logits: hostOf(logits as Tensor) }),
        },
      ];
    }
    const { step, loss } = await trainingStep(model, this.backend, x, inputs.labels);
    return [{ run: step, outputs: () => trainingOutputs(loss(), model) }];
  }

  async close(): Promise<void> {
    if (this.threads !== undefined) setNumThreads(this.threadsBefore);
  }
}

/** What a training step is checked on: the loss and the gradients of CHECKED_GRADIENTS (before the update). */
export function trainingOutputs(loss: number, model: ContractModel): HostOutputs {
  const out: HostOutputs = { loss: { shape: [], data: Float64Array.of(loss) } };
  const grads = new Map(model.parameters().map((p) => [p.name, p.grad]));
  for (const name of CHECKED_GRADIENTS) {
    const grad = grads.get(name);
    if (grad) out[`grad ${name}`] = hostOf(grad);
  }
  return out;
}

/** A device tensor of an asynchronous backend, as the design contract describes it. */
export interface DeviceTensor {
  read(): Promise<Tensor>;
  dispose(): void;
}

/** An asynchronous backend: `upload`, then every op with the Backend's signatures on device tensors, returning promises. */
export interface AsyncBackend {
  readonly name?: string;
  upload(t: Tensor): DeviceTensor;
  destroy?(): Promise<void> | void;
}

function isDevice(value: unknown): value is DeviceTensor {
  return typeof value === 'object' && value !== null && typeof (value as DeviceTensor).read === 'function';
}

/** Reads every device tensor of an op's result (a tensor, or { dx, dweight }) back to the host. */
async function readAll(direction: 'forward' | 'backward', result: unknown): Promise<Record<string, Tensor>> {
  const named = namedOutputs<unknown>(direction, result);
  const out: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(named)) if (isDevice(value)) out[name] = await value.read();
  return out;
}

function disposeAll(result: unknown): void {
  if (isDevice(result)) result.dispose();
  else if (result && typeof result === 'object') for (const v of Object.values(result)) if (isDevice(v)) v.dispose();
}

/**
 * An asynchronous backend as a target. A timed run is the op on device tensors plus the readback of its
 * outputs: a device result is only known to be complete once read (WebGPU's readback is what waits).
 * Training steps need an asynchronous optimizer the contract does not name yet, so only forwards run.
 */
export function asyncBackendTarget(definition: {
  name: string;
  description: string;
  isolated?: boolean;
  wrapper?: () => string[];
  open: () => Promise<AsyncBackend>;
}): TargetDefinition {
  return {
    name: definition.name,
    kind: 'ours',
    description: definition.description,
    isolated: definition.isolated,
    wrapper: definition.wrapper,
    async open(options) {
      return new AsyncBackendSession(await definition.open(), options);
    },
  };
}

class AsyncBackendSession implements TargetSession {
  readonly details: Record<string, string>;

  constructor(
    private readonly backend: AsyncBackend,
    private readonly options: TargetOptions,
  ) {
    this.details = { backend: backend.name ?? 'async', layout: options.layout, timing: 'op + readback of its outputs' };
  }

  async prepareOp(c: OpCase, inputs: OpInputs): Promise<Prepared[] | Unsupported> {
    const call = opCall(c, layoutInputs(inputs, this.options.layout));
    const method = (this.backend as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[call.method];
    if (typeof method !== 'function') return { unsupported: `this backend has no ${call.method}` };
    const uploads: DeviceTensor[] = [];
    // A host argmax is not a device tensor: the async backward recomputes it from x.
    const args = call.args.map((arg) => {
      if (arg && typeof arg === 'object' && 'shape' in arg && 'data' in arg) {
        const d = this.backend.upload(arg as Tensor);
        uploads.push(d);
        return d;
      }
      return arg && typeof arg === 'object' && 'argmax' in arg ? undefined : arg;
    });
    let previous: unknown;
    let host: Record<string, Tensor> = {};
    return [
      {
        run: async () => {
          disposeAll(previous);
          previous = await method.apply(this.backend, args);
          host = await readAll(c.direction, previous);
        },
        outputs: () => hostOutputs(host),
        dispose: () => {
          disposeAll(previous);
          for (const u of uploads) u.dispose();
        },
      },
    ];
  }

  async prepareNetwork(c: NetworkCase, inputs: NetworkInputs): Promise<Prepared[] | Unsupported> {
    if (c.direction === 'train') return { unsupported: 'training steps on an asynchronous backend are not in the design contract yet' };
    const model = (await inputs.buildModel(this.backend)) as ContractModel;
    if (typeof model.forwardAsync !== 'function') return { unsupported: 'the model has no forwardAsync for this backend' };
    const x = this.backend.upload(tensor(inputs.x.data, inputs.x.shape).toLayout(this.options.layout));
    let logits: Tensor | undefined;
    return [
      {
        run: async () => {
          const device = await (model.forwardAsync as NonNullable<ContractModel['forwardAsync']>)(x, { training: false });
          logits = isDevice(device) ? await device.read() : (device as Tensor);
          if (isDevice(device)) device.dispose();
        },
        outputs: () => ({ logits: hostOf(logits as Tensor) }),
        dispose: () => x.dispose(),
      },
    ];
  }

  async close(): Promise<void> {
    await this.backend.destroy?.();
  }
}
