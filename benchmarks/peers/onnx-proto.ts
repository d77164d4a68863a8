/**
 * A small ONNX ModelProto writer: just the protobuf messages a float32 inference graph needs, encoded by
 * hand, so that no protobuf library is needed to feed onnxruntime-node.
 *
 * Protobuf wire format in brief: a message is a sequence of fields; each field starts with a varint key
 * (fieldNumber << 3 | wireType); wire type 0 is a varint, 5 a little-endian 32-bit value, 2 a varint
 * length followed by that many bytes (strings, bytes, nested messages, packed arrays). Field numbers
 * below are onnx.proto's (onnx/onnx, IR version 8).
 */

const VARINT = 0;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

const encoder = new TextEncoder();

/** Accumulates one protobuf message. Nested messages are encoded on their own, then written as bytes. */
export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  /** Unsigned LEB128; negative int64 values take 10 bytes (two's complement), as protobuf requires. */
  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const bytes: number[] = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      bytes.push(byte);
    } while (v !== 0n);
    this.push(Uint8Array.from(bytes));
  }

  private key(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number): this {
    if (!Number.isSafeInteger(value)) throw new Error(`ProtoWriter.int: field ${field} expects a safe integer, got ${value}`);
    this.key(field, VARINT);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.key(field, FIXED32);
    this.push(bytes);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, LENGTH_DELIMITED);
    this.varint(value.length);
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, encoder.encode(value));
  }

  message(field: number, value: ProtoWriter): this {
    return this.bytes(field, value.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

/** TensorProto.DataType values used here. */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;

export type AttributeValue = number | readonly number[] | string | { float: number } | { floats: readonly number[] };

/** AttributeProto.AttributeType */
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_STRING = 3;
const ATTRIBUTE_FLOATS = 6;
const ATTRIBUTE_INTS = 7;

/** AttributeProto: name 1, f 2, i 3, s 4, floats 7, ints 8, type 20. Plain numbers are INTs. */
function attribute(name: string, value: AttributeValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if (typeof value === 'number') return w.int(3, value).int(20, ATTRIBUTE_INT);
  if (typeof value === 'string') return w.string(4, value).int(20, ATTRIBUTE_STRING);
  if (Array.isArray(value)) {
    for (const v of value as readonly number[]) w.int(8, v);
    return w.int(20, ATTRIBUTE_INTS);
  }
  if ('float' in (value as object)) return w.float(2, (value as { float: number }).float).int(20, ATTRIBUTE_FLOAT);
  for (const v of (value as { floats: readonly number[] }).floats) w.float(7, v);
  return w.int(20, ATTRIBUTE_FLOATS);
}

/** TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian values). */
function tensorProto(name: string, dims: readonly number[], data: Float32Array | BigInt64Array): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of dims) w.int(1, d);
  w.int(2, data instanceof Float32Array ? ONNX_FLOAT : ONNX_INT64);
  w.string(8, name);
  // Typed arrays are little-endian on every platform Node runs on (x86, arm64), as raw_data requires.
  return w.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

/** ValueInfoProto { name 1, type 2: TypeProto { tensor_type 1: { elem_type 1, shape 2: { dim 1: { dim_value 1 } } } } } */
function valueInfo(name: string, dims: readonly number[], elemType = ONNX_FLOAT): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) shape.message(1, new ProtoWriter().int(1, d));
  const tensorType = new ProtoWriter().int(1, elemType).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}

interface NodeSpec {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes: Record<string, AttributeValue>;
  name: string;
}

/**
 * Builds one graph. Values are named by strings; `node` returns its first output's name so graphs read
 * like straight-line code: `const y = g.node('Relu', [x])`.
 */
export class OnnxGraph {
  private readonly nodes: NodeSpec[] = [];
  private readonly initializers: ProtoWriter[] = [];
  private readonly inputs: ProtoWriter[] = [];
  private readonly outputs: ProtoWriter[] = [];
  private counter = 0;

  constructor(readonly name = 'graph') {}

  fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  input(name: string, dims: readonly number[]): string {
    this.inputs.push(valueInfo(name, dims));
    return name;
  }

  output(name: string, dims: readonly number[]): void {
    this.outputs.push(valueInfo(name, dims));
  }

  /** A float32 constant; its values are copied into the model. */
  constant(name: string, dims: readonly number[], data: Float32Array): string {
    this.initializers.push(tensorProto(name, dims, data));
    return name;
  }

  /** An int64 constant (shapes for Reshape, axes). */
  int64(name: string, values: readonly number[]): string {
    this.initializers.push(tensorProto(name, [values.length], BigInt64Array.from(values.map((v) => BigInt(v)))));
    return name;
  }

  node(op: string, inputs: readonly string[], attributes: Record<string, AttributeValue> = {}, output?: string): string {
    const out = output ?? this.fresh(op.toLowerCase());
    this.nodes.push({ op, inputs, outputs: [out], attributes, name: this.fresh(`n_${op}`) });
    return out;
  }

  /** NodeProto: input 1, output 2, name 3, op_type 4, attribute 5. GraphProto: node 1, name 2, initializer 5, input 11, output 12. */
  encode(): ProtoWriter {
    const g = new ProtoWriter();
    for (const n of this.nodes) {
      const w = new ProtoWriter();
      for (const i of n.inputs) w.string(1, i);
      for (const o of n.outputs) w.string(2, o);
      w.string(3, n.name).string(4, n.op);
      for (const [key, value] of Object.entries(n.attributes)) w.message(5, attribute(key, value));
      g.message(1, w);
    }
    g.string(2, this.name);
    for (const t of this.initializers) g.message(5, t);
    for (const i of this.inputs) g.message(11, i);
    for (const o of this.outputs) g.message(12, o);
    return g;
  }
}

export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;

/** ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 ({ domain 1, version 2 }). */
export function encodeModel(graph: OnnxGraph, producer = 'shuffle-benchmarks'): Uint8Array {
  return new ProtoWriter()
    .int(1, ONNX_IR_VERSION)
    .string(2, producer)
    .message(7, graph.encode())
    .message(8, new ProtoWriter().string(1, '').int(2, ONNX_OPSET))
    .finish();
}
