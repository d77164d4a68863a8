/**
 * Device memory does not grow with use: 1,000 rounds of a small chain (relu, add, channel shuffle, a
 * read every 100th round), each result disposed, leave the backend's live tensor count and bytes where
 * they started, compile nothing after the first round, and grow the process's RSS by a bounded amount.
 * On this machine headlessgl and webgpu keep textures and buffers in process memory (Mesa llvmpipe), so
 * RSS sees a device leak too: a leaked output per round would add about 0.3 GB (webgpu) or 1.2 GB
 * (headlessgl's RGBA float texels).
 */
import { randomUniform } from '@shuffle/core';
import { createGpuBackend, type GpuBackend, type GpuMode, reference } from '@shuffle/kernels';
import { expect, it } from 'vitest';

const ROUNDS = 1000;
/** RSS growth allowed over the 1,000 rounds: allocator and JIT noise, far below a leak's size. */
const RSS_GROWTH_LIMIT = 64 * 2 ** 20;

export function memoryTests(mode: GpuMode): void {
  it(`${ROUNDS} rounds of relu, add and channel shuffle leave device memory where it was`, async () => {
    const gpu: GpuBackend = await createGpuBackend({ mode });
    try {
      const host = randomUniform([2, 12, 32, 32], { seed: 1, low: -1, high: 1, layout: 'NHWC' });
      const expected = reference.channelShuffle(reference.add(reference.relu(host), host), 3);
      const x = gpu.upload(host);
      const round = async (read: boolean) => {
        const y = await gpu.relu(x);
        const z = await gpu.add(y, x);
        const s = await gpu.channelShuffle(z, 3);
        if (read) expect(Array.from((await s.read()).data)).toEqual(Array.from(expected.data));
        for (const t of [y, z, s]) t.dispose();
      };
      for (let i = 0; i < 20; i++) await round(i === 0);
      const before = gpu.stats();
      const rssBefore = process.memoryUsage().rss;
      for (let i = 0; i < ROUNDS; i++) await round(i % 100 === 0);
      const after = gpu.stats();
      const rssGrowth = process.memoryUsage().rss - rssBefore;
      expect(after.liveTensors).toBe(1);
      expect(after.liveTensors).toBe(before.liveTensors);
      expect(after.liveBytes).toBe(before.liveBytes);
      expect(after.kernels).toBe(before.kernels);
      expect(after.runs - before.runs).toBe(3 * ROUNDS);
      expect(rssGrowth, `RSS grew by ${(rssGrowth / 2 ** 20).toFixed(1)} MiB`).toBeLessThan(RSS_GROWTH_LIMIT);
      x.dispose();
      expect(gpu.stats().liveTensors).toBe(0);
      expect(gpu.stats().liveBytes).toBe(0);
    } finally {
      await gpu.destroy();
    }
  });
}
