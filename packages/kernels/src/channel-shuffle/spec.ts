import type { Tensor } from '@shuffle/core';

export interface ChannelShuffleOptions {
  /** The inverse permutation (the official ShuffleNet code's order). */
  inverse?: boolean;
}

export interface ChannelShuffleOps {
  /** Paper order: view C as (groups, C/groups), transpose, flatten. */
  channelShuffle(x: Tensor, groups: number, options?: ChannelShuffleOptions): Tensor;
  channelShuffleBackward(dy: Tensor, groups: number, options?: ChannelShuffleOptions): { dx: Tensor };
}
