import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, tensor } from '@shuffle/core';
import { reference } from '@shuffle/kernels';
import {
  entryToTensor,
  loadWeights,
  loadWeightsFile,
  parseSafetensors,
  saveWeights,
  saveWeightsFile,
  serializeSafetensors,
  shuffleNetV1,
  type WeightsHolder,
} from '@shuffle/models';
import { afterAll, describe, expect, it } from 'vitest';

/*
 * Files here are built byte by byte by the helpers below, independently of serializeSafetensors, so
 * the reader is checked against the format itself rather than against our writer.
 */

interface RawEntry {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A safetensors file: u64 LE header length, the JSON header (+ `padding` spaces), the tensors back to back. */
function buildFile(
  entries: Record<string, RawEntry>,
  { padding = 0, metadata }: { padding?: number; metadata?: Record<string, string> } = {},
) {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, { dtype, shape, bytes }] of Object.entries(entries)) {
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
  }
  return assemble(
    JSON.stringify(header) + ' '.repeat(padding),
    Object.values(entries).map((e) => e.bytes),
  );
}

function assemble(headerText: string, chunks: Uint8Array[]): Uint8Array {
  const header = new TextEncoder().encode(headerText);
  const size = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(8 + header.length + size);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  let at = 8 + header.length;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function f32(values: number[]): Uint8Array {
  const bytes = new Uint8Array(4 * values.length);
  const view = new DataView(bytes.buffer);
  for (const [i, v] of values.entries()) view.setFloat32(4 * i, v, true);
  return bytes;
}

function i64(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigInt64(0, BigInt(value), true);
  return bytes;
}

function u16(values: number[]): Uint8Array {
  const bytes = new Uint8Array(2 * values.length);
  const view = new DataView(bytes.buffer);
  for (const [i, v] of values.entries()) view.setUint16(2 * i, v, true);
  return bytes;
}

/** A small holder with two parameters and one buffer, to test the checks quickly. */
function tinyHolder(): WeightsHolder & { snapshot(): number[][] } {
  const conv = {
    name: 'conv.weight',
    kind: 'conv' as const,
    value: tensor([1, 2, 3, 4, 5, 6], [3, 2, 1, 1]),
    grad: tensor([0, 0, 0, 0, 0, 0], [3, 2, 1, 1]),
  };
  const gamma = { name: 'bn.weight', kind: 'batchnorm' as const, value: tensor([1, 1, 1], [3]), grad: tensor([0, 0, 0], [3]) };
  const mean = { name: 'bn.running_mean', value: tensor([0, 0, 0], [3]) };
  return {
    parameters: () => [conv, gamma],
    buffers: () => [mean],
    snapshot: () => [conv, gamma, mean].map((t) => Array.from(t.value.data)),
  };
}

const tinyFile = (overrides: Record<string, RawEntry | null> = {}) => {
  const entries: Record<string, RawEntry> = {
    'conv.weight': { dtype: 'F32', shape: [3, 2, 1, 1], bytes: f32([10, 20, 30, 40, 50, 60]) },
    'bn.weight': { dtype: 'F32', shape: [3], bytes: f32([7, 8, 9]) },
    'bn.running_mean': { dtype: 'F32', shape: [3], bytes: f32([-1, -2, -3]) },
  };
  for (const [name, entry] of Object.entries(overrides)) {
    if (entry === null) delete entries[name];
    else entries[name] = entry;
  }
  return buildFile(entries);
};

describe('parseSafetensors', () => {
  it('reads names, dtypes, shapes, metadata and bytes, with a space-padded header at an odd offset', () => {
    const file = buildFile(
      {
        a: { dtype: 'F32', shape: [2, 2], bytes: f32([1, -2, 3.5, 1e-8]) },
        'b.num_batches_tracked': { dtype: 'I64', shape: [], bytes: i64(42) },
        c: { dtype: 'F32', shape: [0, 3], bytes: new Uint8Array(0) },
      },
      { padding: 5, metadata: { format: 'pt', note: 'hi' } },
    );
    const parsed = parseSafetensors(file);
    expect(parsed.metadata).toEqual({ format: 'pt', note: 'hi' });
    expect(parsed.entries.map((e) => [e.name, e.dtype, e.shape])).toEqual([
      ['a', 'F32', [2, 2]],
      ['b.num_batches_tracked', 'I64', []],
      ['c', 'F32', [0, 3]],
    ]);
    const a = entryToTensor(parsed.entries[0] as (typeof parsed.entries)[0]);
    expect(a.shape).toEqual([2, 2]);
    expect(a.dtype).toBe('float32');
    expect(Array.from(a.data)).toEqual([1, -2, 3.5, Math.fround(1e-8)]);
  });

  it('decodes F64, F16 and BF16', () => {
    const f64 = new Uint8Array(16);
    new DataView(f64.buffer).setFloat64(0, 0.1, true);
    new DataView(f64.buffer).setFloat64(8, -1e300, true);
    const parsed = parseSafetensors(
      buildFile({
        d: { dtype: 'F64', shape: [2], bytes: f64 },
        // 1, -2, 2^-24 (smallest subnormal), 65504 (largest finite), -0, +infinity
        h: { dtype: 'F16', shape: [6], bytes: u16([0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000, 0x7c00]) },
        // 1, -5, 2^-126
        b: { dtype: 'BF16', shape: [3], bytes: u16([0x3f80, 0xc0a0, 0x0080]) },
      }),
    );
    const [d, h, b] = parsed.entries.map(entryToTensor) as [Tensor, Tensor, Tensor];
    expect(d.dtype).toBe('float64');
    expect(Array.from(d.data)).toEqual([0.1, -1e300]);
    expect(Array.from(h.data)).toEqual([1, -2, 2 ** -24, 65504, -0, Number.POSITIVE_INFINITY]);
    expect(Array.from(b.data)).toEqual([1, -5, 2 ** -126]);
    const counter = parseSafetensors(buildFile({ n: { dtype: 'I64', shape: [], bytes: i64(3) } })).entries[0];
    expect(() => entryToTensor(counter as NonNullable<typeof counter>)).toThrow(
      /entryToTensor: n.dtype expects a float dtype \(F64, F32, F16, BF16\), got I64/,
    );
  });

  it('rejects truncated files', () => {
    const good = tinyFile();
    expect(() => parseSafetensors(good.subarray(0, 5))).toThrow(/bytes expects at least 8 bytes .* truncated, got 5 bytes/);
    expect(() => parseSafetensors(good.subarray(0, 20))).toThrow(
      /parseSafetensors: header length expects at most the 12 bytes after it; the file is truncated/,
    );
    expect(() => parseSafetensors(good.subarray(0, good.length - 1))).toThrow(
      /bytes expects a data buffer of 48 bytes after the header .*, got 47 bytes: the file is truncated/,
    );
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 63n, true);
    expect(() => parseSafetensors(huge)).toThrow(/header length expects at most the 8 bytes after it/);
  });

  it('rejects a header that is not a JSON object', () => {
    expect(() => parseSafetensors(assemble('{"a": {"dtype": "F32",', []))).toThrow(/parseSafetensors: header expects valid JSON, got/);
    expect(() => parseSafetensors(assemble('[1, 2]', []))).toThrow(/header expects a JSON object starting with '\{'/);
    expect(() => parseSafetensors(assemble('   {}', []))).toThrow(/header expects a JSON object starting with '\{'/);
    const badUtf8 = assemble('{}  ', []);
    badUtf8[9] = 0xff;
    expect(() => parseSafetensors(badUtf8)).toThrow(/header expects UTF-8 text, got invalid UTF-8/);
    expect(() => parseSafetensors(assemble('{"__metadata__": {"a": 1}}', []))).toThrow(/__metadata__\["a"\] expects a string, got 1/);
  });

  it('rejects bad entries: unknown dtype, bad shape, bad offsets, a size that disagrees with the shape', () => {
    const one = (info: unknown, bytes = new Uint8Array(8)) => assemble(JSON.stringify({ t: info }), [bytes]);
    expect(() => parseSafetensors(one({ dtype: 'F48', shape: [2], data_offsets: [0, 8] }))).toThrow(
      /header\["t"\].dtype expects one of BOOL, U8, .*F64, got "F48"/,
    );
    expect(() => parseSafetensors(one({ dtype: 'F32', shape: [2.5], data_offsets: [0, 8] }))).toThrow(
      /header\["t"\].shape expects an array of non-negative integers/,
    );
    expect(() => parseSafetensors(one({ dtype: 'F32', shape: [2], data_offsets: [8, 0] }))).toThrow(
      /data_offsets expects \[begin, end\] with integers 0 <= begin <= end/,
    );
    expect(() => parseSafetensors(one({ dtype: 'F32', shape: [2] }))).toThrow(/data_offsets expects \[begin, end\]/);
    expect(() => parseSafetensors(one({ dtype: 'F32', shape: [3], data_offsets: [0, 8] }))).toThrow(
      /header\["t"\].data_offsets expects 12 bytes for F32 \[3\], got \[0, 8\] \(8 bytes\)/,
    );
    expect(() => parseSafetensors(one('nope'))).toThrow(/header\["t"\] expects an object \{ dtype, shape, data_offsets \}/);
  });

  it('rejects offsets that overlap, leave gaps or leave bytes unclaimed', () => {
    const entry = (begin: number, end: number) => ({ dtype: 'F32', shape: [(end - begin) / 4], data_offsets: [begin, end] });
    const overlap = assemble(JSON.stringify({ a: entry(0, 8), b: entry(4, 12) }), [new Uint8Array(12)]);
    expect(() => parseSafetensors(overlap)).toThrow(
      /header\["b"\].data_offsets expects to begin at byte 8, got \[4, 12\], which overlaps the tensor before it/,
    );
    const gap = assemble(JSON.stringify({ a: entry(0, 4), b: entry(8, 12) }), [new Uint8Array(12)]);
    expect(() => parseSafetensors(gap)).toThrow(/header\["b"\].data_offsets expects to begin at byte 4, got \[8, 12\], which leaves a gap/);
    const notFromZero = assemble(JSON.stringify({ a: entry(4, 8) }), [new Uint8Array(8)]);
    expect(() => parseSafetensors(notFromZero)).toThrow(/expects to begin at byte 0/);
    const trailing = assemble(JSON.stringify({ a: entry(0, 4) }), [new Uint8Array(6)]);
    expect(() => parseSafetensors(trailing)).toThrow(
      /bytes expects a data buffer of 4 bytes .*, got 6 bytes: bytes after the last tensor belong to none/,
    );
  });
});

