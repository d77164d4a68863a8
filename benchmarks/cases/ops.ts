import type { OpCase, OpSpec, Shape4 } from './case.js';

/**
 * The per-op cases: each op at the shapes it has inside ShuffleNet v1 (g=3, 1.0x, 224x224 input), batch
 * `batch`, forward and backward. `tiny` gives the same ops at a few elements each (odd sizes, batch 2)
 * for the test suite.
 */
interface OpDefinition {
  id: string;
  title: string;
  spec: (batch: number) => OpSpec;
  tiny: OpSpec;
}

const shape = (n: number, c: number, h: number, w = h): Shape4 => [n, c, h, w];

const DEFINITIONS: readonly OpDefinition[] = [
  {
    id: 'conv-stem@224',
    title: 'stem conv 3x3 s2 p1 3->24 @224',
    spec: (n) => ({ op: 'conv2d', x: shape(n, 3, 224), weight: [24, 3, 3, 3], stride: 2, padding: 1, groups: 1 }),
    tiny: { op: 'conv2d', x: shape(2, 3, 9), weight: [6, 3, 3, 3], stride: 2, padding: 1, groups: 1 },
  },
  {
    id: 'maxpool@112',
    title: 'max pool 3x3 s2 p1 24ch @112',
    spec: (n) => ({ op: 'maxPool2d', x: shape(n, 24, 112), kernelSize: 3, stride: 2, padding: 1 }),
    tiny: { op: 'maxPool2d', x: shape(2, 6, 9), kernelSize: 3, stride: 2, padding: 1 },
  },
  {
    id: 'gconv-240-60@28',
    title: 'grouped 1x1 conv 240->60 g=3 @28',
    spec: (n) => ({ op: 'conv2d', x: shape(n, 240, 28), weight: [60, 80, 1, 1], stride: 1, padding: 0, groups: 3 }),
    tiny: { op: 'conv2d', x: shape(2, 12, 5), weight: [6, 4, 1, 1], stride: 1, padding: 0, groups: 3 },
  },
  {
    id: 'dwconv-s1-60@28',
    title: 'depthwise 3x3 s1 p1 60ch @28',
    spec: (n) => ({ op: 'depthwiseConv2d', x: shape(n, 60, 28), weight: [60, 1, 3, 3], stride: 1, padding: 1 }),
    tiny: { op: 'depthwiseConv2d', x: shape(2, 6, 5), weight: [6, 1, 3, 3], stride: 1, padding: 1 },
  },
  {
    id: 'dwconv-s2-120@28',
    title: 'depthwise 3x3 s2 p1 120ch @28',
    spec: (n) => ({ op: 'depthwiseConv2d', x: shape(n, 120, 28), weight: [120, 1, 3, 3], stride: 2, padding: 1 }),
    tiny: { op: 'depthwiseConv2d', x: shape(2, 6, 7), weight: [6, 1, 3, 3], stride: 2, padding: 1 },
  },
  {
    id: 'gconv-120-480@14',
    title: 'grouped 1x1 conv 120->480 g=3 @14',
    spec: (n) => ({ op: 'conv2d', x: shape(n, 120, 14), weight: [480, 40, 1, 1], stride: 1, padding: 0, groups: 3 }),
    tiny: { op: 'conv2d', x: shape(2, 6, 4), weight: [12, 2, 1, 1], stride: 1, padding: 0, groups: 3 },
  },
  {
    id: 'avgpool-480@14',
    title: 'avg pool 3x3 s2 p1 480ch @14',
    spec: (n) => ({ op: 'avgPool2d', x: shape(n, 480, 14), kernelSize: 3, stride: 2, padding: 1 }),
    tiny: { op: 'avgPool2d', x: shape(2, 12, 5), kernelSize: 3, stride: 2, padding: 1 },
  },
  {
    id: 'shuffle-60@28',
    title: 'channel shuffle g=3 60ch @28',
    spec: (n) => ({ op: 'channelShuffle', x: shape(n, 60, 28), groups: 3 }),
    tiny: { op: 'channelShuffle', x: shape(2, 6, 5), groups: 3 },
  },
  {
    id: 'shuffle-120@14',
    title: 'channel shuffle g=3 120ch @14',
    spec: (n) => ({ op: 'channelShuffle', x: shape(n, 120, 14), groups: 3 }),
    tiny: { op: 'channelShuffle', x: shape(2, 12, 3), groups: 3 },
  },
  {
    id: 'shuffle-240@7',
    title: 'channel shuffle g=3 240ch @7',
    spec: (n) => ({ op: 'channelShuffle', x: shape(n, 240, 7), groups: 3 }),
    tiny: { op: 'channelShuffle', x: shape(2, 24, 2), groups: 3 },
  },
  {
    id: 'gap-960@7',
    title: 'global avg pool 960ch @7',
    spec: (n) => ({ op: 'globalAvgPool2d', x: shape(n, 960, 7) }),
    tiny: { op: 'globalAvgPool2d', x: shape(2, 12, 3) },
  },
  {
    id: 'linear-960-1000',
    title: 'linear 960->1000',
    spec: (n) => ({ op: 'linear', x: [n, 960], weight: [1000, 960] }),
    tiny: { op: 'linear', x: [2, 12], weight: [10, 12] },
  },
];

