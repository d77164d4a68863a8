import { describe, fail, Tensor } from '@shuffle/core';

/*
 * The safetensors format (https://github.com/huggingface/safetensors), on plain bytes:
 *
 *   8 bytes   N, the header length, an unsigned 64-bit little-endian integer
 *   N bytes   a UTF-8 JSON object: { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ...,
 *             "__metadata__"?: { "<key>": "<string value>" } }, possibly padded at the end with spaces
 *   the rest  the byte buffer: tensor `name` is bytes [begin, end) of it, little-endian, row-major
 *
 * A valid file's tensors tile the buffer exactly: sorted by offset, each begins where the previous one
 * ended, the first at 0, the last ending at the end of the file. That rules out overlaps, gaps and
 * trailing bytes at once. This module works on Uint8Array only; reading and writing files is the
 * Node adapter's job (files.ts).
 */

/** Bytes per element of each dtype the format defines (the sub-byte float formats are not supported). */
export const SAFETENSORS_DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPE_SIZES;

/** The dtypes that convert to a Tensor. */
export const FLOAT_DTYPES: readonly SafetensorsDType[] = ['F64', 'F32', 'F16', 'BF16'];

/** One tensor of a file: its header entry and a view of its bytes (no copy). */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

export interface SafetensorsFile {
  /** In header order. */
  readonly entries: readonly SafetensorsEntry[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** Something to write: raw bytes with a dtype, or a Tensor (written as F32 or F64 in logical row-major order). */
export type SafetensorsInput = Tensor | { readonly dtype: SafetensorsDType; readonly shape: readonly number[]; readonly bytes: Uint8Array };

const OP = 'parseSafetensors';
/** The reference implementation refuses headers above 100 MB; so do we, before allocating anything. */
const MAX_HEADER_BYTES = 100_000_000;

/**
 * Parses and validates a whole safetensors file. Throws a ShuffleArgumentError naming what is wrong
 * (truncated, header not JSON, unknown dtype, a size that disagrees with the shape, offsets that overlap,
 * leave gaps or run past the end) before returning anything.
 */
export function parseSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (!(bytes instanceof Uint8Array)) fail(OP, 'bytes', 'a Uint8Array', bytes);
  if (bytes.length < 8) fail(OP, 'bytes', 'at least 8 bytes (the header length); the file is truncated', `${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    fail(
      OP,
      'header length',
      `at most the ${bytes.length - 8} bytes after it; the file is truncated or not safetensors`,
      String(headerLength),
    );
  }
  const n = Number(headerLength);
  if (n > MAX_HEADER_BYTES) fail(OP, 'header length', `at most ${MAX_HEADER_BYTES} bytes`, n);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    return fail(OP, 'header', 'UTF-8 text', 'invalid UTF-8');
  }
  if (!text.startsWith('{')) fail(OP, 'header', "a JSON object starting with '{'", JSON.stringify(text.slice(0, 20)));
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    return fail(OP, 'header', 'valid JSON', `${(error as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(OP, 'header', 'a JSON object', text.slice(0, 40));

  const bufferStart = 8 + n;
  const bufferLength = bytes.length - bufferStart;
  let metadata: Record<string, string> = {};
  const parsed: { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(OP, info);
      continue;
    }
    const where = `header[${JSON.stringify(name)}]`;
    if (info === null || typeof info !== 'object' || Array.isArray(info)) fail(OP, where, 'an object { dtype, shape, data_offsets }', info);
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.hasOwn(SAFETENSORS_DTYPE_SIZES, dtype)) {
      fail(OP, `${where}.dtype`, `one of ${Object.keys(SAFETENSORS_DTYPE_SIZES).join(', ')}`, JSON.stringify(dtype));
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(OP, `${where}.shape`, 'an array of non-negative integers', shape);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      (offsets[0] as number) > (offsets[1] as number)
    ) {
      fail(OP, `${where}.data_offsets`, '[begin, end] with integers 0 <= begin <= end', offsets);
    }
    const [begin, end] = offsets as [number, number];
    const size = (shape as number[]).reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_SIZES[dtype as SafetensorsDType];
    if (end - begin !== size) {
      fail(OP, `${where}.data_offsets`, `${size} bytes for ${dtype} ${describe(shape)}`, `[${begin}, ${end}] (${end - begin} bytes)`);
    }
    parsed.push({ name, dtype: dtype as SafetensorsDType, shape: shape as number[], begin, end });
  }

  // The tensors must tile [0, bufferLength) exactly.
  const byOffset = [...parsed].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const entry of byOffset) {
    if (entry.begin !== covered) {
      const why = entry.begin < covered ? 'overlaps the tensor before it' : 'leaves a gap after the tensor before it';
      fail(
        OP,
        `header[${JSON.stringify(entry.name)}].data_offsets`,
        `to begin at byte ${covered}`,
        `[${entry.begin}, ${entry.end}], which ${why}`,
      );
    }
    covered = entry.end;
  }
  if (covered !== bufferLength) {
    const why = covered > bufferLength ? 'the file is truncated' : 'bytes after the last tensor belong to none';
    fail(OP, 'bytes', `a data buffer of ${covered} bytes after the header (what the offsets cover)`, `${bufferLength} bytes: ${why}`);
  }
  const entries = parsed.map(({ name, dtype, shape, begin, end }) => ({
    name,
    dtype,
    shape,
    bytes: bytes.subarray(bufferStart + begin, bufferStart + end),
  }));
  return { entries, metadata };
}

/**
 * The tensor of a float entry (F32, F64, F16, BF16), as a new NCHW tensor: float64 for F64, float32
 * for the rest. Any other dtype throws.
 */
export function entryToTensor(entry: SafetensorsEntry): Tensor {
  const op = 'entryToTensor';
  const { dtype, shape, bytes } = entry;
  if (!FLOAT_DTYPES.includes(dtype)) fail(op, `${entry.name}.dtype`, `a float dtype (${FLOAT_DTYPES.join(', ')})`, dtype);
  const count = bytes.length / SAFETENSORS_DTYPE_SIZES[dtype];
  // The buffer may start at any byte (the header length is arbitrary), so read through a DataView
  // rather than aliasing a typed array, which also fixes the byte order to little-endian.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = dtype === 'F64' ? new Float64Array(count) : new Float32Array(count);
  for (let i = 0; i < count; i++) {
    if (dtype === 'F64') data[i] = view.getFloat64(8 * i, true);
    else if (dtype === 'F32') data[i] = view.getFloat32(4 * i, true);
    else if (dtype === 'F16') data[i] = halfToNumber(view.getUint16(2 * i, true));
    else data[i] = bfloat16ToNumber(view.getUint16(2 * i, true));
  }
  return new Tensor(data, shape);
}

/**
 * Writes a safetensors file. Tensors are stored in the given order, each in its logical row-major order
 * (a 4-D NHWC tensor is converted to NCHW), float32 as F32 and float64 as F64. The header is padded with
 * spaces to a multiple of 8 bytes so that every tensor of 8-byte elements starts aligned, as the
 * reference writer does.
 */
export function serializeSafetensors(
  tensors: Readonly<Record<string, SafetensorsInput>>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const op = 'serializeSafetensors';
  if (tensors === null || typeof tensors !== 'object') fail(op, 'tensors', 'an object mapping names to tensors', tensors);
  checkMetadata(op, metadata);
  // No prototype, so a tensor named __proto__ is stored like any other name.
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, input] of Object.entries(tensors)) {
    if (name === '__metadata__') fail(op, 'tensors', 'names other than __metadata__ (reserved by the format)', name);
    const { dtype, shape, bytes } = input instanceof Tensor ? tensorBytes(input) : checkRaw(op, name, input);
    header[name] = { dtype, shape: [...shape], data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const encoder = new TextEncoder();
  let headerBytes = encoder.encode(json);
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  json += ' '.repeat(padded - headerBytes.length);
  headerBytes = encoder.encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const chunk of chunks) {
    out.set(chunk, position);
    position += chunk.length;
  }
  return out;
}

