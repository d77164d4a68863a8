import { describe, type Layout, shapeSize, stridesOf, Tensor } from '@shuffle/core';

/**
 * Where a device tensor's values live, as the backend that made it knows them: a gpu.js output texture
 * (headlessgl), a WebGPU buffer (webgpu), or a Float32Array (cpu and webasm, whose "device" is JS memory,
 * and every mode before a host upload reaches the device).
 */
export interface DeviceMemory {
  /** Device bytes held (0 before an upload reaches the device). */
  readonly bytes: number;
  /** The values as a gpu.js kernel argument, uploading them first if they are still on the host. */
  argument(): Promise<unknown>;
  /** A fresh host copy of the values, in the tensor's memory order. */
  read(): Promise<Float32Array>;
  /** Releases the device memory; called once. */
  free(): void;
}

/** What a backend keeps to account for its device tensors. */
export interface DeviceTensorOwner {
  readonly name: string;
  /** Reads a tensor's memory back (the backend counts and times reads). */
  read(memory: DeviceMemory): Promise<Float32Array>;
  /** Told once, when the tensor is disposed (by the user, or by the backend's destroy). */
  released(tensor: DeviceTensor): void;
}

interface State {
  owner: DeviceTensorOwner;
  /** Until the last pin goes, after dispose. */
  memory: DeviceMemory | undefined;
  disposed: boolean;
  /** Kernel launches and reads in flight that use the memory (see `pin`). */
  pins: number;
  /** Memory that `replaceMemory` took away while pinned, freed when the last pin goes. */
  retired?: DeviceMemory[];
}

/** A module-private back door, so the backend (not users) can reach a tensor's memory. */
const states = new WeakMap<DeviceTensor, State>();

/**
 * A float32 tensor whose values stay on a gpu backend's device between ops. It has a Tensor's shape
 * (logical [N, C, H, W] for 4-D), layout (the memory order of its values) and dtype, so every op's
 * argument checks apply to it unchanged, but no host `data`: `await read()` copies the values back into
 * a Tensor. Made by `gpu.upload(tensor)` and by the backend's ops; `dispose()` frees the device memory,
 * and the backend's `destroy()` frees whatever is left.
 */
export class DeviceTensor {
  readonly shape: readonly number[];
  readonly layout: Layout;
  readonly dtype = 'float32' as const;
  /** As Tensor.strides: how far the flat memory index moves when logical index d grows by one. */
  readonly strides: readonly number[];

  /** Backends only: a device tensor comes from `gpu.upload` or from an op. */
  constructor(owner: DeviceTensorOwner, shape: readonly number[], layout: Layout, memory: DeviceMemory) {
    this.shape = Object.freeze([...shape]);
    this.layout = shape.length === 4 ? layout : 'NCHW';
    this.strides = Object.freeze(stridesOf(shape, this.layout));
    states.set(this, { owner, memory, disposed: false, pins: 0 });
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return shapeSize(this.shape);
  }

  /** True once disposed (by `dispose()` or by the backend's `destroy()`). */
  get disposed(): boolean {
    return stateOf(this).disposed;
  }

  /** The values, copied back into a host Tensor of the same shape and layout. */
  async read(): Promise<Tensor> {
    const memory = pin(this, 'DeviceTensor.read');
    try {
      const data = await stateOf(this).owner.read(memory);
      if (data.length !== this.size) throw new Error(`DeviceTensor.read: the device returned ${data.length} values for ${this}`);
      return new Tensor(data, this.shape, this.layout);
    } finally {
      unpin(this);
    }
  }

  /**
   * Frees the device memory. Idempotent; the tensor cannot be read or passed to an op afterwards. An op
   * or read already under way keeps the memory until it is done with it.
   */
  dispose(): void {
    const state = stateOf(this);
    if (state.disposed) return;
    state.disposed = true;
    state.owner.released(this);
    if (state.pins === 0) freeMemory(state);
  }

  toString(): string {
    return `DeviceTensor(${describe(this.shape)}, ${this.layout}, ${this.dtype}${this.disposed ? ', disposed' : ''})`;
  }
}

function stateOf(tensor: DeviceTensor): State {
  const state = states.get(tensor);
  if (!state) throw new Error(`a DeviceTensor of shape ${describe(tensor.shape)} that no gpu backend made`);
  return state;
}

function freeMemory(state: State): void {
  state.memory?.free();
  state.memory = undefined;
}

export function isDeviceTensor(x: unknown): x is DeviceTensor {
  return x instanceof DeviceTensor;
}

/** The backend that made `tensor`. */
export function ownerOf(tensor: DeviceTensor): DeviceTensorOwner {
  return stateOf(tensor).owner;
}

/** The memory behind a tensor that is not disposed (undefined once it is). For backends only. */
export function memoryOf(tensor: DeviceTensor): DeviceMemory | undefined {
  const state = stateOf(tensor);
  return state.disposed ? undefined : state.memory;
}

/**
 * Keeps a tensor's memory alive until `unpin`, even through a dispose: the user may dispose an input
 * right after starting an op (`const y = gpu.relu(x); x.dispose()`), and the kernel must still read
 * it, not a freed texture. Throws if the tensor is already disposed.
 */
export function pin(tensor: DeviceTensor, op: string): DeviceMemory {
  const state = stateOf(tensor);
  if (state.disposed || !state.memory) throw new Error(`${op}: ${tensor} was disposed; its values are gone`);
  state.pins++;
  return state.memory;
}

export function unpin(tensor: DeviceTensor): void {
  const state = stateOf(tensor);
  state.pins--;
  if (state.pins > 0) return;
  for (const memory of state.retired ?? []) memory.free();
  state.retired = undefined;
  if (state.disposed) freeMemory(state);
}

/**
 * Gives `target` the values of `source` in place (an op updating a buffer it was handed, as batch norm's
 * running statistics): target takes source's memory, and source is disposed. Target's old memory is
 * freed now, or once the ops in flight that read it are done. A target disposed meanwhile keeps no update.
 */
export function replaceMemory(target: DeviceTensor, source: DeviceTensor): void {
  const from = stateOf(source);
  if (from.owner !== stateOf(target).owner || source.size !== target.size) {
    throw new Error(`replaceMemory: ${source} cannot replace the values of ${target} (another backend or size)`);
  }
  if (from.disposed || !from.memory || from.pins > 0) throw new Error(`replaceMemory: ${source} is disposed or in use`);
  const to = stateOf(target);
  if (to.disposed || !to.memory) {
    source.dispose();
    return;
  }
  const old = to.memory;
  to.memory = from.memory;
  from.memory = undefined;
  source.dispose();
  if (to.pins === 0) old.free();
  else to.retired = [...(to.retired ?? []), old];
}