/** Output size of a window op with symmetric padding (floor mode). */
export function windowOut(size: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - kernel) / stride) + 1;
}

/** The forward output's logical shape. */
export function outputShape(spec: OpSpec): number[] {
  const [n, c, h, w] = spec.op === 'linear' ? [spec.x[0], spec.x[1], 1, 1] : spec.x;
  switch (spec.op) {
    case 'conv2d':
    case 'depthwiseConv2d': {
      const [out, , kh, kw] = spec.weight;
      return [n, out, windowOut(h, kh, spec.stride, spec.padding), windowOut(w, kw, spec.stride, spec.padding)];
    }
    case 'maxPool2d':
    case 'avgPool2d':
      return [n, c, windowOut(h, spec.kernelSize, spec.stride, spec.padding), windowOut(w, spec.kernelSize, spec.stride, spec.padding)];
    case 'channelShuffle':
      return [n, c, h, w];
    case 'globalAvgPool2d':
      return [n, c, 1, 1];
    case 'linear':
      return [n, spec.weight[0]];
  }
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * FLOPs of the forward. A multiply-add counts 2 (the ShuffleNet papers' "FLOPs" are multiply-adds, so
 * their numbers are half of ours). Pooling counts one operation (a compare or an add) per window tap,
 * global pooling one add per input element, a shuffle none.
 */
export function forwardFlops(spec: OpSpec): number {
  const out = outputShape(spec);
  switch (spec.op) {
    case 'conv2d': {
      const [, cinPerGroup, kh, kw] = spec.weight;
      return 2 * size(out) * cinPerGroup * kh * kw;
    }
    case 'depthwiseConv2d':
      return 2 * size(out) * spec.weight[2] * spec.weight[3];
    case 'maxPool2d':
    case 'avgPool2d':
      return size(out) * spec.kernelSize * spec.kernelSize;
    case 'channelShuffle':
      return 0;
    case 'globalAvgPool2d':
      return size(spec.x);
    case 'linear':
      return 2 * spec.x[0] * spec.weight[0] * spec.weight[1];
  }
}

/**
 * FLOPs of the backward: convolutions and linear compute dx and dweight, each as many multiply-adds as
 * the forward; pooling scatters one value per window tap, global pooling writes each input element once.
 */
export function backwardFlops(spec: OpSpec): number {
  const forward = forwardFlops(spec);
  return spec.op === 'conv2d' || spec.op === 'depthwiseConv2d' || spec.op === 'linear' ? 2 * forward : forward;
}

/** float32 bytes read and written at least: forward x (+ weight) -> y; backward dy, x (+ weight) -> dx (+ dweight). */
export function opBytes(spec: OpSpec, direction: 'forward' | 'backward'): number {
  const weight = 'weight' in spec ? size(spec.weight) : 0;
  const x = size(spec.x);
  const y = size(outputShape(spec));
  const elements = direction === 'forward' ? x + weight + y : y + x + weight + x + weight;
  return 4 * elements;
}

function seedOf(id: string): number {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return h >>> 0;
}

export interface OpCaseOptions {
  tiny?: boolean;
  batch?: number;
}

export function opCases({ tiny = false, batch = 1 }: OpCaseOptions = {}): OpCase[] {
  const cases: OpCase[] = [];
  for (const d of DEFINITIONS) {
    const spec = tiny ? d.tiny : d.spec(batch);
    const id = tiny ? `${d.id.split('@')[0]}@tiny` : d.id;
    const title = tiny ? `${d.title.split(' @')[0]} (tiny ${describeSpec(spec)})` : batch === 1 ? d.title : `${d.title} batch ${batch}`;
    for (const direction of ['forward', 'backward'] as const) {
      cases.push({
        kind: 'op',
        suite: 'ops',
        id,
        direction,
        key: `${id}/${direction}`,
        title,
        spec,
        seed: seedOf(d.id),
        flops: direction === 'forward' ? forwardFlops(spec) : backwardFlops(spec),
        bytes: opBytes(spec, direction),
      });
    }
  }
  return cases;
}

function describeSpec(spec: OpSpec): string {
  return `x [${spec.x.join(', ')}]`;
}
