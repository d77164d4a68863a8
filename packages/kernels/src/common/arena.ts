import { fail } from '@shuffle/core';

/*
 * Where the cpu kernels' results live. Outside an arena every result is fresh memory, as the contract
 * says ("return fresh tensors"). A network calls the same ops with the same shapes over and over, and on
 * this kind of machine a fresh multi-megabyte Float32Array is not free: the allocator hands it out as new
 * pages (mmap), and touching them costs a page fault each, then the garbage collector frees them again. A
 * ShuffleNet forward at 224x224, batch 1, makes ~140 results (13 MB in all).
 *
 * An arena recycles them. Inside `arena.run(fn)`, the n-th result any cpu kernel asks for is the n-th
 * buffer the arena handed out on its previous run, when that one has the same type and length, and a
 * new one (kept for next time) otherwise. A fixed network with a fixed input shape asks for the same
 * sequence every time, so after the first run it allocates nothing. The price is lifetime: what a run
 * returns is valid until the next run of the same arena, which overwrites it. The models run their
 * forward and backward in arenas of their own and copy out what they hand to their caller.
 */

type Kind = 'f32' | 'f64' | 'i32';
type Buffer = Float32Array | Float64Array | Int32Array;
const CONSTRUCTORS = { f32: Float32Array, f64: Float64Array, i32: Int32Array } as const;

export interface TensorArenaStats {
  /** Buffers held (one per result of a run). */
  buffers: number;
  /** Their total size. */
  bytes: number;
  /** Buffers the arena had to allocate: on the first run, or when a run's sequence of results changed. */
  allocations: number;
}

export interface TensorArenaOptions {
  /**
   * Fill every buffer handed out for a result that its kernel promises to write in full with NaN first
   * (default false). For tests and debugging: a kernel that reads or leaves an element it should have
   * written then shows it as a NaN instead of as a stale value from an earlier run.
   */
  poison?: boolean;
}

/**
 * Recycles the memory of the cpu kernels' results from one run of a fixed computation to the next.
 * Results made inside `run` are valid until the next `run` of the same arena, which overwrites them: so
 * never feed a run's result into the next run of the same arena (`state = arena.run(() => step(state))`
 * lets a kernel overwrite its own input); copy it out first (`.clone()`), as the models do.
 */
export class TensorArena {
  private readonly buffers: Buffer[] = [];
  private readonly poison: boolean;
  private cursor = 0;
  private running = false;
  private allocations = 0;

  constructor(options: TensorArenaOptions = {}) {
    this.poison = options.poison === true;
  }

  /**
   * Runs `fn` with every cpu kernel result drawn from this arena, in call order. `fn` must be synchronous:
   * the arena is active only until it returns, so whatever an async function computed after its first
   * await would silently be fresh memory.
   */
  run<T>(fn: () => T): T {
    if (this.running)
      fail('TensorArena.run', 'this', 'an arena that is not already running (no nested run of the same arena)', 'a nested run');
    if (typeof fn !== 'function') fail('TensorArena.run', 'fn', 'a function', fn);
    this.running = true;
    this.cursor = 0;
    active.push(this);
    let result: T;
    try {
      result = fn();
    } finally {
      active.pop();
      this.running = false;
    }
    if (typeof (result as { then?: unknown } | null)?.then === 'function') {
      fail(
        'TensorArena.run',
        'fn',
        'a synchronous function (the arena serves only until fn returns)',
        'a function that returned a promise',
      );
    }
    return result;
  }

  stats(): TensorArenaStats {
    return { buffers: this.buffers.length, bytes: this.buffers.reduce((sum, b) => sum + b.byteLength, 0), allocations: this.allocations };
  }

  /** Frees every buffer (the next run allocates afresh). */
  clear(): void {
    if (this.running) fail('TensorArena.clear', 'this', 'an arena that is not running', 'a running arena');
    this.buffers.length = 0;
  }

  /** The next result's buffer: the previous run's at this position if it fits exactly, else a new one. */
  take<K extends Kind>(kind: K, length: number): InstanceType<(typeof CONSTRUCTORS)[K]> {
    const position = this.cursor++;
    let buffer = this.buffers[position] as InstanceType<(typeof CONSTRUCTORS)[K]> | undefined;
    if (buffer === undefined || buffer.length !== length || !(buffer instanceof CONSTRUCTORS[kind])) {
      this.allocations++;
      buffer = new CONSTRUCTORS[kind](length) as InstanceType<(typeof CONSTRUCTORS)[K]>;
      this.buffers[position] = buffer;
    }
    // NaN as an int32 is 0, not a poison: int results get -1, never a valid index.
    if (this.poison) buffer.fill(kind === 'i32' ? -1 : Number.NaN);
    return buffer;
  }
}

/** The arenas whose run is in progress, innermost last. */
const active: TensorArena[] = [];

function resultBuffer<K extends Kind>(kind: K, length: number, zeroed: boolean): InstanceType<(typeof CONSTRUCTORS)[K]> {
  const arena = active[active.length - 1];
  if (arena === undefined) return new CONSTRUCTORS[kind](length) as InstanceType<(typeof CONSTRUCTORS)[K]>;
  const buffer = arena.take(kind, length);
  if (zeroed) buffer.fill(0);
  return buffer;
}

/**
 * Memory for a kernel result of `length` floats that the kernel writes in full. Its contents are
 * unspecified (a recycled buffer keeps the previous run's values), so only a kernel that stores every
 * element may use it; one that accumulates or scatters takes zeroedF32.
 */
export function resultF32(length: number): Float32Array {
  return resultBuffer('f32', length, false);
}

/** Memory for a kernel result of `length` floats, all 0. */
export function zeroedF32(length: number): Float32Array {
  return resultBuffer('f32', length, true);
}

/** A result of float64 values written in full (batch norm's saved statistics). */
export function resultF64(length: number): Float64Array {
  return resultBuffer('f64', length, false);
}

/** A float32 result holding a copy of `source` (its length, every element written). */
export function resultCopyF32(source: ArrayLike<number>): Float32Array {
  const copy = resultF32(source.length);
  copy.set(source);
  return copy;
}

/** A float64 result holding a copy of `source`. */
export function resultCopyF64(source: ArrayLike<number>): Float64Array {
  const copy = resultF64(source.length);
  copy.set(source);
  return copy;
}

/** A result of int32 values written in full (max pooling's argmax). */
export function resultI32(length: number): Int32Array {
  return resultBuffer('i32', length, false);
}
