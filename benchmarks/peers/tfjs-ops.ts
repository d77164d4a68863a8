import type { Tensor } from '@shuffle/core';
import type { Tensor4D, Tensor as TfTensor } from '@tensorflow/tfjs-core';
import type { OpCase, OpSpec } from '../cases/case.js';
import type { OpInputs } from '../cases/inputs.js';
import type { HostOutput, HostOutputs } from '../method/validate.js';
import type { Prepared, Unsupported } from '../targets/target.js';
import { GROUPED_STRATEGIES, GroupedConv1x1, type GroupedStrategy } from './tfjs-grouped.js';
import { depthwiseFilter, depthwiseFromTf, fromNhwc, fromPlain, hwioOfGroup, oihwFromGroupedHwio, toNhwc } from './tfjs-layout.js';
import { runKernelConfig, type Tf, type TfjsContext } from './tfjs-setup.js';

/**
 * Every op case in TensorFlow.js, NHWC (its CPU and WASM backends take channels-last only), with
 * PyTorch's padding: a numeric `pad` is symmetric in tfjs, unlike 'same', which puts the odd pixel at the
 * bottom/right and so reads different input pixels for stride 2. Forwards call the public ops; backwards
 * call the gradient kernels (tfjs-core registers no gradient functions on its own, and tf.grad would run
 * the forward again). Where there are several ways, each is a variant: the runner times them all and
 * reports the fastest, with the others beside it.
 */

/** One way of computing a case: named raw outputs, and how each becomes a host output. */
interface Variant {
  name: string;
  note?: string;
  compute(): Record<string, TfTensor>;
  toHost: Record<string, (t: TfTensor) => HostOutput>;
}

function prepare(tf: Tf, variants: Variant[], shared: TfTensor[], disposables: { dispose(): void }[]): Prepared[] {
  return variants.map((v, index) => {
    let last: Record<string, TfTensor> | undefined;
    const last_ = index === variants.length - 1;
    return {
      variant: v.name,
      note: v.note,
      run: () => {
        if (last) tf.dispose(Object.values(last));
        last = tf.tidy(() => v.compute());
      },
      outputs: (): HostOutputs => {
        if (!last) throw new Error('outputs() before run()');
        const out: HostOutputs = {};
        for (const [name, t] of Object.entries(last)) out[name] = (v.toHost[name] as (t: TfTensor) => HostOutput)(t);
        return out;
      },
      dispose: () => {
        if (last) tf.dispose(Object.values(last));
        last = undefined;
        // Inputs and filters are shared by the variants of a case; the last variant frees them.
        if (last_) {
          tf.dispose(shared);
          for (const d of disposables) d.dispose();
        }
      },
    };
  });
}

type Conv = Extract<OpSpec, { op: 'conv2d' }>;

