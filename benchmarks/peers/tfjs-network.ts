import { tensor } from '@shuffle/core';
import type { Scalar, Tensor4D, Tensor as TfTensor, Variable } from '@tensorflow/tfjs-core';
import { TRAIN_SGD } from '../cases/case.js';
import { CHECKED_GRADIENTS } from '../cases/model.js';
import { BN_EPS, type NetworkPlan, type UnitPlan, type WeightMap } from '../cases/network.js';
import type { HostOutput, HostOutputs } from '../method/validate.js';
import type { NetworkInputs, Prepared } from '../targets/target.js';
import { GroupedConv1x1, type GroupedStrategy } from './tfjs-grouped.js';
import { depthwiseFilter, depthwiseFromTf, fromPlain, hwioOfGroup, oihwFromGroupedHwio, toNhwc } from './tfjs-layout.js';
import { loadGradients, type Tf, type TfjsContext } from './tfjs-setup.js';

/**
 * ShuffleNet v1 written in TensorFlow.js layers-free ops, following the same plan (cases/network.ts) and
 * weights as our model: NHWC, PyTorch padding, count-include-pad average pooling in the stride-2
 * shortcuts, the paper's shuffle as reshape + transpose, and grouped 1x1 convs through one of the
 * emulations of tfjs-grouped.ts. Inference uses batch norm's running statistics; a training step
 * normalises with the batch's, updates the running ones (momentum 0.1, unbiased variance, as PyTorch),
 * takes gradients with tf.variableGrads and applies momentum SGD (tf.train.momentum).
 */

const BN_MOMENTUM = 0.1;

interface BatchNorm {
  gamma: TfTensor;
  beta: TfTensor;
  runningMean: Variable;
  runningVar: Variable;
}

interface Unit {
  plan: UnitPlan;
  pw1: GroupedConv1x1;
  bn1: BatchNorm;
  dw: TfTensor;
  bn2: BatchNorm;
  pw2: GroupedConv1x1;
  bn3: BatchNorm;
}

/** A parameter's tfjs tensors and how their gradients become the OIHW / [out, in] host layout. */
interface ParameterHandle {
  tensors: TfTensor[];
  gradientToHost(grads: TfTensor[]): HostOutput;
}

let networkCounter = 0;

export class TfjsShuffleNet {
  private readonly stemWeight: TfTensor;
  private readonly stemBn: BatchNorm;
  private readonly units: Unit[];
  private readonly classifier: TfTensor;
  private readonly classifierBias: TfTensor | null;
  readonly handles = new Map<string, ParameterHandle>();
  private readonly owned: TfTensor[] = [];
  private readonly grouped: GroupedConv1x1[] = [];
  /** Batch statistics of the last training forward, for the running-statistics update. */
  private batchStats: { bn: BatchNorm; mean: TfTensor; variance: TfTensor; count: number }[] = [];
  private readonly prefix = `net${networkCounter++}`;