function tensorBytes(t: Tensor): { dtype: SafetensorsDType; shape: readonly number[]; bytes: Uint8Array } {
  const logical = t.toLayout('NCHW').data;
  const width = t.dtype === 'float64' ? 8 : 4;
  const bytes = new Uint8Array(logical.length * width);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < logical.length; i++) {
    if (width === 8) view.setFloat64(8 * i, logical[i] as number, true);
    else view.setFloat32(4 * i, logical[i] as number, true);
  }
  return { dtype: width === 8 ? 'F64' : 'F32', shape: t.shape, bytes };
}

function checkRaw(op: string, name: string, input: unknown): { dtype: SafetensorsDType; shape: readonly number[]; bytes: Uint8Array } {
  const where = `tensors[${JSON.stringify(name)}]`;
  if (input === null || typeof input !== 'object') fail(op, where, 'a Tensor or { dtype, shape, bytes }', input);
  const { dtype, shape, bytes } = input as Record<string, unknown>;
  if (typeof dtype !== 'string' || !Object.hasOwn(SAFETENSORS_DTYPE_SIZES, dtype)) {
    fail(op, `${where}.dtype`, `one of ${Object.keys(SAFETENSORS_DTYPE_SIZES).join(', ')}`, JSON.stringify(dtype));
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(op, `${where}.shape`, 'an array of non-negative integers', shape);
  }
  if (!(bytes instanceof Uint8Array)) fail(op, `${where}.bytes`, 'a Uint8Array', bytes);
  const size = (shape as number[]).reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_SIZES[dtype as SafetensorsDType];
  if (bytes.length !== size) fail(op, `${where}.bytes`, `${size} bytes for ${dtype} ${describe(shape)}`, `${bytes.length}`);
  return { dtype: dtype as SafetensorsDType, shape: shape as number[], bytes };
}

function checkMetadata(op: string, metadata: unknown): Record<string, string> {
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    fail(op, '__metadata__', 'an object of string values', metadata);
  }
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') fail(op, `__metadata__[${JSON.stringify(key)}]`, 'a string', JSON.stringify(value));
  }
  return { ...(metadata as Record<string, string>) };
}

/** IEEE 754 binary16: 1 sign bit, 5 exponent bits (bias 15), 10 fraction bits. */
function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24; // subnormal: 0.fraction * 2^-14
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** bfloat16 is the top half of a float32. */
function bfloat16ToNumber(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits << 16);
  return view.getFloat32(0);
}
