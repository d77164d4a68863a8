import type { Tensor } from '@shuffle/core';
import type { Tensor4D, Tensor as TfTensor, Variable } from '@tensorflow/tfjs-core';
import type { HostOutput } from '../method/validate.js';
import { blockDiagonalMask, hwioBlockDiagonal, hwioOfGroup, oihwFromGroupedHwio } from './tfjs-layout.js';
import type { Tf } from './tfjs-setup.js';

/**
 * TensorFlow.js has no grouped convolution. These are the ways to emulate ShuffleNet's grouped 1x1 convs
 * (stride 1, no padding) with what it has; the op cases time them all, and the fastest differs by shape
 * and backend. x is NHWC [N, H, W, Cin] with G groups of I = Cin/G input and O = Cout/G output channels.
 *
 *   split-conv        split x into G channel slices, conv2d each with its [1, 1, I, O] filter, concat
 *   blockdiag-conv    one dense conv2d with the [1, 1, Cin, Cout] block-diagonal filter (G times the multiply-adds)
 *   split-matmul      x as a [NHW, Cin] matrix, split, G matMuls with [I, O], concat
 *   blockdiag-matmul  one [NHW, Cin] x [Cin, Cout] matMul with the block-diagonal matrix (G times the multiply-adds)
 *   batched-matmul    x as [G, NHW, I] (a transpose), one batched matMul with [G, I, O], transpose back
 *
 * The backward uses the same structure with the gradient kernels (Conv2DBackpropInput / Conv2DBackpropFilter,
 * or matMuls with transposed operands). Block-diagonal filters compute the whole dense filter gradient
 * and keep the diagonal blocks. In training, their off-diagonal zeros are kept by multiplying the
 * variable with a 0/1 mask inside the tape, so its gradient is zero there too.
 */
export const GROUPED_STRATEGIES = ['split-conv', 'blockdiag-conv', 'split-matmul', 'blockdiag-matmul', 'batched-matmul'] as const;
export type GroupedStrategy = (typeof GROUPED_STRATEGIES)[number];

export function isGroupedStrategy(name: string): name is GroupedStrategy {
  return (GROUPED_STRATEGIES as readonly string[]).includes(name);
}

/** One grouped 1x1 conv's filter in the form a strategy needs, as constants or trainable variables. */
export class GroupedConv1x1 {
  readonly cin: number;
  readonly cout: number;
  readonly inPerGroup: number;
  readonly outPerGroup: number;
  /** The strategy's filter tensors (G of them for the split strategies, else one). */
  readonly filters: TfTensor[];
  /** 0/1 mask of the block-diagonal strategies (null otherwise). */
  readonly mask: TfTensor | null;

  constructor(
    private readonly tf: Tf,
    readonly strategy: GroupedStrategy,
    weight: Tensor,
    readonly groups: number,
    trainable = false,
  ) {
    const [cout, inPerGroup, kh, kw] = weight.shape as [number, number, number, number];
    if (kh !== 1 || kw !== 1) throw new Error(`GroupedConv1x1: a 1x1 filter expected, got ${kh}x${kw}`);
    this.cout = cout;
    this.inPerGroup = inPerGroup;
    this.cin = inPerGroup * groups;
    this.outPerGroup = cout / groups;
    const make = (data: Float32Array, shape: number[]) => {
      const t = tf.tensor(data, shape);
      if (!trainable) return t;
      const v = tf.variable(t);
      t.dispose();
      return v;
    };
    const I = this.inPerGroup;
    const O = this.outPerGroup;
    const perGroup = () => Array.from({ length: groups }, (_, g) => hwioOfGroup(weight, groups, g));
    switch (strategy) {
      case 'split-conv':
        this.filters = perGroup().map((d) => make(d, [1, 1, I, O]));
        break;
      case 'split-matmul':
        this.filters = perGroup().map((d) => make(d, [I, O]));
        break;
      case 'blockdiag-conv':
        this.filters = [make(hwioBlockDiagonal(weight, groups), [1, 1, this.cin, cout])];
        break;
      case 'blockdiag-matmul':
        this.filters = [make(hwioBlockDiagonal(weight, groups), [this.cin, cout])];
        break;
      case 'batched-matmul': {
        const all = new Float32Array(groups * I * O);
        perGroup().forEach((d, g) => {
          all.set(d, g * I * O);
        });
        this.filters = [make(all, [groups, I, O])];
        break;
      }
    }
    this.mask =
      trainable && strategy.startsWith('blockdiag')
        ? tf.tensor(blockDiagonalMask(I, cout, groups), this.filters[0]?.shape as number[])
        : null;
  }