  constructor(
    private readonly tf: Tf,
    readonly plan: NetworkPlan,
    weights: WeightMap,
    buffers: WeightMap,
    strategy: GroupedStrategy,
    private readonly trainable: boolean,
  ) {
    const weight = (name: string) => {
      const w = weights.get(name);
      if (!w) throw new Error(`tfjs ShuffleNet: no weight '${name}'`);
      return tensor(w.data, w.shape);
    };
    const param = (name: string, data: Float32Array, shape: number[], toHost: ParameterHandle['gradientToHost']) => {
      const t = this.constant(data, shape, name);
      this.handles.set(name, { tensors: [t], gradientToHost: toHost });
      return t;
    };
    const bn = (key: string, channels: number): BatchNorm => {
      const buffer = (name: string) => {
        const b = buffers.get(`${key}.${name}`);
        if (!b) throw new Error(`tfjs ShuffleNet: no buffer '${key}.${name}'`);
        const v = tf.variable(tf.tensor1d(b.data), false, `${this.prefix}/${key}.${name}`);
        this.owned.push(v);
        return v;
      };
      return {
        gamma: param(`${key}.weight`, weight(`${key}.weight`).data as Float32Array, [channels], ([g]) => fromPlain(g as TfTensor)),
        beta: param(`${key}.bias`, weight(`${key}.bias`).data as Float32Array, [channels], ([g]) => fromPlain(g as TfTensor)),
        runningMean: buffer('running_mean'),
        runningVar: buffer('running_var'),
      };
    };
    const groupedConv = (name: string, groups: number) => {
      const conv = new GroupedConv1x1(tf, strategy, weight(name), groups, trainable);
      this.grouped.push(conv);
      this.handles.set(name, { tensors: conv.filters, gradientToHost: (grads) => conv.gradientOihw(grads) });
      return conv;
    };

    const stem = weight('first_conv.0.weight');
    const [c1, cin, kh, kw] = stem.shape as [number, number, number, number];
    this.stemWeight = param('first_conv.0.weight', hwioOfGroup(stem, 1, 0), [kh, kw, cin, c1], ([g]) => oihwFromGroupedHwio(g as TfTensor));
    this.stemBn = bn('first_conv.1', c1);
    this.units = plan.units.map((u) => {
      const main1 = `${u.key}.branch_main_1`;
      const main2 = `${u.key}.branch_main_2`;
      const dwName = `${main1}.3.weight`;
      return {
        plan: u,
        pw1: groupedConv(`${main1}.0.weight`, u.firstGroups),
        bn1: bn(`${main1}.1`, u.mid),
        dw: param(dwName, depthwiseFilter(weight(dwName)), [3, 3, u.mid, 1], ([g]) => depthwiseFromTf(g as TfTensor)),
        bn2: bn(`${main1}.4`, u.mid),
        pw2: groupedConv(`${main2}.0.weight`, u.groups),
        bn3: bn(`${main2}.1`, u.branchOut),
      };
    });
    const fc = weight('classifier.0.weight');
    const [classes, features] = fc.shape as [number, number];
    // Stored transposed, [features, classes], so the forward is a plain matMul; its gradient transposes back.
    const transposed = new Float32Array(features * classes);
    for (let k = 0; k < classes; k++) for (let f = 0; f < features; f++) transposed[f * classes + k] = fc.data[k * features + f] as number;
    this.classifier = param('classifier.0.weight', transposed, [features, classes], ([g]) => {
      const back = tf.transpose(g as TfTensor);
      const host = fromPlain(back);
      back.dispose();
      return host;
    });
    this.classifierBias = plan.classifierBias
      ? param('classifier.0.bias', weight('classifier.0.bias').data as Float32Array, [classes], ([g]) => fromPlain(g as TfTensor))
      : null;
  }

  private constant(data: Float32Array, shape: number[], name: string): TfTensor {
    const t = this.tf.tensor(data, shape);
    if (!this.trainable) {
      this.owned.push(t);
      return t;
    }
    const v = this.tf.variable(t, true, `${this.prefix}/${name}`);
    t.dispose();
    this.owned.push(v);
    return v;
  }

