import type { NetworkCase, OpCase } from '../cases/case.js';
import type { OpInputs } from '../cases/inputs.js';
import type { NetworkInputs, Prepared, TargetDefinition, TargetOptions, TargetSession, Unsupported } from '../targets/target.js';
import { TargetUnavailableError } from '../targets/target.js';
import type { GroupedStrategy } from './tfjs-grouped.js';
import { isGroupedStrategy } from './tfjs-grouped.js';
import { openTfjs, type TfjsContext } from './tfjs-setup.js';

/**
 * TensorFlow.js 4.22.0 as a peer: tfjs-backend-cpu (plain JavaScript) and tfjs-backend-wasm (XNNPACK,
 * single-threaded SIMD under Node), each in its own process.
 */

/**
 * The grouped-conv emulation the whole-network cases use, per backend and direction, from the op cases'
 * measurements on the network's grouped 1x1 shapes (the example report lists them all). Forwards: one
 * dense conv with the block-diagonal filter wins or ties (XNNPACK's dense 1x1 conv is fast enough that
 * G times the multiply-adds cost less than splitting). Training: whatever uses Conv2DBackpropFilter is out
 * (tfjs-cpu's is a naive loop taking seconds here, and tfjs-wasm borrows it), and the batched matMul,
 * whose backward is two batched matMuls, is fastest on both. `--tfjs-grouped <strategy>` overrides it.
 */
export const NETWORK_GROUPED: Record<'forward' | 'train', Record<'cpu' | 'wasm', GroupedStrategy>> = {
  forward: { cpu: 'blockdiag-conv', wasm: 'blockdiag-conv' },
  train: { cpu: 'batched-matmul', wasm: 'batched-matmul' },
};

class TfjsSession implements TargetSession {
  readonly details: Record<string, string>;

  constructor(
    private readonly ctx: TfjsContext,
    private readonly grouped: GroupedStrategy | undefined,
  ) {
    this.details = {
      ...ctx.details,
      'grouped 1x1 convs in the network': grouped
        ? `${grouped} (forced)`
        : `${NETWORK_GROUPED.forward[ctx.backend]} (forward), ${NETWORK_GROUPED.train[ctx.backend]} (training)`,
    };
  }

  async prepareOp(c: OpCase, inputs: OpInputs): Promise<Prepared[] | Unsupported> {
    const { tfjsOpVariants } = await import('./tfjs-ops.js');
    return tfjsOpVariants(this.ctx, c, inputs, this.grouped);
  }

  async prepareNetwork(c: NetworkCase, inputs: NetworkInputs): Promise<Prepared[] | Unsupported> {
    const { tfjsNetworkPrepared } = await import('./tfjs-network.js');
    return tfjsNetworkPrepared(this.ctx, c.direction, inputs, this.grouped ?? NETWORK_GROUPED[c.direction][this.ctx.backend]);
  }

  async close(): Promise<void> {
    this.ctx.tf.disposeVariables();
  }
}

export function tfjsTarget(backend: 'cpu' | 'wasm'): TargetDefinition {
  const name = `tfjs-${backend}`;
  return {
    name,
    kind: 'peer',
    description:
      backend === 'cpu'
        ? 'TensorFlow.js 4.22.0, tfjs-backend-cpu (plain JavaScript kernels)'
        : 'TensorFlow.js 4.22.0, tfjs-backend-wasm (XNNPACK; single-threaded SIMD under Node)',
    async open(options: TargetOptions) {
      if (options.tfjsGrouped !== undefined && !isGroupedStrategy(options.tfjsGrouped)) {
        throw new TargetUnavailableError(name, `unknown --tfjs-grouped '${options.tfjsGrouped}'`);
      }
      return new TfjsSession(await openTfjs(backend), options.tfjsGrouped as GroupedStrategy | undefined);
    },
  };
}
