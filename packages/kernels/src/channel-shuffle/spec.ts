import { fail, type Tensor } from '@shuffle/core';
import { checkPositiveInteger, checkTensor } from '../common/args.js';

export interface ChannelShuffleOptions {
  /** The inverse permutation (the official ShuffleNet code's order). Default false. */
  inverse?: boolean;
}

export interface ChannelShuffleOps {
  /** Paper order: view C as (groups, C/groups), transpose, flatten. */
  channelShuffle(x: Tensor, groups: number, options?: ChannelShuffleOptions): Tensor;
  channelShuffleBackward(dy: Tensor, groups: number, options?: ChannelShuffleOptions): { dx: Tensor };
}

/** A checked call: the shape of x (or dy) and the permutation's parameters. */
export interface ChannelShuffleGeometry {
  batch: number;
  channels: number;
  height: number;
  width: number;
  groups: number;
  channelsPerGroup: number;
  inverse: boolean;
}

/**
 * Validates a channelShuffle (or, with op 'channelShuffleBackward' and argument 'dy', its backward) call
 * and resolves the options. The shuffle only needs C to split evenly into `groups`.
 */
export function channelShuffleGeometry(
  op: 'channelShuffle' | 'channelShuffleBackward',
  argument: 'x' | 'dy',
  x: Tensor,
  groups: number,
  options: ChannelShuffleOptions = {},
): ChannelShuffleGeometry {
  checkTensor(op, argument, x, 4);
  checkPositiveInteger(op, 'groups', groups);
  if (options === null || typeof options !== 'object') fail(op, 'options', 'an object { inverse? }', options);
  const { inverse = false } = options;
  if (typeof inverse !== 'boolean') fail(op, 'options.inverse', 'a boolean', inverse);
  const [batch, channels, height, width] = x.shape as [number, number, number, number];
  if (channels % groups !== 0) {
    fail(op, 'groups', `a divisor of the channel count (${argument} has ${channels} channels)`, groups);
  }
  return { batch, channels, height, width, groups, channelsPerGroup: channels / groups, inverse };
}

/**
 * The input channel that output channel `c` reads.
 *
 * Paper order: channel g * (C/groups) + k (member k of group g) moves to k * groups + g, so that the
 * members of every group are dealt out round-robin across the next layer's groups. Hence output
 * c = k * groups + g reads input g * (C/groups) + k, with k = floor(c / groups), g = c mod groups.
 * The inverse (the official code's order: view C as (C/groups, groups), transpose, flatten) undoes it:
 * output c = g * (C/groups) + k reads input k * groups + g.
 */
export function shuffleSource(c: number, { groups, channelsPerGroup, inverse }: ChannelShuffleGeometry): number {
  if (inverse) return (c % channelsPerGroup) * groups + Math.floor(c / channelsPerGroup);
  return (c % groups) * channelsPerGroup + Math.floor(c / groups);
}
