import { describe, fail } from './errors.js';

/** Memory order of a 4-D tensor's data. The logical shape is always [N, C, H, W]. */
export type Layout = 'NCHW' | 'NHWC';
export type DType = 'float32' | 'float64';
export type TensorData = Float32Array | Float64Array;

export const LAYOUTS: readonly Layout[] = ['NCHW', 'NHWC'];

/**
 * A dense tensor: a logical shape, a memory layout and one contiguous typed array.
 *
 * A 4-D tensor's `shape` is always [N, C, H, W], whatever its layout; `layout` only says in which order
 * `data` holds the elements (NCHW: w fastest, then h, c, n; NHWC: c fastest, then w, h, n). Every other
 * rank is stored row-major and reports layout 'NCHW'. So code that works on logical indices never
 * needs to know the layout, and code that walks `data` directly reads it from `layout` / `strides`.
 *
 * The constructor takes ownership of `data` (no copy); {@link tensor} copies.
 */
export class Tensor {
  readonly shape: readonly number[];
  readonly layout: Layout;
  readonly dtype: DType;
  readonly data: TensorData;
  /** `strides[d]` is how far `data` moves when logical index d grows by one. */
  readonly strides: readonly number[];

  constructor(data: TensorData, shape: readonly number[], layout: Layout = 'NCHW') {
    const op = 'Tensor';
    if (!(data instanceof Float32Array || data instanceof Float64Array)) {
      fail(op, 'data', 'a Float32Array or Float64Array', data);
    }
    checkShape(op, shape);
    checkLayout(op, layout, shape);
    const size = shapeSize(shape);
    if (data.length !== size) {
      fail(op, 'data', `${size} elements for shape ${describe(shape)}`, `${data.length}`);
    }
    this.shape = Object.freeze([...shape]);
    this.layout = layout;
    this.dtype = data instanceof Float64Array ? 'float64' : 'float32';
    this.data = data;
    this.strides = Object.freeze(stridesOf(shape, layout));
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return this.data.length;
  }

  /** Position in `data` of a logical index (checked). */
  offset(index: readonly number[]): number {
    return this.locate('Tensor.offset', index);
  }

  /** The element at a logical index, e.g. `t.get([n, c, h, w])` in either layout. */
  get(index: readonly number[]): number {
    return this.data[this.locate('Tensor.get', index)] as number;
  }

  set(index: readonly number[], value: number): void {
    this.data[this.locate('Tensor.set', index)] = value;
  }

  /** `offset`, with errors that name the method the caller used. */
  private locate(op: string, index: readonly number[]): number {
    const shape = this.shape;
    if (!Array.isArray(index) || index.length !== shape.length) {
      fail(op, 'index', `an array of ${shape.length} coordinates for shape ${describe(shape)}`, index);
    }
    if (this.size === 0) fail(op, 'index', `an index into a tensor with elements (shape ${describe(shape)} has none)`, index);
    let offset = 0;
    for (let d = 0; d < index.length; d++) {
      const i = index[d] as number;
      const extent = shape[d] as number;
      if (!Number.isInteger(i) || i < 0 || i >= extent) {
        fail(op, `index[${d}]`, `an integer in [0, ${extent - 1}] for shape ${describe(shape)}`, i);
      }
      offset += i * (this.strides[d] as number);
    }
    return offset;
  }

  /** The same logical tensor stored in `layout`; returns `this` when it already is. */
  toLayout(layout: Layout): Tensor {
    checkLayout('Tensor.toLayout', layout, this.shape);
    if (layout === this.layout) return this;
    const [n, c, h, w] = this.shape as [number, number, number, number];
    const out = new (this.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(this.size);
    const src = this.data;
    const toNhwc = layout === 'NHWC';
    // One pass over the NCHW positions; the NHWC position of (n, c, y, x) is ((n*H + y)*W + x)*C + c.
    let nchw = 0;
    for (let b = 0; b < n; b++) {
      for (let ch = 0; ch < c; ch++) {
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++, nchw++) {
            const nhwc = ((b * h + y) * w + x) * c + ch;
            if (toNhwc) out[nhwc] = src[nchw] as number;
            else out[nchw] = src[nhwc] as number;
          }
        }
      }
    }
    return new Tensor(out, this.shape, layout);
  }

  /**
   * A tensor with the same elements in row-major order and a new shape (a copy). Only for tensors whose
   * memory order is their logical order: a 4-D NHWC tensor must be converted with `toLayout('NCHW')`
   * first, so that nobody reshapes channels-last data by accident.
   */
  reshape(shape: readonly number[]): Tensor {
    const op = 'Tensor.reshape';
    checkShape(op, shape);
    if (this.layout !== 'NCHW') {
      fail(op, 'this', 'a tensor in NCHW (row-major) order; call toLayout("NCHW") first', 'an NHWC tensor');
    }
    if (shapeSize(shape) !== this.size) {
      fail(op, 'shape', `${this.size} elements (from ${describe(this.shape)})`, `${describe(shape)} with ${shapeSize(shape)}`);
    }
    return new Tensor(this.data.slice(), shape, 'NCHW');
  }

  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape, this.layout);
  }

  /** A copy with another element type (float64 is for the reference backend's gradient checks). */
  astype(dtype: DType): Tensor {
    checkDType('Tensor.astype', dtype);
    const data = dtype === 'float64' ? Float64Array.from(this.data) : Float32Array.from(this.data);
    return new Tensor(data, this.shape, this.layout);
  }

  /** The elements in logical (row-major NCHW) order. */
  toArray(): number[] {
    return Array.from(this.toLayout('NCHW').data);
  }

  toString(): string {
    return `Tensor(${describe(this.shape)}, ${this.layout}, ${this.dtype})`;
  }
}

