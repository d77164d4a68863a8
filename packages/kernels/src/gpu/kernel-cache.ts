import type { GPU, IKernelRunShortcut, KernelFunction } from 'gpu.js';
import type { GpuMode } from './modes.js';
import type { GpuKernelStats } from './types.js';

/**
 * `this` inside a kernel: the output cell (this.thread.x fastest) and the compile-time constants named C.
 * Kernel arguments are typed `any`: gpu.js passes them as flat arrays, textures or buffers.
 */
export type KernelThis<C extends string = never> = {
  readonly thread: { readonly x: number; readonly y: number; readonly z: number };
  readonly constants: { readonly [K in C]: number };
};

/**
 * A gpu.js kernel, declared once at module level. gpu.js transpiles the function's source text, so it
 * must be a `function` (not an arrow), use no closure variables (helpers go in `functions`), and read
 * only its tensor arguments, `this.thread` and `this.constants`.
 */
export interface GpuKernel {
  /** Unique per source function; names the kernel in stats, errors and the cache key. */
  readonly name: string;
  readonly source: (this: any, ...args: any[]) => number;
  /** Helper functions the kernel calls (gpu.js transpiles them with it). */
  readonly functions?: readonly ((...args: any[]) => number)[];
  /**
   * The kernel reads no size and no constant (elementwise: `x[this.thread.x]`), so one compile can
   * serve every size: gpu.js's dynamicOutput/dynamicArguments make sizes uniforms, and each run sets its
   * output size first. Taken on cpu, webasm and webgpu, where a resized run costs what a fixed one does;
   * headlessgl compiles such a kernel per size all the same, because its resized runs measured 1-6 ms
   * against 0.3 ms (a fresh texture and framebuffer each time).
   */
  readonly anySize?: boolean;
}

export function defineKernel(
  name: string,
  source: GpuKernel['source'],
  options: { functions?: GpuKernel['functions']; anySize?: boolean } = {},
): GpuKernel {
  return { name, source, ...options };
}

/** Every compile-time number a kernel reads: sizes, strides, loop bounds, flags (0/1), scales. */
export type KernelConstants = Readonly<Record<string, number>>;

/** One kernel run: the output grid (at most 3-D, x fastest), its constants, and its arguments. */
export interface KernelCall {
  kernel: GpuKernel;
  grid: readonly number[];
  constants: KernelConstants;
  /** gpu.js arguments: textures, WebGPU buffer results or Float32Arrays. */
  args: readonly unknown[];
  /** Element count of each argument (part of the key, as webasm and webgpu size argument buffers at compile, unless anySize). */
  argSizes: readonly number[];
}

interface Entry extends GpuKernelStats {
  anySize: boolean;
  shortcut: IKernelRunShortcut;
  ready: Promise<void>;
}

/** gpu.js's default loop cap, which it applies silently. */
const GPU_JS_LOOP_MAX = 1000;

/**
 * Compiles each kernel once per (kernel, output grid, argument sizes, constants), or once for all sizes
 * when it is anySize, and keeps it.
 *
 * gpu.js bakes constants and the output size into the compiled kernel: `setConstants` after the first
 * call is silently ignored, and a new size needs `dynamicOutput`. So a kernel is never changed after its
 * first call: a new shape or option is a new key and a new compile. What gpu.js would otherwise get
 * silently wrong is refused or prevented here:
 * - an output grid of more than 3 dimensions (truncated on webasm, headlessgl and webgpu): refused;
 * - a loop gpu.js does not prove bounded by constants (`i < n` with `n = this.constants.a * 40`, or
 *   `i < 2 * this.constants.a`, measured on all four modes) is capped at 1000 iterations: the cap is
 *   raised to the largest argument or output size, which bounds any loop over a tensor axis;
 * - a constant that is not a finite number: refused.
 */
