import { describe, fail, type Tensor } from '@shuffle/core';

/** What a parameter is, so an optimizer can treat kinds differently (e.g. no weight decay on BN and biases). */
export type ParameterKind = 'conv' | 'depthwise' | 'batchnorm' | 'linear' | 'bias';

/**
 * A trainable tensor and its gradient. Both are live: writing `value.data` changes the next forward,
 * and every backward overwrites `grad.data` in place, so the objects can be held across steps.
 * Both are in logical layout (NCHW for 4-D conv weights, [out, in] for linear weights).
 */
export interface Parameter {
  /** The official checkpoint's key, e.g. 'features.0.branch_main_1.0.weight'. */
  name: string;
  value: Tensor;
  grad: Tensor;
  kind: ParameterKind;
}

/** State that is not trained by gradients: batch norm's running_mean and running_var. */
export interface NamedBuffer {
  name: string;
  value: Tensor;
}

export interface ForwardOptions {
  /** Batch norm uses (and updates) the batch's statistics when true, the running ones when false. Default false. */
  training?: boolean;
}

/** forwardAsync's options (a gpu backend). */
export interface ForwardAsyncOptions extends ForwardOptions {
  /**
   * Inference only: run the whole network as one gpu.js pipeline (one launch, one readback). Default
   * true; false runs it op by op.
   */
  pipeline?: boolean;
}

export interface Model {
  /** x [N, C, H, W] in either layout -> logits [N, numClasses]. Saves what backward needs. */
  forward(x: Tensor, options?: ForwardOptions): Tensor;
  /** Given dLoss/dLogits for the last forward's logits, overwrites every parameter's grad. */
  backward(dLogits: Tensor): void;
  parameters(): Parameter[];
  buffers(): NamedBuffer[];
}

/**
 * One layer as `describe` lists it, computed from shapes alone (nothing runs). The fields follow the
 * reference sheet's per-layer table (shufflenet-configs.json, layers_g3_1.0x).
 */
export interface LayerInfo {
  /** A readable path like 'stage2.unit1.pw1'; its first part names the stage. */
  name: string;
  op: 'conv' | 'bn' | 'relu' | 'maxpool' | 'avgpool' | 'global_avgpool' | 'channel_shuffle' | 'add' | 'concat' | 'fc';
  kernel?: number;
  stride?: number;
  pad?: number;
  groups?: number;
  /** Logical [N, C, H, W] (an [N, C] for the classifier's input); concat lists one shape per input. */
  inShape: number[] | number[][];
  outShape: number[];
  weightShape?: number[];
  /** Trainable parameters the layer owns (weights, biases, BN gamma and beta). */
  params: number;
  /** Multiply-adds of convolutions and the classifier for the whole batch (0 for every other layer). */
  macs: number;
  /** The official checkpoint's key prefix of the layer's parameters, e.g. 'features.0.branch_main_1.0'. */
  megviiKey?: string;
}

/** Total number of trainable values. */
export function countParameters(model: Pick<Model, 'parameters'>): number {
  return model.parameters().reduce((sum, p) => sum + p.value.size, 0);
}

/** Overwrites `grad` with `computed` (same logical shape; converted to grad's layout if needed). */
export function writeGradient(grad: Tensor, computed: Tensor, name: string): void {
  if (computed.shape.length !== grad.shape.length || computed.shape.some((d, i) => d !== grad.shape[i])) {
    fail('backward', name, `a gradient of shape ${describe(grad.shape)}`, describe(computed.shape));
  }
  const source = computed.rank === 4 ? computed.toLayout(grad.layout) : computed;
  grad.data.set(source.data);
}