  private batchNorm(x: TfTensor, bn: BatchNorm, training: boolean): TfTensor {
    const tf = this.tf;
    if (!training) return tf.batchNorm(x, bn.runningMean, bn.runningVar, bn.beta, bn.gamma, BN_EPS);
    const mean = tf.mean(x, [0, 1, 2]);
    const centered = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centered), [0, 1, 2]);
    const [n, h, w] = x.shape as number[];
    this.batchStats.push({ bn, mean: tf.keep(mean), variance: tf.keep(variance), count: (n as number) * (h as number) * (w as number) });
    return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, BN_EPS))), bn.gamma), bn.beta);
  }

  /** The paper's shuffle on NHWC: view C as (G, C/G), transpose, flatten. */
  private shuffle(x: TfTensor, groups: number): TfTensor {
    const [n, h, w, c] = x.shape as [number, number, number, number];
    const tf = this.tf;
    return tf.reshape(tf.transpose(tf.reshape(x, [n, h, w, groups, c / groups]), [0, 1, 2, 4, 3]), [n, h, w, c]);
  }

  /** NHWC images -> logits [N, classes]. */
  forward(x: TfTensor, training: boolean): TfTensor {
    const tf = this.tf;
    const stemStride = this.plan.stem === 'imagenet' ? 2 : 1;
    let y = tf.relu(this.batchNorm(tf.conv2d(x as Tensor4D, this.stemWeight as Tensor4D, stemStride, 1), this.stemBn, training));
    if (this.plan.stem === 'imagenet') y = tf.maxPool(y as Tensor4D, 3, 2, 1);
    for (const u of this.units) {
      let b = tf.relu(this.batchNorm(u.pw1.forward(y), u.bn1, training));
      if (u.plan.groups > 1) b = this.shuffle(b, u.plan.groups);
      b = this.batchNorm(tf.depthwiseConv2d(b as Tensor4D, u.dw as Tensor4D, u.plan.stride, 1), u.bn2, training);
      b = this.batchNorm(u.pw2.forward(b), u.bn3, training);
      if (u.plan.stride === 1) {
        y = tf.relu(tf.add(y, b));
      } else {
        // PyTorch's AvgPool2d(3, 2, 1) counts the zero padding: pad explicitly, then pool 'valid'.
        const shortcut = tf.avgPool(
          tf.pad(y, [
            [0, 0],
            [1, 1],
            [1, 1],
            [0, 0],
          ]) as Tensor4D,
          3,
          2,
          'valid',
        );
        y = tf.concat([shortcut, tf.relu(b)], 3);
      }
    }
    const pooled = tf.mean(y, [1, 2]);
    const logits = tf.matMul(pooled as TfTensor, this.classifier as TfTensor);
    return this.classifierBias ? tf.add(logits, this.classifierBias) : logits;
  }

  /** After a training forward: running = (1 - m) running + m batch, with the unbiased batch variance. */
  updateRunningStatistics(): void {
    const tf = this.tf;
    for (const { bn, mean, variance, count } of this.batchStats) {
      tf.tidy(() => {
        bn.runningMean.assign(tf.add(tf.mul(bn.runningMean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
        const unbiased = tf.mul(variance, count / Math.max(count - 1, 1));
        bn.runningVar.assign(tf.add(tf.mul(bn.runningVar, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
      });
    }
    this.discardBatchStatistics();
  }

  discardBatchStatistics(): void {
    this.tf.dispose(this.batchStats.flatMap((s) => [s.mean, s.variance]));
    this.batchStats = [];
  }

  variables(): Variable[] {
    return [...this.handles.values()].flatMap((h) => h.tensors as Variable[]);
  }

  dispose(): void {
    this.discardBatchStatistics();
    this.tf.dispose(this.owned);
    for (const g of this.grouped) g.dispose();
  }
}

export async function tfjsNetworkPrepared(
  ctx: TfjsContext,
  direction: 'forward' | 'train',
  inputs: NetworkInputs,
  strategy: GroupedStrategy,
): Promise<Prepared[]> {
  const { tf } = ctx;
  const borrowed = ctx.borrowed.length ? `; ${ctx.borrowed.join(', ')} borrowed from tfjs-backend-cpu` : '';
  const note = `${direction === 'forward' ? 'network forward' : 'training step'}: grouped 1x1 convs as ${strategy}${direction === 'train' ? borrowed : ''}`;
  const x = toNhwc(tf, tensor(inputs.x.data, inputs.x.shape));

  if (direction === 'forward') {
    const net = new TfjsShuffleNet(tf, inputs.plan, inputs.weights, inputs.buffers, strategy, false);
    let logits: TfTensor | undefined;
    return [
      {
        variant: strategy,
        note,
        run: () => {
          logits?.dispose();
          logits = tf.tidy(() => net.forward(x, false));
        },
        outputs: () => ({ logits: fromPlain(logits as TfTensor) }),
        dispose: () => {
          logits?.dispose();
          x.dispose();
          net.dispose();
        },
      },
    ];
  }

  await loadGradients();
  const net = new TfjsShuffleNet(tf, inputs.plan, inputs.weights, inputs.buffers, strategy, true);
  const [batch] = inputs.x.shape as [number];
  const oneHot = tf.oneHot(tf.tensor1d(inputs.labels, 'int32'), inputs.plan.numClasses).toFloat();
  const optimizer = tf.train.momentum(TRAIN_SGD.lr, TRAIN_SGD.momentum);
  const variables = net.variables();
  let loss: TfTensor | undefined;
  let grads: Record<string, TfTensor> = {};
  return [
    {
      variant: strategy,
      note,
      run: () => {
        loss?.dispose();
        tf.dispose(Object.values(grads));
        // Mean softmax cross-entropy over the batch: -(1/N) sum_n log softmax(logits_n)[label_n].
        const result = tf.variableGrads(() => {
          const logits = net.forward(x, true);
          return tf.neg(tf.div(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits))), batch)) as Scalar;
        }, variables);
        loss = result.value;
        grads = result.grads as Record<string, TfTensor>;
        net.updateRunningStatistics();
        optimizer.applyGradients(grads as never);
      },
      outputs: (): HostOutputs => {
        const out: HostOutputs = { loss: { shape: [], data: Float64Array.of((loss as TfTensor).dataSync()[0] as number) } };
        for (const name of CHECKED_GRADIENTS) {
          const handle = net.handles.get(name);
          if (!handle) continue;
          out[`grad ${name}`] = handle.gradientToHost(handle.tensors.map((t) => grads[(t as Variable).name] as TfTensor));
        }
        return out;
      },
      dispose: () => {
        loss?.dispose();
        tf.dispose(Object.values(grads));
        tf.dispose([x, oneHot]);
        optimizer.dispose();
        net.dispose();
      },
    },
  ];
}
