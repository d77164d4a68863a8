// Whole ShuffleNet v1 g=3 1.0x forward at 224, batch 1, on the cpu backend: 1 thread against 2 threads
// with 1, 2, 4 and 8 parts per thread (common/threads.ts), NCHW, interleaved over rounds so that the
// machine's drift (one of its vCPUs slows down at times) reaches every setting alike.
// Run: pnpm exec tsx benchmarks/dev/network-threads.ts [rounds]
import { randomUniform } from '@shuffle/core';
import { cpu, setNumThreads } from '@shuffle/kernels';
import { shuffleNetV1 } from '@shuffle/models';
import { setPartsPerThread } from '../../packages/kernels/src/common/threads.js';

const rounds = Number(process.argv[2] ?? 8);
const settings = [
  { name: '1 thread', threads: 1, parts: 1 },
  ...[1, 2, 4, 8].map((parts) => ({ name: `2 threads, ${parts} parts each`, threads: 2, parts })),
];
const m = shuffleNetV1({ groups: 3, width: 1, backend: cpu });
const x = randomUniform([1, 3, 224, 224], { seed: 1 });
const times = new Map(settings.map((s) => [s.name, [] as number[]]));
for (let round = 0; round < rounds; round++) {
  for (const s of settings) {
    setNumThreads(s.threads);
    setPartsPerThread(s.parts);
    for (let i = 0; i < 2; i++) m.forward(x);
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      m.forward(x);
      times.get(s.name)?.push(performance.now() - t);
    }
  }
}
const median = (ts: number[]) => [...ts].sort((a, b) => a - b)[ts.length >> 1] as number;
const base = median(times.get('1 thread') as number[]);
for (const [name, ts] of times) console.log(`${name.padEnd(26)} median ${median(ts).toFixed(1)} ms  x${(base / median(ts)).toFixed(2)}`);
setNumThreads(1);
setPartsPerThread(undefined);