export function tfjsOpVariants(ctx: TfjsContext, c: OpCase, inputs: OpInputs, forcedGrouped?: GroupedStrategy): Prepared[] | Unsupported {
  const { tf } = ctx;
  const { spec } = c;
  const forward = c.direction === 'forward';
  const run = (kernel: string, ins: Record<string, TfTensor>, attrs: Record<string, unknown>) =>
    tf.engine().runKernel(kernel, ins as never, attrs as never) as TfTensor;
  const borrowedNote = (kernels: string[]) => {
    const used = kernels.filter((k) => ctx.borrowed.includes(k));
    return used.length ? `${used.join(' + ')} borrowed from tfjs-backend-cpu (copies in and out)` : undefined;
  };

  if (spec.op === 'linear') {
    const x = tf.tensor2d(Float32Array.from(inputs.x.data), spec.x as [number, number]);
    const w = tf.tensor2d(Float32Array.from((inputs.weight as Tensor).data), spec.weight as [number, number]);
    const wt = tf.transpose(w);
    const shared = [x, w, wt];
    if (forward) {
      return prepare(
        tf,
        [
          { name: 'matMul-transposeB', compute: () => ({ y: tf.matMul(x, w, false, true) }), toHost: { y: fromPlain } },
          { name: 'matMul', compute: () => ({ y: tf.matMul(x, wt) }), toHost: { y: fromPlain } },
        ],
        shared,
        [],
      );
    }
    const dy = tf.tensor2d(Float32Array.from((inputs.dy as Tensor).data), [spec.x[0], spec.weight[0]]);
    shared.push(dy);
    // y = x W^T: dx = dy W, dW = dy^T x.
    return prepare(
      tf,
      [
        {
          name: 'matMul',
          compute: () => ({ dx: tf.matMul(dy, w), dweight: tf.matMul(dy, x, true, false) }),
          toHost: { dx: fromPlain, dweight: fromPlain },
        },
      ],
      shared,
      [],
    );
  }

  const x = toNhwc(tf, inputs.x);
  const dy = inputs.dy ? toNhwc(tf, inputs.dy) : undefined;
  const shared: TfTensor[] = [x, ...(dy ? [dy] : [])];
  const [n, channels, height, width] = spec.x;
  const nhwc: [number, number, number, number] = [n, height, width, channels];

  switch (spec.op) {
    case 'conv2d': {
      if (spec.groups === 1) {
        const variant = denseConv(tf, run, spec, inputs, x, dy, shared, forward);
        return prepare(tf, [{ ...variant, note: forward ? undefined : borrowedNote(['Conv2DBackpropFilter']) }], shared, []);
      }
      if (spec.weight[2] !== 1 || spec.weight[3] !== 1 || spec.stride !== 1 || spec.padding !== 0) {
        return { unsupported: 'grouped convs other than 1x1 stride 1 are not emulated here (ShuffleNet has none)' };
      }
      const strategies = forcedGrouped ? [forcedGrouped] : [...GROUPED_STRATEGIES];
      const convs = strategies.map((s) => new GroupedConv1x1(tf, s, inputs.weight as Tensor, spec.groups));
      const variants = convs.map(
        (conv): Variant =>
          forward
            ? { name: conv.strategy, compute: () => ({ y: conv.forward(x) }), toHost: { y: fromNhwc } }
            : {
                name: conv.strategy,
                note: conv.strategy.endsWith('-conv') ? borrowedNote(['Conv2DBackpropFilter']) : undefined,
                compute: () => {
                  const { dx, dweight } = conv.backward(x, dy as TfTensor);
                  return { dx, dweight };
                },
                toHost: { dx: fromNhwc, dweight: oihwFromGroupedHwio },
              },
      );
      return prepare(tf, variants, shared, convs);
    }
    case 'depthwiseConv2d': {
      const [, , kh, kw] = spec.weight;
      const filter = tf.tensor4d(depthwiseFilter(inputs.weight as Tensor), [kh, kw, channels, 1]);
      shared.push(filter);
      if (forward) {
        return prepare(
          tf,
          [
            {
              name: 'depthwiseConv2d',
              compute: () => ({ y: tf.depthwiseConv2d(x as Tensor4D, filter as Tensor4D, spec.stride, spec.padding) }),
              toHost: { y: fromNhwc },
            },
          ],
          shared,
          [],
        );
      }
      const attrs = { strides: spec.stride, pad: spec.padding, dilations: 1 };
      return prepare(
        tf,
        [
          {
            name: 'backprop kernels',
            note: borrowedNote(['DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter']),
            compute: () => ({
              dx: run('DepthwiseConv2dNativeBackpropInput', { dy: dy as TfTensor, filter }, { ...attrs, inputShape: nhwc }),
              dweight: run(
                'DepthwiseConv2dNativeBackpropFilter',
                { x, dy: dy as TfTensor },
                { ...attrs, filterShape: [kh, kw, channels, 1] },
              ),
            }),
            toHost: { dx: fromNhwc, dweight: depthwiseFromTf },
          },
        ],
        shared,
        [],
      );
    }
    case 'maxPool2d': {
      const { kernelSize: k, stride: s, padding: p } = spec;
      if (forward) {
        return prepare(
          tf,
          [{ name: 'maxPool', compute: () => ({ y: tf.maxPool(x as Tensor4D, k, s, p) }), toHost: { y: fromNhwc } }],
          shared,
          [],
        );
      }
      // MaxPoolGrad wants the forward's output too (what a training step has at hand).
      const y = toNhwc(tf, inputs.y as Tensor);
      shared.push(y);
      const attrs = { filterSize: k, strides: s, pad: p };
      const variants: Variant[] = [
        {
          name: 'MaxPoolGrad',
          compute: () => ({ dx: run('MaxPoolGrad', { dy: dy as TfTensor, input: x, output: y }, attrs) }),
          toHost: { dx: fromNhwc },
        },
      ];
      const fallback = ctx.cpuFallbacks.get('MaxPoolGrad');
      if (fallback) {
        variants.push({
          name: "tfjs-cpu's MaxPoolGrad",
          note: "tfjs-wasm's own MaxPoolGrad is wrong next to the padding; tfjs-cpu's is borrowed (copies in and out)",
          compute: () => ({ dx: runKernelConfig(ctx, fallback, { dy: dy as TfTensor, input: x, output: y }, attrs) }),
          toHost: { dx: fromNhwc },
        });
      }
      return prepare(tf, variants, shared, []);
    }
    case 'avgPool2d': {
      // PyTorch counts the zero padding in the average (countIncludePad); tfjs's pooling leaves it out, so
      // either pad explicitly and pool 'valid', or average with a depthwise conv of 1/k^2 weights.
      const { kernelSize: k, stride: s, padding: p } = spec;
      const pads: [number, number][] = [
        [0, 0],
        [p, p],
        [p, p],
        [0, 0],
      ];
      const ones = tf.fill([k, k, channels, 1], 1 / (k * k));
      shared.push(ones);
      if (forward) {
        return prepare(
          tf,
          [
            {
              name: 'pad + avgPool',
              compute: () => ({ y: tf.avgPool(tf.pad(x, pads) as Tensor4D, k, s, 'valid') }),
              toHost: { y: fromNhwc },
            },
            {
              name: 'depthwise 1/k^2',
              compute: () => ({ y: tf.depthwiseConv2d(x as Tensor4D, ones as Tensor4D, s, p) }),
              toHost: { y: fromNhwc },
            },
          ],
          shared,
          [],
        );
      }
      const padded = tf.pad(x, pads);
      shared.push(padded);
      return prepare(
        tf,
        [
          {
            name: 'pad + avgPool',
            compute: () => {
              const full = run('AvgPoolGrad', { dy: dy as TfTensor, input: padded }, { filterSize: k, strides: s, pad: 'valid' });
              return { dx: tf.slice(full, [0, p, p, 0], nhwc) };
            },
            toHost: { dx: fromNhwc },
          },
          {
            name: 'depthwise 1/k^2',
            note: borrowedNote(['DepthwiseConv2dNativeBackpropInput']),
            compute: () => ({
              dx: run(
                'DepthwiseConv2dNativeBackpropInput',
                { dy: dy as TfTensor, filter: ones },
                { strides: s, pad: p, dilations: 1, inputShape: nhwc },
              ),
            }),
            toHost: { dx: fromNhwc },
          },
        ],
        shared,
        [],
      );
    }
    case 'channelShuffle': {
      // Paper order: view C as (G, C/G), transpose, flatten. Channels are the last axis in NHWC.
      const g = spec.groups;
      const perGroup = channels / g;
      const source = Int32Array.from({ length: channels }, (_, k) => (k % g) * perGroup + Math.floor(k / g));
      const inverse = new Int32Array(channels);
      source.forEach((from, k) => {
        inverse[from] = k;
      });
      const index = tf.tensor1d(forward ? source : inverse, 'int32');
      shared.push(index);
      const src = forward ? x : (dy as TfTensor);
      const inner: [number, number] = forward ? [g, perGroup] : [perGroup, g];
      const out = forward ? 'y' : 'dx';
      return prepare(
        tf,
        [
          {
            name: 'reshape + transpose',
            compute: () => ({ [out]: tf.reshape(tf.transpose(tf.reshape(src, [...nhwc.slice(0, 3), ...inner]), [0, 1, 2, 4, 3]), nhwc) }),
            toHost: { [out]: fromNhwc },
          },
          { name: 'gather', compute: () => ({ [out]: tf.gather(src, index, 3) }), toHost: { [out]: fromNhwc } },
        ],
        shared,
        [],
      );
    }
    case 'globalAvgPool2d': {
      if (forward) {
        return prepare(
          tf,
          [
            { name: 'mean', compute: () => ({ y: tf.mean(x, [1, 2], true) }), toHost: { y: fromNhwc } },
            { name: 'avgPool', compute: () => ({ y: tf.avgPool(x as Tensor4D, [height, width], 1, 'valid') }), toHost: { y: fromNhwc } },
          ],
          shared,
          [],
        );
      }
      // Each input element gets dy / (H W) of its channel.
      return prepare(
        tf,
        [
          {
            name: 'broadcast',
            compute: () => ({ dx: tf.broadcastTo(tf.div(dy as TfTensor, height * width), nhwc) }),
            toHost: { dx: fromNhwc },
          },
          {
            name: 'AvgPoolGrad',
            compute: () => ({
              dx: run('AvgPoolGrad', { dy: dy as TfTensor, input: x }, { filterSize: [height, width], strides: 1, pad: 'valid' }),
            }),
            toHost: { dx: fromNhwc },
          },
        ],
        shared,
        [],
      );
    }
  }
}

