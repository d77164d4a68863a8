import type { DeviceMemory } from './device-tensor.js';

/**
 * cpu and webasm: gpu.js kernels take Float32Arrays and return fresh ones (immutable outputs), so JS
 * memory is the device memory. Also every mode's zero-element tensors, which no kernel ever sees.
 */
export class ArrayMemory implements DeviceMemory {
  constructor(private data: Float32Array | undefined) {}

  get bytes(): number {
    return this.data?.byteLength ?? 0;
  }

  async argument(): Promise<unknown> {
    return live(this.data);
  }

  async read(): Promise<Float32Array> {
    return live(this.data).slice();
  }

  free(): void {
    this.data = undefined;
  }
}

/**
 * A gpu.js pipeline output that lives on the device: a GL texture (headlessgl) or a WebGPUBufferResult
 * (webgpu). Both read back with toArray() (webgpu's is async) and are freed with delete(): outputs of
 * immutable kernels are not reclaimed by gpu.js until then.
 */
export interface PipelineOutput {
  toArray(): unknown;
  delete(): void;
}

export class OutputMemory implements DeviceMemory {
  readonly bytes: number;

  constructor(
    private output: PipelineOutput | undefined,
    private readonly size: number,
  ) {
    this.bytes = deviceBytes(output as PipelineOutput, size);
  }

  async argument(): Promise<unknown> {
    return live(this.output);
  }

  async read(): Promise<Float32Array> {
    return flatten(await live(this.output).toArray(), this.size);
  }

  free(): void {
    this.output?.delete();
    this.output = undefined;
  }
}

/**
 * headlessgl and webgpu: an upload waits on the host until a kernel first needs it, then runs the
 * backend's upload kernel once; every later use reads the device copy.
 */
export class UploadMemory implements DeviceMemory {
  private device: OutputMemory | undefined;
  private pending: Promise<OutputMemory> | undefined;
  private freed = false;

  constructor(
    private host: Float32Array | undefined,
    private readonly upload: (data: Float32Array) => Promise<OutputMemory>,
  ) {}

  get bytes(): number {
    return this.device?.bytes ?? 0;
  }

  async argument(): Promise<unknown> {
    this.pending ??= this.upload(live(this.host)).then((device) => {
      if (this.freed) {
        device.free();
        throw new Error('the tensor was disposed while its upload ran');
      }
      this.device = device;
      this.host = undefined;
      return device;
    });
    return (await this.pending).argument();
  }

  async read(): Promise<Float32Array> {
    if (this.device) return this.device.read();
    return live(this.host).slice();
  }

  free(): void {
    this.freed = true;
    this.device?.free();
    this.device = undefined;
    this.host = undefined;
  }
}

function live<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('device memory used after it was freed');
  return value;
}

/** The values of a gpu.js result (one flat Float32Array for a 1-D grid, nested rows for 2-D and 3-D), as one fresh flat array. */
export function flatten(value: unknown, size: number): Float32Array {
  if (value instanceof Float32Array) return value.length === size ? value : value.slice(0, size);
  const out = new Float32Array(size);
  let at = 0;
  const visit = (v: unknown): void => {
    if (v instanceof Float32Array || v instanceof Float64Array) {
      out.set(v, at);
      at += v.length;
    } else if (Array.isArray(v)) v.forEach(visit);
    else throw new Error(`unexpected gpu.js result ${Object.prototype.toString.call(v)}`);
  };
  visit(value);
  if (at !== size) throw new Error(`gpu.js returned ${at} values, expected ${size}`);
  return out;
}

/** Device bytes behind a pipeline output, by what gpu.js allocated: an RGBA float texel per value (GL), or the buffer's size (webgpu). */
function deviceBytes(output: PipelineOutput, size: number): number {
  const texture = output as { size?: unknown };
  if (Array.isArray(texture.size) && texture.size.length === 2) return (texture.size[0] as number) * (texture.size[1] as number) * 16;
  const buffer = (output as { buffer?: { size?: unknown } }).buffer;
  if (buffer && typeof buffer.size === 'number') return buffer.size;
  return size * 4;
}
