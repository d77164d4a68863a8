import { channelShuffleReference } from './reference.js';
import type { ChannelShuffleOps } from './spec.js';

// TODO(issue 6, in progress): the fast kernel replaces this.
export const channelShuffleCpu: ChannelShuffleOps = channelShuffleReference;
