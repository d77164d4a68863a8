import type { ChannelShuffleOps } from './spec.js';

// TODO(in progress): placeholder until the reference lands in this branch.
const notYet = (): never => {
  throw new Error('channelShuffle: not implemented yet');
};
export const channelShuffleReference: ChannelShuffleOps = { channelShuffle: notYet, channelShuffleBackward: notYet };
