import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import type { NetworkCase, OpCase } from '../cases/case.js';
import type { OpInputs } from '../cases/inputs.js';
import type { HostOutputs } from '../method/validate.js';
import {
  type NetworkInputs,
  type Prepared,
  type TargetDefinition,
  type TargetOptions,
  type TargetSession,
  TargetUnavailableError,
  type Unsupported,
} from '../targets/target.js';

/**
 * onnxruntime-node 1.30.0 (its bundled CPU execution provider, MLAS kernels) as the native ceiling:
 * inference only (the Node package has no training API). Each forward case becomes a small ONNX model
 * written by onnx-proto.ts; a timed run is one `session.run`. Graph optimizations are on ('all': batch
 * norm folds into the convolutions, as a deployment would have it), threads as --ort-threads says
 * (default 1, to compare with single-threaded JavaScript).
 */

type Ort = typeof import('onnxruntime-node');

const INFERENCE_ONLY: Unsupported = { unsupported: 'onnxruntime-node is inference-only (no training API in the Node package)' };

class OrtSession implements TargetSession {
  readonly details: Record<string, string>;

  constructor(
    private readonly ort: Ort,
    private readonly threads: number,
    version: string,
  ) {
    this.details = {
      version,
      'intra-op threads': String(threads),
      'graph optimization': 'all',
      'execution provider': 'cpu',
    };
  }

  private async session(model: Uint8Array): Promise<InferenceSession> {
    return this.ort.InferenceSession.create(model, {
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      executionProviders: ['cpu'],
    });
  }

  private prepared(session: InferenceSession, feeds: Record<string, OrtTensor>, output: string, name: string): Prepared {
    let result: InferenceSession.OnnxValueMapType | undefined;
    return {
      run: async () => {
        result = await session.run(feeds);
      },
      outputs: (): HostOutputs => {
        const t = result?.[output] as OrtTensor | undefined;
        if (!t) throw new Error(`onnxruntime returned no '${output}'`);
        return { [name]: { shape: t.dims.map(Number), data: Float32Array.from(t.data as Float32Array) } };
      },
      dispose: () => session.release(),
    };
  }

  async prepareOp(c: OpCase, inputs: OpInputs): Promise<Prepared[] | Unsupported> {
    if (c.direction !== 'forward') return INFERENCE_ONLY;
    const { opGraph } = await import('./onnx-graphs.js');
    const session = await this.session(opGraph(c.spec, inputs.weight));
    const x = new this.ort.Tensor('float32', Float32Array.from(inputs.x.data), [...c.spec.x]);
    return [this.prepared(session, { x }, 'y', 'y')];
  }

  async prepareNetwork(c: NetworkCase, inputs: NetworkInputs): Promise<Prepared[] | Unsupported> {
    if (c.direction !== 'forward') return INFERENCE_ONLY;
    const { networkGraph } = await import('./onnx-graphs.js');
    const session = await this.session(networkGraph(inputs.plan, inputs.weights, inputs.buffers, c.batch, c.net.inputSize));
    const x = new this.ort.Tensor('float32', inputs.x.data, [...inputs.x.shape]);
    return [this.prepared(session, { x }, 'logits', 'logits')];
  }

  async close(): Promise<void> {}
}

export function onnxRuntimeTarget(): TargetDefinition {
  return {
    name: 'ort',
    kind: 'peer',
    description: 'onnxruntime-node 1.30.0, CPU execution provider (native, inference only)',
    async open(options: TargetOptions) {
      let ort: Ort;
      try {
        const namespace = (await import('onnxruntime-node')) as unknown as Record<string, unknown>;
        ort = ('InferenceSession' in namespace ? namespace : namespace.default) as Ort;
      } catch (error) {
        throw new TargetUnavailableError(
          'ort',
          `onnxruntime-node could not be loaded (${(error as Error).message.split('\n')[0]}); its CPU binaries ship in the npm package, so run pnpm install`,
        );
      }
      const { packageVersions } = await import('../method/machine.js');
      return new OrtSession(ort, options.ortThreads, packageVersions()['onnxruntime-node'] ?? 'unknown');
    },
  };
}
