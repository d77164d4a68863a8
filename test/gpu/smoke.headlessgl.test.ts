// One file per mode: vitest runs each file in its own process, and headlessgl and webgpu must not share one.
import { smokeTests } from './smoke.js';
import { describeGpuMode } from './support.js';

await describeGpuMode('headlessgl', () => smokeTests('headlessgl', 'HeadlessGLKernel'));
