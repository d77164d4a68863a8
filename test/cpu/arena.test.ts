/**
 * TensorArena's own rules. Its poison option is exercised where it matters, by the conformance suite:
 * every op of the cpu backend also runs inside a poisoned arena there (test/conformance/backends.ts).
 */
import { randomUniform, ShuffleArgumentError } from '@shuffle/core';
import { cpu, TensorArena } from '@shuffle/kernels';
import { describe, expect, it } from 'vitest';

describe('TensorArena', () => {
  const x = randomUniform([1, 4, 6, 6], { seed: 1, low: -1, high: 1 });
  const chain = () => cpu.relu(cpu.channelShuffle(cpu.relu(x), 2));

  it('recycles: the same sequence of results reuses the same memory, and allocates only on the first run', () => {
    const arena = new TensorArena();
    const first = arena.run(chain);
    const firstValues = Array.from(first.data);
    const second = arena.run(chain);
    expect(second.data).toBe(first.data);
    expect(Array.from(second.data)).toEqual(firstValues);
    expect(arena.stats()).toEqual({ buffers: 3, bytes: 3 * x.size * 4, allocations: 3 });
  });

  it('a result stays valid until the next run of its arena; outside any arena results are fresh', () => {
    const arena = new TensorArena();
    const kept = arena.run(() => cpu.relu(x));
    const outside = cpu.relu(x);
    expect(outside.data).not.toBe(kept.data);
    arena.run(() => cpu.relu(randomUniform([1, 4, 6, 6], { seed: 2 })));
    expect(Array.from(kept.data)).not.toEqual(Array.from(outside.data));
  });

  it('a changed sequence (another shape) allocates anew and is still correct', () => {
    const arena = new TensorArena();
    arena.run(chain);
    const other = randomUniform([2, 4, 3, 3], { seed: 3 });
    const y = arena.run(() => cpu.relu(other));
    expect(Array.from(y.data)).toEqual(Array.from(cpu.relu(other).data));
    expect(arena.stats().allocations).toBe(4);
  });

  it('arenas nest (the innermost serves), but one arena cannot run inside itself', () => {
    const outer = new TensorArena();
    const inner = new TensorArena();
    outer.run(() => inner.run(() => cpu.relu(x)));
    expect(inner.stats().buffers).toBe(1);
    expect(outer.stats().buffers).toBe(0);
    expect(() => outer.run(() => outer.run(() => 0))).toThrow(ShuffleArgumentError);
    expect(() => outer.run(() => outer.run(() => 0))).toThrow(/^TensorArena\.run: this expects an arena that is not already running/);
  });

  it('refuses an async fn, whose results after its first await would silently be fresh memory', async () => {
    const arena = new TensorArena();
    const promise = Promise.resolve();
    expect(() => arena.run(() => promise)).toThrow(
      /^TensorArena\.run: fn expects a synchronous function \(the arena serves only until fn returns\), got a function that returned a promise$/,
    );
    await promise;
    // The arena is usable afterwards.
    expect(arena.run(() => cpu.relu(x)).shape).toEqual(x.shape);
  });
});