/** A dense conv (the stem): conv2d forward, Conv2DBackpropInput + Conv2DBackpropFilter backward. */
function denseConv(
  tf: Tf,
  run: (kernel: string, ins: Record<string, TfTensor>, attrs: Record<string, unknown>) => TfTensor,
  spec: Conv,
  inputs: OpInputs,
  x: TfTensor,
  dy: TfTensor | undefined,
  shared: TfTensor[],
  forward: boolean,
): Variant {
  const [cout, cin, kh, kw] = spec.weight;
  const filter = tf.tensor4d(hwioOfGroup(inputs.weight as Tensor, 1, 0), [kh, kw, cin, cout]);
  shared.push(filter);
  if (forward) {
    return {
      name: 'conv2d',
      compute: () => ({ y: tf.conv2d(x as Tensor4D, filter as Tensor4D, spec.stride, spec.padding) }),
      toHost: { y: fromNhwc },
    };
  }
  const [n, , h, w] = spec.x;
  const attrs = { strides: spec.stride, pad: spec.padding, dataFormat: 'NHWC' };
  return {
    name: 'backprop kernels',
    compute: () => ({
      dx: run('Conv2DBackpropInput', { dy: dy as TfTensor, filter }, { ...attrs, inputShape: [n, h, w, cin] }),
      dweight: run('Conv2DBackpropFilter', { x, dy: dy as TfTensor }, { ...attrs, filterShape: [kh, kw, cin, cout] }),
    }),
    toHost: { dx: fromNhwc, dweight: oihwFromGroupedHwio },
  };
}
