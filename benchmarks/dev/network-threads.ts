// Whole ShuffleNet v1 g=3 1.0x forward at 224, batch 1, on the cpu backend with 1 and 2 threads, both layouts.
// Run: pnpm exec tsx benchmarks/dev/network-threads.ts
import { randomUniform } from '@shuffle/core';
import { cpu, setNumThreads } from '@shuffle/kernels';
import { shuffleNetV1 } from '@shuffle/models';

const m = shuffleNetV1({ groups: 3, width: 1, backend: cpu });
for (const threads of [1, 2]) {
  setNumThreads(threads);
  for (const layout of ['NCHW', 'NHWC'] as const) {
    const x = randomUniform([1, 3, 224, 224], { seed: 1, layout });
    for (let i = 0; i < 5; i++) m.forward(x);
    const ts: number[] = [];
    for (let i = 0; i < 25; i++) {
      const t = performance.now();
      m.forward(x);
      ts.push(performance.now() - t);
    }
    ts.sort((a, b) => a - b);
    console.log(`threads ${threads} ${layout}: median ${ts[12]!.toFixed(1)} ms, min ${ts[0]!.toFixed(1)}, max ${ts[24]!.toFixed(1)}`);
  }
}
setNumThreads(1);