  private filter(index = 0): TfTensor {
    const f = this.filters[index] as TfTensor;
    return this.mask ? this.tf.mul(f, this.mask) : f;
  }

  /** NHWC [N, H, W, Cin] -> [N, H, W, Cout]. Call inside tf.tidy (or a gradient tape). */
  forward(x: TfTensor): TfTensor {
    const tf = this.tf;
    const [n, h, w] = x.shape as [number, number, number, number];
    const rows = n * h * w;
    const G = this.groups;
    switch (this.strategy) {
      case 'split-conv': {
        const xs = G === 1 ? [x] : tf.split(x, G, 3);
        const ys = xs.map((xi, g) => tf.conv2d(xi as Tensor4D, this.filter(g) as Tensor4D, 1, 0));
        return G === 1 ? (ys[0] as TfTensor) : tf.concat(ys, 3);
      }
      case 'blockdiag-conv':
        return tf.conv2d(x as Tensor4D, this.filter() as Tensor4D, 1, 0);
      case 'split-matmul': {
        const x2 = tf.reshape(x, [rows, this.cin]);
        const xs = G === 1 ? [x2] : tf.split(x2, G, 1);
        const ys = xs.map((xi, g) => tf.matMul(xi as TfTensor, this.filter(g) as TfTensor));
        return tf.reshape(G === 1 ? (ys[0] as TfTensor) : tf.concat(ys, 1), [n, h, w, this.cout]);
      }
      case 'blockdiag-matmul':
        return tf.reshape(tf.matMul(tf.reshape(x, [rows, this.cin]) as TfTensor, this.filter() as TfTensor), [n, h, w, this.cout]);
      case 'batched-matmul': {
        const xt = tf.transpose(tf.reshape(x, [rows, G, this.inPerGroup]), [1, 0, 2]);
        const yt = tf.matMul(xt as TfTensor, this.filter() as TfTensor);
        return tf.reshape(tf.transpose(yt, [1, 0, 2]), [n, h, w, this.cout]);
      }
    }
  }

