/**
 * Issue 6's memory rule: a batch-1 forward on the cpu backend allocates nothing per call after warm-up
 * beyond its output. Measured as the growth of the process's ArrayBuffer memory across one forward
 * (process.memoryUsage().arrayBuffers counts every typed array's backing store, pooled or not, until
 * the garbage collector frees it): after warm-up it must be at most the logits' own bytes. A forward
 * outside the model's arenas, op by op, shows that the measurement does see fresh results.
 */
import { randomUniform } from '@shuffle/core';
import { cpu, setNumThreads } from '@shuffle/kernels';
import { shuffleNetV1 } from '@shuffle/models';
import { afterAll, describe, expect, it } from 'vitest';

function arrayBufferGrowth(run: () => unknown): number {
  const before = process.memoryUsage().arrayBuffers;
  run();
  return process.memoryUsage().arrayBuffers - before;
}

afterAll(() => setNumThreads(1));

describe('ShuffleNet v1 g3 1.0x at 224x224, batch 1, cpu backend', () => {
  const model = shuffleNetV1({ groups: 3, width: 1, backend: cpu });

  it.each([
    [1, 'NCHW'],
    [1, 'NHWC'],
    [2, 'NCHW'],
  ] as const)('with %i thread(s), %s: a warm forward allocates only its logits', (threads, layout) => {
    setNumThreads(threads);
    const x = randomUniform([1, 3, 224, 224], { seed: 1, layout });
    for (let i = 0; i < 2; i++) model.forward(x);
    const logitsBytes = model.forward(x).data.byteLength;
    // The largest of several calls: a garbage collection inside one call could only hide an allocation.
    const growths = Array.from({ length: 4 }, () => arrayBufferGrowth(() => model.forward(x)));
    expect(Math.max(...growths)).toBeLessThanOrEqual(logitsBytes);
  });

  it('releaseMemory drops the recycled buffers: the next forward allocates afresh and computes the same logits', () => {
    setNumThreads(1);
    const x = randomUniform([1, 3, 224, 224], { seed: 1 });
    const before = model.forward(x);
    model.releaseMemory();
    let after = before;
    const growth = arrayBufferGrowth(() => {
      after = model.forward(x);
    });
    expect(growth).toBeGreaterThan(1_000_000);
    expect(Array.from(after.data)).toEqual(Array.from(before.data));
  });

  it('the measurement sees fresh results: the same layers outside an arena allocate megabytes', () => {
    setNumThreads(1);
    const x = randomUniform([1, 3, 224, 224], { seed: 1 });
    model.forward(x);
    // The stem's conv and batch norm called directly: fresh outputs of 24 x 112 x 112 floats each.
    const growth = arrayBufferGrowth(() => {
      const y = model.firstConv.forward(x);
      model.firstBn.forward(y, false);
    });
    expect(growth).toBeGreaterThanOrEqual(2 * 24 * 112 * 112 * 4);
  });
});