export class KernelCache {
  private readonly entries = new Map<string, Entry>();
  /** The function behind each kernel name: keys use names, so one name must mean one function. */
  private readonly sources = new Map<string, GpuKernel['source']>();
  /** Fixed-size kernels for gpu.js pipelines (see fixedShortcut), by key. */
  private readonly fixed = new Map<string, IKernelRunShortcut>();

  constructor(
    private readonly gpu: GPU,
    readonly mode: GpuMode,
  ) {}

  async run(call: KernelCall): Promise<unknown> {
    const entry = this.entryFor(call);
    await entry.ready;
    const start = performance.now();
    let result: unknown;
    try {
      // No await between resizing and the call: the call reads the size synchronously (on webgpu too,
      // once built), so concurrent runs of one kernel cannot see each other's size.
      if (entry.anySize && !sameGrid(entry.shortcut.output, call.grid)) entry.shortcut.setOutput([...call.grid]);
      result = await entry.shortcut(...(call.args as never[]));
    } catch (error) {
      throw new Error(`gpu kernel '${entry.name}' failed on ${this.mode}: ${(error as Error).message} (key ${entry.key})`, {
        cause: error,
      });
    }
    // Drivers compile lazily: headlessgl's shader is JIT-compiled at its first draw, Dawn creates
    // pipelines at the first dispatch, webasm instantiates its module at the first run. So the first
    // run counts as compile time, and runMs is the steady cost.
    if (entry.runs === 0) entry.compileMs += performance.now() - start;
    else entry.runMs += performance.now() - start;
    entry.runs++;
    return result;
  }

  stats(): GpuKernelStats[] {
    return [...this.entries.values()].map(({ name, key, compileMs, runs, runMs }) => ({ name, key, compileMs, runs, runMs }));
  }

  /** Fixed-size kernels kept for pipelines (one per key, shared by every pipeline that records it, kept until clear()). */
  get fixedKernels(): number {
    return this.fixed.size;
  }

  /**
   * The kernel of `call` at a fixed output size, for a gpu.js pipeline to record: a pipeline stores a
   * kernel's output size once per kernel, so an anySize kernel resized per run would replay every step
   * at its last size. Not built here: the pipeline compiles its own copies of the kernels it records.
   */
  fixedShortcut(call: Omit<KernelCall, 'args'>): IKernelRunShortcut {
    const { kernel, grid, constants, argSizes } = call;
    const key = keyOf(call);
    let shortcut = this.fixed.get(key);
    if (!shortcut) {
      shortcut = this.create(kernel, grid, constants, false);
      shortcut.setLoopMaxIterations(loopMaxFor(grid, argSizes));
      this.fixed.set(key, shortcut);
    }
    return shortcut;
  }

  /** Forgets every kernel; gpu.destroy() releases them. */
  clear(): void {
    this.entries.clear();
    this.sources.clear();
    this.fixed.clear();
  }

