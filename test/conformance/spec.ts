import type { Tensor, Tolerance } from '@shuffle/core';
import type { Backend } from '@shuffle/kernels';
import type fc from 'fast-check';

/**
 * One call of an op: its tensor inputs by name (created in logical NCHW float32; the suite converts
 * them to the layout and dtype under test) and everything else it takes (options, groups, labels).
 */
export interface Sample<Options = unknown> {
  inputs: Record<string, Tensor>;
  options: Options;
}

/** An op's output: one tensor, or a list (split). */
export type Output = Tensor | Tensor[];

/**
 * Everything the conformance suite needs to know about one op, declared once. The suite runs it on
 * every registered backend, in both layouts, in float32 and (for gradients) float64.
 */
export interface ConformanceSpec<Options = unknown> {
  op: string;
  /** Random valid calls. Must reach the edges that matter for the op (see each spec's comment). */
  samples: fc.Arbitrary<Sample<Options>>;
  /**
   * The forward on a backend. Must not mutate `sample` (e.g. batch norm in training mode works on copies
   * of its running statistics), so the suite can call it repeatedly.
   */
  forward(backend: Backend, sample: Sample<Options>): Output;
  /**
   * The backward on a backend, given dy shaped like the forward's output. Returns the gradient of every
   * input named in `differentiable`, keyed by input name.
   */
  backward(backend: Backend, dy: Output, sample: Sample<Options>): Record<string, Tensor>;
  /** Inputs whose gradient backward returns and the gradient check verifies. */
  differentiable: readonly string[];
  /** Hand-checked values: expected outputs in logical NCHW order. */
  golden: { name: string; sample: Sample<Options>; expected: Output }[];
  /** Calls that must throw a ShuffleArgumentError whose message matches, leaving the inputs untouched. */
  errors: { name: string; sample: Sample<Options>; call(backend: Backend, sample: Sample<Options>): unknown; message: RegExp }[];
  /** Looser or tighter tolerances than the backend default, with the reason in a comment. */
  tolerance?: Partial<Record<string, Tolerance>>;
  /**
   * Finite differences cannot be trusted everywhere (a max-pool tie, a ReLU kink); a spec may nudge
   * a float64 sample away from such points before a gradient check. Returns a new sample.
   */
  prepareForGradcheck?(sample: Sample<Options>): Sample<Options>;
}

export function defineSpec<Options>(spec: ConformanceSpec<Options>): ConformanceSpec<unknown> {
  return spec as unknown as ConformanceSpec<unknown>;
}