describe('serializeSafetensors', () => {
  it('writes what the format says: u64 length, a JSON header padded to 8 bytes, little-endian row-major data', () => {
    const nhwc = new Tensor(Float32Array.from([1, 2, 3, 4]), [1, 2, 1, 2], 'NHWC'); // logical NCHW order 1, 3, 2, 4
    const bytes = serializeSafetensors({ x: nhwc, d: tensor([0.5], [1], 'NCHW', 'float64') }, { format: 'pt' });
    const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(length % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
    expect(header).toEqual({
      __metadata__: { format: 'pt' },
      x: { dtype: 'F32', shape: [1, 2, 1, 2], data_offsets: [0, 16] },
      d: { dtype: 'F64', shape: [1], data_offsets: [16, 24] },
    });
    const view = new DataView(bytes.buffer, 8 + length);
    expect([0, 1, 2, 3].map((i) => view.getFloat32(4 * i, true))).toEqual([1, 3, 2, 4]);
    expect(view.getFloat64(16, true)).toBe(0.5);
    expect(bytes.length).toBe(8 + length + 24);
  });

  it('round-trips raw entries, odd names included', () => {
    const bytes = serializeSafetensors({ __proto__x: { dtype: 'I64', shape: [], bytes: i64(7) }, 'é/ü': tensor([1, 2], [2]) });
    const parsed = parseSafetensors(bytes);
    expect(parsed.entries.map((e) => e.name)).toEqual(['__proto__x', 'é/ü']);
    expect(parsed.metadata).toEqual({});
    expect(() => serializeSafetensors({ __metadata__: tensor([1], [1]) })).toThrow(/names other than __metadata__/);
    expect(() => serializeSafetensors({ a: { dtype: 'F32', shape: [2], bytes: new Uint8Array(4) } })).toThrow(
      /tensors\["a"\].bytes expects 8 bytes for F32 \[2\], got 4/,
    );
  });
});

describe('loadWeights / saveWeights', () => {
  it('copies every tensor in, converting the layout', () => {
    const holder = tinyHolder();
    const result = loadWeights(holder, tinyFile({ 'bn.num_batches_tracked': { dtype: 'I64', shape: [], bytes: i64(100) } }));
    expect(result).toEqual({ loaded: 3, ignored: ['bn.num_batches_tracked'], metadata: {} });
    expect(holder.snapshot()).toEqual([
      [10, 20, 30, 40, 50, 60],
      [7, 8, 9],
      [-1, -2, -3],
    ]);
    // An NHWC parameter receives the same logical values.
    const w = new Tensor(new Float32Array(6), [3, 2, 1, 1], 'NHWC');
    const nhwc = {
      ...holder,
      parameters: () => [{ name: 'conv.weight', kind: 'conv' as const, value: w, grad: w }, ...holder.parameters().slice(1)],
    };
    loadWeights(nhwc, tinyFile());
    expect(w.toArray()).toEqual([10, 20, 30, 40, 50, 60]);
  });

  it('rejects missing, unexpected, mis-shaped and non-float tensors in one message, changing nothing', () => {
    const holder = tinyHolder();
    const before = holder.snapshot();
    const cases: [Uint8Array, RegExp][] = [
      [
        tinyFile({ 'bn.weight': null }),
        /loadWeights: bytes expects a safetensors file with exactly the model's 3 parameters and buffers, got 1 missing: bn.weight$/,
      ],
      [tinyFile({ extra: { dtype: 'F32', shape: [1], bytes: f32([1]) } }), /got 1 unexpected: extra$/],
      [
        tinyFile({ 'bn.weight': { dtype: 'F32', shape: [1, 3], bytes: f32([1, 2, 3]) } }),
        /got 1 with another shape: bn.weight \[1, 3\] \(model \[3\]\)$/,
      ],
      [
        tinyFile({ 'bn.weight': { dtype: 'I32', shape: [3], bytes: new Uint8Array(12) } }),
        /got 1 not in a float dtype \(F64, F32, F16, BF16\): bn.weight I32$/,
      ],
      // A counter with no batch norm beside it, or not an integer, is not a counter.
      [tinyFile({ 'conv.num_batches_tracked': { dtype: 'I64', shape: [], bytes: i64(1) } }), /1 unexpected: conv.num_batches_tracked/],
      [tinyFile({ 'bn.num_batches_tracked': { dtype: 'F32', shape: [], bytes: f32([1]) } }), /1 unexpected: bn.num_batches_tracked/],
      [
        tinyFile({
          'conv.weight': null,
          'bn.weight': { dtype: 'F32', shape: [2], bytes: f32([1, 2]) },
          x: { dtype: 'F32', shape: [], bytes: f32([1]) },
        }),
        /got 1 missing: conv.weight; 1 unexpected: x; 1 with another shape: bn.weight \[2\] \(model \[3\]\)$/,
      ],
      [tinyFile().subarray(0, tinyFile().length - 4), /parseSafetensors: bytes expects a data buffer of 48 bytes .*, got 44 bytes/],
    ];
    for (const [bytes, message] of cases) {
      expect(() => loadWeights(holder, bytes)).toThrow(message);
      expect(holder.snapshot()).toEqual(before);
    }
  });

  it('saveWeights then loadWeights restores a model exactly', () => {
    const options = {
      groups: 2,
      channels: { conv1: 4, stages: [8, 16, 32] },
      repeats: [1, 2, 1],
      numClasses: 5,
      backend: reference,
    } as const;
    const a = shuffleNetV1({ ...options, seed: 1 });
    const b = shuffleNetV1({ ...options, seed: 2 });
    for (const [i, buffer] of a.buffers().entries()) buffer.value.data.fill(i + 0.25);
    const bytes = saveWeights(a);
    expect(parseSafetensors(bytes).metadata).toEqual({ format: 'pt' });
    loadWeights(b, bytes);
    const values = (m: WeightsHolder) => [...m.parameters(), ...m.buffers()].map((t) => [t.name, Array.from(t.value.data)]);
    expect(values(b)).toEqual(values(a));
  });

  describe('files (Node adapter)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shuffle-weights-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('saveWeightsFile / loadWeightsFile round-trip; a missing file says so', async () => {
      const a = tinyHolder();
      loadWeights(a, tinyFile());
      const path = join(dir, 'nested', 'w.safetensors');
      await saveWeightsFile(a, path, { run: 'test' });
      expect(parseSafetensors(new Uint8Array(readFileSync(path))).metadata).toEqual({ run: 'test' });
      const b = tinyHolder();
      expect(await loadWeightsFile(b, path)).toMatchObject({ loaded: 3, metadata: { run: 'test' } });
      expect(b.snapshot()).toEqual(a.snapshot());
      await expect(loadWeightsFile(b, join(dir, 'nope.safetensors'))).rejects.toThrow(
        /loadWeightsFile: path expects a readable file, got .*nope.safetensors \(ENOENT\)/,
      );
    });
  });
});

