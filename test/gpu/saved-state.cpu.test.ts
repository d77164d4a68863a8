// One file per mode: vitest runs each file in its own process, and headlessgl and webgpu must not share one.
import { savedStateTests } from './saved-state.js';
import { describeGpuMode } from './support.js';

await describeGpuMode('cpu', () => savedStateTests('cpu'));