  private entryFor({ kernel, grid, constants, args, argSizes }: KernelCall): Entry {
    const known = this.sources.get(kernel.name);
    if (known && known !== kernel.source) throw new Error(`gpu kernel name '${kernel.name}' is used by two different kernel functions`);
    this.sources.set(kernel.name, kernel.source);
    checkGrid(kernel, grid);
    for (const name of Object.keys(constants)) {
      const value = constants[name];
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw new Error(`gpu kernel '${kernel.name}': constant ${name} must be a finite number, got ${String(value)}`);
      }
    }
    if (kernel.anySize && Object.keys(constants).length > 0)
      throw new Error(`gpu kernel '${kernel.name}': an anySize kernel takes no constants, got ${Object.keys(constants).join(', ')}`);
    const anySize = kernel.anySize === true && this.mode !== 'headlessgl';
    // gpu.js compiles for the kinds of its arguments (a Float32Array, a 1-D or 3-D output texture...)
    // and fails on another kind, so the kinds are part of the key too.
    const kinds = args.map(argumentKind).join(',');
    const key = anySize ? `${kernel.name}|any size|${kinds}` : keyOf({ kernel, grid, constants, argSizes }, kinds);
    const cached = this.entries.get(key);
    if (cached) return cached;
    const shortcut = this.create(kernel, grid, constants, anySize);
    shortcut.setLoopMaxIterations(loopMaxFor(grid, argSizes));
    const entry: Entry = { name: kernel.name, key, compileMs: 0, runs: 0, runMs: 0, anySize, shortcut, ready: Promise.resolve() };
    entry.ready = this.build(entry, args);
    this.entries.set(key, entry);
    return entry;
  }

  private create(kernel: GpuKernel, grid: readonly number[], constants: KernelConstants, anySize: boolean): IKernelRunShortcut {
    return this.gpu.createKernel(
      kernel.source as unknown as KernelFunction,
      {
        output: [...grid],
        constants: { ...constants },
        ...(kernel.functions ? { functions: [...kernel.functions] } : {}),
        // Results stay on the device (a texture or buffer) and feed the next kernel; immutable gives
        // every call its own output, so a result stays valid after the kernel runs again.
        pipeline: true,
        immutable: true,
        // headlessgl would otherwise choose lowp/mediump for small textures on GPUs that offer them.
        tactic: 'precision',
        ...(anySize ? { dynamicOutput: true, dynamicArguments: true } : {}),
      } as never,
    );
  }

  /** gpu.js compiles on the first call; building explicitly lets the compile be timed apart from the runs. */
  private async build(entry: Entry, args: readonly unknown[]): Promise<void> {
    const start = performance.now();
    try {
      const kernel = entry.shortcut.kernel as unknown as { build(...args: unknown[]): unknown };
      await kernel.build(...args);
    } catch (error) {
      this.entries.delete(entry.key);
      throw new Error(`gpu kernel '${entry.name}' failed to compile on ${this.mode}: ${(error as Error).message} (key ${entry.key})`, {
        cause: error,
      });
    } finally {
      entry.compileMs += performance.now() - start;
    }
  }
}

/**
 * A fixed-size kernel's key: name, output grid, argument sizes, the argument kinds where known (a
 * pipeline's copies are compiled by gpu.js for its own arguments, so fixedShortcut leaves them out), and
 * the constants in name order.
 */
function keyOf({ kernel, grid, constants, argSizes }: Omit<KernelCall, 'args'>, kinds?: string): string {
  const named = Object.keys(constants)
    .sort()
    .map((n) => `${n}=${constants[n]}`)
    .join(',');
  return [kernel.name, grid.join('x'), argSizes.join(','), ...(kinds === undefined ? [] : [kinds]), named].join('|');
}

/** The loop cap: the largest argument or output size, which bounds any loop over a tensor axis (see KernelCache). */
function loopMaxFor(grid: readonly number[], argSizes: readonly number[]): number {
  return Math.max(
    GPU_JS_LOOP_MAX,
    ...grid,
    ...argSizes,
    grid.reduce((a, b) => a * b, 1),
  );
}

function sameGrid(current: unknown, grid: readonly number[]): boolean {
  return Array.isArray(current) && current.length === grid.length && grid.every((d, i) => current[i] === d);
}

/** What gpu.js compiles an argument as: its class, and the grid rank of a pipeline output. */
function argumentKind(arg: unknown): string {
  const name = (arg as { constructor?: { name?: string } })?.constructor?.name ?? typeof arg;
  const output = (arg as { output?: unknown }).output;
  return Array.isArray(output) ? `${name}/${output.length}` : name;
}

function checkGrid(kernel: GpuKernel, grid: readonly number[]): void {
  if (grid.length < 1 || grid.length > 3) {
    throw new Error(
      `gpu kernel '${kernel.name}': an output grid has 1 to 3 dimensions (gpu.js silently truncates a 4-D output on webasm, headlessgl and webgpu), got [${grid.join(', ')}]`,
    );
  }
  if (!grid.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new Error(`gpu kernel '${kernel.name}': output grid dimensions must be positive integers, got [${grid.join(', ')}]`);
  }
}