describe('the official g=3 1.0x checkpoint layout', () => {
  /** The per-layer table of the reference sheet: official keys and shapes. */
  const sheet = JSON.parse(readFileSync(new URL('../../../shared/reference/shufflenet-configs.json', import.meta.url), 'utf8'))[
    'layers_g3_1.0x'
  ] as {
    op: string;
    out_shape: number[];
    weight_shape?: number[];
    megvii_key?: string;
  }[];

  /** The file PyTorch's state_dict of the official model would give: F32 tensors, I64 counters, in module order. */
  function officialFile(): { bytes: Uint8Array; expected: Map<string, number[]> } {
    const entries: Record<string, RawEntry> = {};
    const expected = new Map<string, number[]>();
    let counter = 0;
    const add = (name: string, shape: number[], transform = (v: number) => v) => {
      const size = shape.reduce((a, b) => a * b, 1);
      // Distinct values per tensor, exactly representable in float32.
      const values = Array.from({ length: size }, (_, i) => transform(((counter * 7919 + i * 31) % 2001) / 1024 - 1));
      counter++;
      entries[name] = { dtype: 'F32', shape, bytes: f32(values) };
      expected.set(name, values);
    };
    for (const layer of sheet) {
      const key = layer.megvii_key;
      if (!key) continue;
      if (layer.op === 'conv' || layer.op === 'fc') add(`${key}.weight`, layer.weight_shape as number[]);
      if (layer.op === 'bn') {
        const channels = [layer.out_shape[1] as number];
        add(`${key}.weight`, channels);
        add(`${key}.bias`, channels);
        add(`${key}.running_mean`, channels);
        add(`${key}.running_var`, channels, (v) => v + 1.5);
        entries[`${key}.num_batches_tracked`] = { dtype: 'I64', shape: [], bytes: i64(300000) };
      }
    }
    // An odd header length puts every tensor at an unaligned byte offset.
    return { bytes: buildFile(entries, { padding: 3, metadata: { format: 'pt' } }), expected };
  }

  it('loads unchanged into shuffleNetV1({ groups: 3, width: 1 })', () => {
    const { bytes, expected } = officialFile();
    const model = shuffleNetV1({ groups: 3, width: 1, backend: reference });
    const result = loadWeights(model, bytes);
    expect(result.loaded).toBe(expected.size);
    expect(result.ignored).toHaveLength(49);
    for (const { name, value } of [...model.parameters(), ...model.buffers()]) {
      const want = expected.get(name) as number[];
      const got = value.toArray();
      expect(got.length, name).toBe(want.length);
      const wrong = got.findIndex((v, i) => v !== want[i]);
      expect(wrong, `${name}: first wrong element`).toBe(-1);
    }
    // 1,864,728 trainable values + 24,480 running statistics (the reference sheet's counts).
    const total = [...model.parameters(), ...model.buffers()].reduce((n, t) => n + t.value.size, 0);
    expect(total).toBe(1889208);
  });
});