export interface TensorOptions {
  layout?: Layout;
  dtype?: DType;
}

/**
 * A new tensor holding a copy of `data`, which is given in `layout` order (default NCHW). The dtype is
 * float64 when `data` is a Float64Array or `dtype` says so, otherwise float32.
 */
export function tensor(
  data: ArrayLike<number>,
  shape: readonly number[],
  layout: Layout = 'NCHW',
  dtype: DType = data instanceof Float64Array ? 'float64' : 'float32',
): Tensor {
  const op = 'tensor';
  checkShape(op, shape);
  checkLayout(op, layout, shape);
  checkDType(op, dtype);
  if (data === null || typeof data !== 'object' || typeof data.length !== 'number') {
    fail(op, 'data', 'an array or typed array of numbers', data);
  }
  const size = shapeSize(shape);
  if (data.length !== size) fail(op, 'data', `${size} elements for shape ${describe(shape)}`, `${data.length}`);
  const copy = dtype === 'float64' ? new Float64Array(size) : new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const v = data[i];
    if (typeof v !== 'number') fail(op, `data[${i}]`, 'a number', v);
    copy[i] = v;
  }
  return new Tensor(copy, shape, layout);
}

export function full(shape: readonly number[], value: number, options: TensorOptions = {}): Tensor {
  return filled('full', shape, value, options);
}

export function zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return empty('zeros', shape, options);
}

export function ones(shape: readonly number[], options: TensorOptions = {}): Tensor {
  return filled('ones', shape, 1, options);
}

/** A zero-filled tensor of the same shape, layout and dtype as `like`. */
export function zerosLike(like: Tensor): Tensor {
  if (!(like instanceof Tensor)) fail('zerosLike', 'like', 'a Tensor', like);
  return new Tensor(like.dtype === 'float64' ? new Float64Array(like.size) : new Float32Array(like.size), like.shape, like.layout);
}

/** Number of elements of a shape (1 for a scalar shape []). */
export function shapeSize(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

/** Row-major strides, or NHWC strides expressed per logical [N, C, H, W] index. */
export function stridesOf(shape: readonly number[], layout: Layout): number[] {
  if (layout === 'NHWC') {
    const [, c, h, w] = shape as [number, number, number, number];
    return [h * w * c, 1, w * c, c];
  }
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = stride;
    stride *= shape[d] as number;
  }
  return strides;
}

/** Throws unless every dimension is a non-negative integer. */
export function checkShape(op: string, shape: unknown): asserts shape is readonly number[] {
  if (!Array.isArray(shape)) fail(op, 'shape', 'an array of non-negative integers', shape);
  shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      fail(op, `shape[${i}]`, 'a non-negative integer', d);
    }
  });
}

/** Throws unless `layout` is a layout that `shape` may have (NHWC only for 4-D shapes). */
export function checkLayout(op: string, layout: unknown, shape: readonly number[]): asserts layout is Layout {
  if (layout !== 'NCHW' && layout !== 'NHWC') fail(op, 'layout', "'NCHW' or 'NHWC'", JSON.stringify(layout));
  if (layout === 'NHWC' && shape.length !== 4) {
    fail(op, 'layout', `'NCHW' (row-major) for a ${shape.length}-D tensor; NHWC applies to 4-D tensors only`, "'NHWC'");
  }
}

export function checkDType(op: string, dtype: unknown): asserts dtype is DType {
  if (dtype !== 'float32' && dtype !== 'float64') fail(op, 'dtype', "'float32' or 'float64'", JSON.stringify(dtype));
}

function filled(op: string, shape: readonly number[], value: number, options: TensorOptions): Tensor {
  checkShape(op, shape);
  if (typeof value !== 'number') fail(op, 'value', 'a number', value);
  const t = empty(op, shape, options);
  t.data.fill(value);
  return t;
}

function empty(op: string, shape: readonly number[], { layout = 'NCHW', dtype = 'float32' }: TensorOptions): Tensor {
  checkShape(op, shape);
  checkLayout(op, layout, shape);
  checkDType(op, dtype);
  const size = shapeSize(shape);
  return new Tensor(dtype === 'float64' ? new Float64Array(size) : new Float32Array(size), shape, layout);
}
