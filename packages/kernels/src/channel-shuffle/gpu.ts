import { type GpuContext, type Strides4, strides4 } from '../gpu/context.js';
import { defineKernel, type KernelThis } from '../gpu/kernel-cache.js';
import type { GpuOps, TensorArg } from '../gpu/types.js';
import { type ChannelShuffleGeometry, type ChannelShuffleOps, channelShuffleGeometry } from './spec.js';

type Constants = Strides4<'x'> | 'channels' | 'height' | 'width' | 'groups' | 'perGroup' | 'inverse';

/*
 * One thread per output element (flat memory index i, in x's layout, which y shares): decompose i into
 * logical (n, c, h, w) and read x at the source channel of spec.ts's shuffleSource, written out here
 * because a kernel cannot call into spec.ts.
 */
const CHANNEL_SHUFFLE = defineKernel('channelShuffle', function channelShuffle(this: KernelThis<Constants>, x: any): number {
  const i = this.thread.x;
  const n = Math.floor(i / this.constants.xStrideN);
  const c = Math.floor(i / this.constants.xStrideC) % this.constants.channels;
  const h = Math.floor(i / this.constants.xStrideH) % this.constants.height;
  const w = Math.floor(i / this.constants.xStrideW) % this.constants.width;
  let source = (c % this.constants.groups) * this.constants.perGroup + Math.floor(c / this.constants.groups);
  if (this.constants.inverse > 0) source = (c % this.constants.perGroup) * this.constants.groups + Math.floor(c / this.constants.perGroup);
  return x[n * this.constants.xStrideN + source * this.constants.xStrideC + h * this.constants.xStrideH + w * this.constants.xStrideW];
});

function shuffle(gpu: GpuContext, op: string, x: TensorArg, geometry: ChannelShuffleGeometry, inverse: boolean) {
  const { channels, height, width, groups, channelsPerGroup } = geometry;
  return gpu.launch({
    op,
    kernel: CHANNEL_SHUFFLE,
    inputs: [x],
    output: { shape: x.shape, layout: x.layout },
    constants: {
      ...strides4('x', x),
      channels,
      height,
      width,
      groups,
      perGroup: channelsPerGroup,
      inverse: inverse ? 1 : 0,
    },
  });
}

export function channelShuffleGpu(gpu: GpuContext): GpuOps<ChannelShuffleOps> {
  return {
    async channelShuffle(x, groups, options) {
      const geometry = gpu.checkArgs('channelShuffle', { x }, (host) =>
        channelShuffleGeometry('channelShuffle', 'x', host.x, groups, options),
      );
      return shuffle(gpu, 'channelShuffle', x, geometry, geometry.inverse);
    },

    /* dx[s(c)] = dy[c] (see reference.ts): dy sent back through the inverse permutation, i.e. the shuffle with `inverse` flipped. */
    async channelShuffleBackward(dy, groups, options) {
      const geometry = gpu.checkArgs('channelShuffleBackward', { dy }, (host) =>
        channelShuffleGeometry('channelShuffleBackward', 'dy', host.dy, groups, options),
      );
      const dx = await shuffle(gpu, 'channelShuffleBackward', dy, geometry, !geometry.inverse);
      return { dx };
    },
  };
}
