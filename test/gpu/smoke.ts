import { type GpuMode, openGpu } from '@shuffle/kernels';
import { expect, it } from 'vitest';

/**
 * A tiny kernel on one mode: a dot product per output cell over a compile-time loop bound, checked
 * against values computed by hand, and the kernel class gpu.js really picked.
 */
export function smokeTests(mode: GpuMode, kernelClass: string): void {
  it('runs a small kernel with the right numbers on the right backend', async () => {
    const gpu = await openGpu(mode);
    try {
      const kernel = gpu.createKernel(
        function (this: any, a: any, b: any) {
          let sum = 0;
          for (let j = 0; j < this.constants.n; j++) sum += a[this.thread.x] * b[j] + j;
          return sum;
        },
        { output: [5], constants: { n: 3 } },
      );
      const result = (await kernel(new Float32Array([1, 2, 3, 4, 5]), new Float32Array([1, 10, 100]))) as Float32Array;
      // a[x] * (1 + 10 + 100) + (0 + 1 + 2)
      expect(Array.from(result)).toEqual([114, 225, 336, 447, 558]);
      // gpu.js wraps each kernel in a callable; the backend-specific kernel object is its .kernel
      expect((kernel as unknown as { kernel: object }).kernel.constructor.name).toBe(kernelClass);
    } finally {
      await gpu.destroy();
    }
  });
}
