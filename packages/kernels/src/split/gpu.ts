import { concatChannels, sliceChannels } from '../concat/gpu.js';
import type { GpuContext } from '../gpu/context.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import type { GpuOps } from '../gpu/types.js';
import { type SplitOps, splitBackwardGeometry, splitGeometry } from './spec.js';

/* Each piece is a channel slice of x; the backward lays the pieces' gradients side by side, a concat (see reference.ts). */
export function splitGpu(gpu: GpuContext): GpuOps<SplitOps> {
  return {
    async split(x, sizes) {
      const { offsets } = gpu.checkArgs('split', { x, sizes }, (host) => splitGeometry(host.x, host.sizes));
      return gpu.onDevice([x], async ([xOnDevice]) => {
        const pieces: DeviceTensor[] = [];
        try {
          for (const [i, size] of sizes.entries()) {
            pieces.push(await sliceChannels(gpu, 'split', xOnDevice as DeviceTensor, offsets[i] as number, size));
          }
        } catch (error) {
          for (const piece of pieces) piece.dispose();
          throw error;
        }
        return pieces;
      });
    },

    async splitBackward(dys, x, sizes) {
      gpu.checkArgs('splitBackward', { dys, x, sizes }, (host) => splitBackwardGeometry(host.dys, host.x, host.sizes));
      const dx = await gpu.onDevice(dys, (devices) => concatChannels(gpu, 'splitBackward', devices));
      return { dx };
    },
  };
}
