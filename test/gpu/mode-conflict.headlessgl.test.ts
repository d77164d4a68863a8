// headlessgl and webgpu in one process break each other (no adapter, or an X error that kills the
// process), so once one is open the other is refused with the reason, before Dawn or GLX is touched.
import { checkGpuMode, GpuUnavailableError, openGpu } from '@shuffle/kernels';
import { expect, it } from 'vitest';
import { describeGpuMode } from './support.js';

await describeGpuMode('headlessgl', () => {
  it('refuses webgpu in a process that opened headlessgl, and says why', async () => {
    const gl = await openGpu('headlessgl');
    const status = await checkGpuMode('webgpu');
    expect(status).toEqual({ mode: 'webgpu', available: false, reason: expect.stringMatching(/cannot share a process/) });
    await expect(openGpu('webgpu')).rejects.toBeInstanceOf(GpuUnavailableError);
    await gl.destroy();
  });
});
