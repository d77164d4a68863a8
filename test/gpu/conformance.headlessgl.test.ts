// One file per mode: vitest runs each file in its own process, and headlessgl and webgpu must not share one.
import { gpuConformanceFile } from './conformance.js';
import { convKernelTests } from './kernels-conv.js';

await gpuConformanceFile('headlessgl');
await convKernelTests('headlessgl');
