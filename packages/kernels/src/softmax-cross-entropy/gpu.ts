import { Tensor } from '@shuffle/core';
import type { GpuContext } from '../gpu/context.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps } from '../gpu/types.js';
import { checkSoftmaxCrossEntropyBackward, type Labels, type SoftmaxCrossEntropyOps, softmaxCrossEntropyGeometry } from './spec.js';

type Row = 'classes' | 'smoothing';

/*
 * One thread per row n of logits [N, K] (see reference.ts): the row's max m, then
 * lse = m + log sum_k exp(z_k - m), then with `loss` = 1 the row's loss
 * (1 - s) (lse - z_label) + (s / K) sum_k (lse - z_k), the uniform part only when s > 0, else lse
 * itself. Loops over the K classes, a constant. A NaN logit makes the row NaN, as in the reference:
 * headlessgl and webgpu would skip it in Math.max, so the loop tests `v !== v` and returns it.
 */
const ROW = defineKernel(
  'softmaxCrossEntropyRow',
  function softmaxCrossEntropyRow(this: KernelThis<Row | 'loss'>, logits: any, labels: any): number {
    const row = this.thread.x * this.constants.classes;
    let max = logits[row];
    let nan = 0;
    let nanValue = 0;
    for (let k = 0; k < this.constants.classes; k++) {
      const v = logits[row + k];
      // biome-ignore lint/suspicious/noSelfCompare: the NaN test that every mode compiles (gpu.js has no Number.isNaN)
      if (v !== v) {
        nan = 1;
        nanValue = v;
      }
      max = Math.max(max, v);
    }
    if (nan === 1) return nanValue;
    let sum = 0;
    for (let k = 0; k < this.constants.classes; k++) sum += Math.exp(logits[row + k] - max);
    const lse = max + Math.log(sum);
    if (this.constants.loss === 0) return lse;
    let loss = (1 - this.constants.smoothing) * (lse - logits[row + labels[this.thread.x]]);
    if (this.constants.smoothing > 0) {
      let uniform = 0;
      for (let k = 0; k < this.constants.classes; k++) uniform += lse - logits[row + k];
      loss += (this.constants.smoothing / this.constants.classes) * uniform;
    }
    return loss;
  },
);

/* The mean of the N row losses, as the 0-D loss. */
const MEAN = defineKernel('softmaxCrossEntropyMean', function softmaxCrossEntropyMean(this: KernelThis<'batch'>, rows: any): number {
  let sum = 0;
  for (let n = 0; n < this.constants.batch; n++) sum += rows[n];
  return sum / this.constants.batch;
});

/* dlogits[n, k] = dy * (p_k - t_k) / N with p_k = exp(z_k - lse_n), t_k = (1 - s) [k = label] + s / K (see reference.ts). */
const BACKWARD = defineKernel(
  'softmaxCrossEntropyBackward',
  function softmaxCrossEntropyBackward(this: KernelThis<Row | 'batch'>, dy: any, logits: any, labels: any, lse: any): number {
    const i = this.thread.x;
    const n = Math.floor(i / this.constants.classes);
    const k = i - n * this.constants.classes;
    const p = Math.exp(logits[i] - lse[n]);
    let t = this.constants.smoothing / this.constants.classes;
    if (k === labels[n]) t += 1 - this.constants.smoothing;
    return (dy[0] / this.constants.batch) * (p - t);
  },
);

/* Labels as floats for the kernels (class indices are far below 2^24, so exact). */
const labelTensor = (labels: Labels) => new Tensor(Float32Array.from(labels), [labels.length]);

export function softmaxCrossEntropyGpu(gpu: GpuContext): GpuOps<SoftmaxCrossEntropyOps> {
  return {
    async softmaxCrossEntropy(logits, labels, options) {
      const op = 'softmaxCrossEntropy';
      const { batch, classes, labelSmoothing } = gpu.checkArgs(op, { logits }, (host) =>
        softmaxCrossEntropyGeometry(op, host.logits, labels, options),
      );
      gpu.checkFits(op, 'output', [batch]);
      const rows = await gpu.launch({
        op,
        kernel: ROW,
        inputs: [logits, labelTensor(labels)],
        output: { shape: [batch] },
        constants: { classes, smoothing: labelSmoothing, loss: 1 },
      });
      try {
        return await gpu.launch({ op, kernel: MEAN, inputs: [rows], output: { shape: [] }, constants: { batch } });
      } finally {
        rows.dispose();
      }
    },

    async softmaxCrossEntropyBackward(dy, logits, labels, options) {
      const op = 'softmaxCrossEntropyBackward';
      const { batch, classes, labelSmoothing } = gpu.checkArgs(op, { dy, logits }, (host) =>
        checkSoftmaxCrossEntropyBackward(host.dy, host.logits, labels, options),
      );
      gpu.checkFits(op, 'output', logits.shape);
      const onDeviceLabels = labelTensor(labels);
      return gpu.onDevice([logits, onDeviceLabels], async ([logitsOnDevice, labelsOnDevice]) => {
        const lse: DeviceTensor = await gpu.launch({
          op,
          kernel: ROW,
          inputs: [logitsOnDevice as DeviceTensor, labelsOnDevice as DeviceTensor],
          output: { shape: [batch] },
          // The smoothing plays no part in lse: 0, so that every smoothing shares one compile.
          constants: { classes, smoothing: 0, loss: 0 },
        });
        try {
          const dlogits = await gpu.launch({
            op,
            kernel: BACKWARD,
            inputs: [dy, logitsOnDevice as DeviceTensor, labelsOnDevice as DeviceTensor, lse],
            output: { shape: logits.shape },
            constants: { classes, smoothing: labelSmoothing, batch },
          });
          return { dlogits };
        } finally {
          lse.dispose();
        }
      });
    },
  };
}