  /**
   * dx [N, H, W, Cin] and the filter gradient as grouped HWIO [1, 1, I, Cout] (groups side by side along
   * the output axis), from the gradient kernels directly (no autograd). Call inside tf.tidy.
   */
  backward(x: TfTensor, dy: TfTensor): { dx: TfTensor; dweight: TfTensor } {
    const tf = this.tf;
    const [n, h, w] = x.shape as [number, number, number, number];
    const rows = n * h * w;
    const G = this.groups;
    const I = this.inPerGroup;
    const O = this.outPerGroup;
    const run = <T>(kernel: string, inputs: Record<string, TfTensor>, attrs: Record<string, unknown>) =>
      tf.engine().runKernel(kernel, inputs as never, attrs as never) as T & TfTensor;
    const convAttrs = { strides: 1, pad: 0, dataFormat: 'NHWC' };
    /** The diagonal blocks of a dense [.., Cin, Cout] filter gradient, side by side: [.., I, Cout]. */
    const diagonal = (full: TfTensor, lead: number[]) => {
      const blocks = Array.from({ length: G }, (_, g) => tf.slice(full, [...lead.map(() => 0), g * I, g * O], [...lead, I, O]));
      return G === 1 ? (blocks[0] as TfTensor) : tf.concat(blocks, lead.length + 1);
    };
    switch (this.strategy) {
      case 'split-conv': {
        const xs = G === 1 ? [x] : tf.split(x, G, 3);
        const dys = G === 1 ? [dy] : tf.split(dy, G, 3);
        const dxs = dys.map((d, g) =>
          run('Conv2DBackpropInput', { dy: d, filter: this.filter(g) }, { ...convAttrs, inputShape: [n, h, w, I] }),
        );
        const dws = xs.map((xi, g) =>
          run('Conv2DBackpropFilter', { x: xi, dy: dys[g] as TfTensor }, { ...convAttrs, filterShape: [1, 1, I, O] }),
        );
        return { dx: G === 1 ? (dxs[0] as TfTensor) : tf.concat(dxs, 3), dweight: G === 1 ? (dws[0] as TfTensor) : tf.concat(dws, 3) };
      }
      case 'blockdiag-conv': {
        const dx = run('Conv2DBackpropInput', { dy, filter: this.filter() }, { ...convAttrs, inputShape: [n, h, w, this.cin] });
        const full = run('Conv2DBackpropFilter', { x, dy }, { ...convAttrs, filterShape: [1, 1, this.cin, this.cout] });
        return { dx, dweight: diagonal(full, [1, 1]) };
      }
      case 'split-matmul': {
        const x2 = tf.reshape(x, [rows, this.cin]);
        const dy2 = tf.reshape(dy, [rows, this.cout]);
        const xs = G === 1 ? [x2] : tf.split(x2, G, 1);
        const dys = G === 1 ? [dy2] : tf.split(dy2, G, 1);
        const dxs = dys.map((d, g) => tf.matMul(d as TfTensor, this.filter(g) as TfTensor, false, true));
        const dws = xs.map((xi, g) => tf.matMul(xi as TfTensor, dys[g] as TfTensor, true, false));
        const dx = G === 1 ? (dxs[0] as TfTensor) : tf.concat(dxs, 1);
        const dweight = G === 1 ? (dws[0] as TfTensor) : tf.concat(dws, 1);
        return { dx: tf.reshape(dx, [n, h, w, this.cin]), dweight: tf.reshape(dweight, [1, 1, I, this.cout]) };
      }
      case 'blockdiag-matmul': {
        const x2 = tf.reshape(x, [rows, this.cin]);
        const dy2 = tf.reshape(dy, [rows, this.cout]);
        const dx = tf.matMul(dy2 as TfTensor, this.filter() as TfTensor, false, true);
        const full = tf.matMul(x2 as TfTensor, dy2 as TfTensor, true, false);
        return { dx: tf.reshape(dx, [n, h, w, this.cin]), dweight: tf.reshape(diagonal(full, []), [1, 1, I, this.cout]) };
      }
      case 'batched-matmul': {
        const xt = tf.transpose(tf.reshape(x, [rows, G, I]), [1, 0, 2]);
        const dyt = tf.transpose(tf.reshape(dy, [rows, G, O]), [1, 0, 2]);
        const dxt = tf.matMul(dyt as TfTensor, this.filter() as TfTensor, false, true);
        const dwt = tf.matMul(xt as TfTensor, dyt as TfTensor, true, false);
        return {
          dx: tf.reshape(tf.transpose(dxt, [1, 0, 2]), [n, h, w, this.cin]),
          dweight: tf.reshape(tf.transpose(dwt, [1, 0, 2]), [1, 1, I, this.cout]),
        };
      }
    }
  }

  /**
   * The OIHW gradient of the grouped filter from the gradients of `filters` (as tf.variableGrads returns
   * them, in the same order).
   */
  gradientOihw(grads: TfTensor[]): HostOutput {
    const tf = this.tf;
    const G = this.groups;
    const I = this.inPerGroup;
    const O = this.outPerGroup;
    const grouped = tf.tidy(() => {
      switch (this.strategy) {
        case 'split-conv':
          // A fresh tensor even for one group: the caller disposes what this returns, not the gradient.
          return G === 1 ? tf.clone(grads[0] as TfTensor) : tf.concat(grads, 3);
        case 'split-matmul':
          return tf.reshape(G === 1 ? (grads[0] as TfTensor) : tf.concat(grads, 1), [1, 1, I, this.cout]);
        case 'batched-matmul':
          return tf.reshape(tf.transpose(grads[0] as TfTensor, [1, 0, 2]), [1, 1, I, this.cout]);
        default: {
          const full = tf.reshape(grads[0] as TfTensor, [this.cin, this.cout]);
          const blocks = Array.from({ length: G }, (_, g) => tf.slice(full, [g * I, g * O], [I, O]));
          return tf.reshape(G === 1 ? (blocks[0] as TfTensor) : tf.concat(blocks, 1), [1, 1, I, this.cout]);
        }
      }
    });
    const host = oihwFromGroupedHwio(grouped);
    grouped.dispose();
    return host;
  }

  variables(): Variable[] {
    return this.filters as Variable[];
  }

  dispose(): void {
    this.tf.dispose([...this.filters, ...(this.mask ? [this.mask] : [])]);
  }
}
