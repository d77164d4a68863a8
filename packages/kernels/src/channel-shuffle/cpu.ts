import { Tensor } from '@shuffle/core';
import { resultF32 } from '../common/arena.js';
import { channelShuffleReference } from './reference.js';
import { type ChannelShuffleGeometry, type ChannelShuffleOps, type ChannelShuffleOptions, channelShuffleGeometry } from './spec.js';

/*
 * A channel shuffle moves whole channels: with C viewed as (groups, C/groups), channel g * (C/groups) + k
 * goes to k * groups + g (paper order), or back (inverse). No arithmetic, so the kernel is memory traffic
 * and loop overhead only.
 *
 * NCHW: each channel is a contiguous plane of H*W, so the shuffle is a permutation of planes, copied with
 * a typed-array set() (a memmove); for planes under ~40 values (4x4, 5x5) creating a subarray view per plane
 * costs more than the copy, and a plain loop wins.
 * NHWC: each pixel holds its C channels in a row, so the shuffle is the same small (groups x C/groups)
 * transpose inside every row, done with the two loops over (g, k) and no index table.
 *
 * The backward sends dy back through the inverse permutation, which is the shuffle with `inverse` flipped.
 * float64 (gradient checks only) goes to the reference.
 */

/** Planes at least this long are copied with set(subarray); shorter ones with a loop (measured crossover ~40). */
const SET_MIN_PLANE = 48;

function shuffleNchw(
  x: Float32Array,
  y: Float32Array,
  batch: number,
  groups: number,
  perGroup: number,
  plane: number,
  inverse: boolean,
): void {
  const channels = groups * perGroup;
  for (let n = 0; n < batch; n++) {
    const base = n * channels * plane;
    for (let g = 0; g < groups; g++) {
      for (let k = 0; k < perGroup; k++) {
        const grouped = g * perGroup + k;
        const dealt = k * groups + g;
        const from = base + (inverse ? dealt : grouped) * plane;
        const to = base + (inverse ? grouped : dealt) * plane;
        if (plane >= SET_MIN_PLANE) y.set(x.subarray(from, from + plane), to);
        else for (let i = 0; i < plane; i++) y[to + i] = x[from + i] as number;
      }
    }
  }
}

function shuffleNhwc(x: Float32Array, y: Float32Array, pixels: number, groups: number, perGroup: number, inverse: boolean): void {
  const channels = groups * perGroup;
  for (let base = 0, end = pixels * channels; base < end; base += channels) {
    if (inverse) {
      for (let g = 0; g < groups; g++) {
        const to = base + g * perGroup;
        for (let k = 0; k < perGroup; k++) y[to + k] = x[base + k * groups + g] as number;
      }
    } else {
      for (let g = 0; g < groups; g++) {
        const from = base + g * perGroup;
        for (let k = 0; k < perGroup; k++) y[base + k * groups + g] = x[from + k] as number;
      }
    }
  }
}

function shuffle(x: Tensor, geometry: ChannelShuffleGeometry, inverse: boolean): Tensor {
  const { batch, height, width, groups, channelsPerGroup } = geometry;
  const y = resultF32(x.size);
  const plane = height * width;
  if (x.layout === 'NCHW') shuffleNchw(x.data as Float32Array, y, batch, groups, channelsPerGroup, plane, inverse);
  else shuffleNhwc(x.data as Float32Array, y, batch * plane, groups, channelsPerGroup, inverse);
  return new Tensor(y, x.shape, x.layout);
}

export const channelShuffleCpu: ChannelShuffleOps = {
  channelShuffle(x: Tensor, groups: number, options?: ChannelShuffleOptions) {
    const geometry = channelShuffleGeometry('channelShuffle', 'x', x, groups, options);
    if (x.dtype === 'float64') return channelShuffleReference.channelShuffle(x, groups, options);
    return shuffle(x, geometry, geometry.inverse);
  },

  channelShuffleBackward(dy: Tensor, groups: number, options?: ChannelShuffleOptions) {
    const geometry = channelShuffleGeometry('channelShuffleBackward', 'dy', dy, groups, options);
    if (dy.dtype === 'float64') return channelShuffleReference.channelShuffleBackward(dy, groups, options);
    return { dx: shuffle(dy, geometry, !geometry.inverse) };
  },
};
