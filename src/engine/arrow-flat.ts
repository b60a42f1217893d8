/**
 * Loading a stored record batch whose columns are all flat (fixed-width
 * numbers, bool, timestamps, UTF-8 and binary) without Arrow's Message and
 * VectorLoader: the batch message's flatbuffer is read here (length, field
 * nodes, buffer regions), and each column's Data is built when asked for,
 * over its buffers in place.
 *
 * Why: reading one entity's 20,000 records from 2,000 frames (bench:audit,
 * reconstruct, target <= 20 ms) was mostly decoding frames, and of that
 * VectorLoader's visitor dispatch and buffer copies were 56%, then Arrow's
 * message objects (a FieldNode and a BufferRegion per node and buffer, each
 * number converted from a bigint) about a third of what was left. The Data
 * built is what VectorLoader builds for these types (same buffers, null
 * count, an empty bitmap when there are no nulls); test/unit/codec.test.ts
 * checks it against Arrow's public reader. Anything else (another message,
 * compression, a nested column, a buffer outside the body) returns undefined
 * and Arrow's own reader takes it.
 *
 * Flatbuffer layout read (format/Message.fbs, Schema.fbs): a root table
 * Message { version: short, header_type: ubyte, header: table, bodyLength:
 * long, custom_metadata }, header_type 3 = RecordBatch { length: long, nodes:
 * [FieldNode { length: long, null_count: long }], buffers: [Buffer { offset:
 * long, length: long }], compression: table, variadicBufferCounts }.
 */
import * as A from 'apache-arrow';
import type { StoredBatch } from './arrow-decode.js';

/** Whether a stream's last message ends at `end`: nothing after it, or the end-of-stream marker. */
export function endsStream(bytes: Uint8Array, end: number): boolean {
  // The marker's length (int32 at end + 4) is zero: its four bytes read as they are, no DataView made (this runs once a frame).
  return end === bytes.length || (end + 8 === bytes.length && (bytes[end + 4] | bytes[end + 5] | bytes[end + 6] | bytes[end + 7]) === 0);
}

/**
 * The record batch whose message metadata is `meta` and whose body starts at
 * `bodyAt` in `bytes` (the whole stream, 8-byte aligned), when `schema` is
 * flat and the batch is one this reads; undefined otherwise.
 */
export function loadFlat(schema: A.Schema, meta: Uint8Array, bytes: Uint8Array, bodyAt: number): StoredBatch | undefined {
  const layout = flatLayout(schema);
  if (!layout) return undefined;
  const h = readBatchHeader(meta);
  if (!h || h.nodes.length !== 2 * layout.first.length || h.buffers.length !== 2 * layout.buffers) return undefined;
  const end = bodyAt + h.bodyLength;
  if (end > bytes.length || !endsStream(bytes, end)) return undefined;
  for (let i = 0; i < h.buffers.length; i += 2) if (h.buffers[i] + h.buffers[i + 1] > h.bodyLength) return undefined;
  return new FlatBatch(schema, layout, h, bytes, bodyAt);
}

/**
 * A loaded flat batch. A class, not an object of closures: a key read loads
 * one per frame (2,000 for one entity's history in bench:audit), and the
 * closures and the per-call name search were a good part of that.
 */
class FlatBatch implements StoredBatch {
  readonly numRows: number;
  private built?: (A.Data | undefined)[];

  constructor(
    private readonly schema: A.Schema,
    private readonly layout: FlatLayout,
    private readonly h: BatchHeader,
    private readonly bytes: Uint8Array,
    private readonly bodyAt: number,
  ) {
    this.numRows = h.length;
  }

  column(name: string): A.Data | undefined {
    const i = this.layout.index.get(name);
    if (i === undefined) return undefined;
    const built = (this.built ??= new Array(this.layout.first.length));
    if (built[i]) return built[i];
    const type = this.schema.fields[i].type;
    const f = flatColumn(type, this.h, i, this.layout.first[i], this.bytes, this.bodyAt);
    return (built[i] = new A.Data(type, 0, f.length, f.nullCount, [f.valueOffsets, f.values, f.nullBitmap] as never));
  }

  flat(name: string): FlatColumn | undefined {
    const i = this.layout.index.get(name);
    return i === undefined ? undefined : flatColumn(this.schema.fields[i].type, this.h, i, this.layout.first[i], this.bytes, this.bodyAt);
  }
}

/**
 * A flat column's buffers, as the fields of Arrow's Data that decoding reads
 * (arrow-decode.ts takes either): no Data is built. Decoding a key's rows
 * built five Data a frame, with their typed arrays, for ten rows or so; they
 * were a fifth of what reading an entity's history allocated (bench:audit).
 */
export interface FlatColumn {
  length: number;
  nullCount: number;
  /** Empty when there are no nulls. */
  nullBitmap: Uint8Array;
  values: ArrayLike<unknown>;
  valueOffsets?: Int32Array;
}

/** A schema whose fields are all flat: each field's first buffer (validity), how many buffers a batch has, and each field's index by name (the first of a repeated name). */
interface FlatLayout {
  first: number[];
  buffers: number;
  index: Map<string, number>;
}
const layouts = new WeakMap<A.Schema, FlatLayout | null>();

function flatLayout(schema: A.Schema): FlatLayout | null {
  let layout = layouts.get(schema);
  if (layout !== undefined) return layout;
  layout = { first: [], buffers: 0, index: new Map() };
  for (const f of schema.fields) {
    if (!layout.index.has(f.name)) layout.index.set(f.name, layout.first.length);
    const n = flatBuffers(f.type);
    if (n === 0) {
      layout = null;
      break;
    }
    layout.first.push(layout.buffers);
    layout.buffers += n;
  }
  layouts.set(schema, layout);
  return layout;
}

/** Buffers of a flat type (validity and data; and offsets for variable width); 0 for any other. */
function flatBuffers(t: A.DataType): number {
  switch (t.typeId) {
    case A.Type.Int:
    case A.Type.Float:
    case A.Type.Bool:
    case A.Type.Timestamp:
      return 2;
    case A.Type.Utf8:
    case A.Type.Binary:
      return 3;
    default:
      return 0;
  }
}

interface BatchHeader {
  bodyLength: number;
  length: number;
  /** Per field node: length, null count. */
  nodes: number[];
  /** Per buffer: offset in the body, length. */
  buffers: number[];
}

/** A RecordBatch message's header from its flatbuffer; undefined for another message, a compressed batch, or bytes that do not parse. */
function readBatchHeader(meta: Uint8Array): BatchHeader | undefined {
  const v = new DataView(meta.buffer, meta.byteOffset, meta.byteLength);
  const u32 = (p: number): number => v.getUint32(p, true);
  // Lengths and offsets are int64; a batch's are far below 2^53.
  const i64 = (p: number): number => v.getInt32(p + 4, true) * 4294967296 + v.getUint32(p, true);
  /** Where field `i` of the table at `table` is stored; 0 when absent. */
  const field = (table: number, i: number): number => {
    const vtable = table - v.getInt32(table, true);
    if (4 + 2 * i + 2 > v.getUint16(vtable, true)) return 0;
    const at = v.getUint16(vtable + 4 + 2 * i, true);
    return at ? table + at : 0;
  };
  /** A vector of 16-byte structs (two int64 each) as 2n numbers, in an array made at its length (not grown push by push). */
  const vector = (at: number): number[] => {
    if (!at) return [];
    const start = at + u32(at);
    const n = u32(start);
    if (start + 4 + 16 * n > meta.byteLength) throw new RangeError('vector out of bounds');
    const out = new Array<number>(2 * n);
    for (let k = 0; k < n; k++) {
      out[2 * k] = i64(start + 4 + 16 * k);
      out[2 * k + 1] = i64(start + 12 + 16 * k);
    }
    return out;
  };
  try {
    const root = u32(0);
    const type = field(root, 1);
    const header = field(root, 2);
    if (!type || v.getUint8(type) !== 3 || !header) return undefined;
    const rb = header + u32(header);
    if (field(rb, 3)) return undefined;
    const bodyLength = field(root, 3);
    const length = field(rb, 0);
    const out: BatchHeader = { bodyLength: bodyLength ? i64(bodyLength) : 0, length: length ? i64(length) : 0, nodes: vector(field(rb, 1)), buffers: vector(field(rb, 2)) };
    if (out.bodyLength < 0 || out.length < 0 || out.nodes.some((x) => x < 0) || out.buffers.some((x) => x < 0)) return undefined;
    return out;
  } catch {
    return undefined;
  }
}

function flatColumn(type: A.DataType, h: BatchHeader, field: number, first: number, bytes: Uint8Array, bodyAt: number): FlatColumn {
  const length = h.nodes[2 * field];
  const nullCount = h.nodes[2 * field + 1];
  const nullBitmap = nullCount > 0 ? new Uint8Array(bytes.buffer, bytes.byteOffset + bodyAt + h.buffers[2 * first], h.buffers[2 * first + 1]) : EMPTY;
  if (type.typeId === A.Type.Utf8 || type.typeId === A.Type.Binary) {
    const values = new Uint8Array(bytes.buffer, bytes.byteOffset + bodyAt + h.buffers[2 * first + 4], h.buffers[2 * first + 5]);
    return { length, nullCount, nullBitmap, values, valueOffsets: typedView(Int32Array, bytes, bodyAt, h, first + 1) as Int32Array };
  }
  return { length, nullCount, nullBitmap, values: typedView((type as A.DataType & { ArrayType: TypedArrayCtor }).ArrayType, bytes, bodyAt, h, first + 1), valueOffsets: undefined };
}

const EMPTY = new Uint8Array(0);

type TypedArrayCtor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): ArrayLike<unknown>; BYTES_PER_ELEMENT: number };

/** Buffer `i` of the body as a typed array over the bytes in place, or over a copy when they are not aligned to its element size. */
function typedView(T: TypedArrayCtor, bytes: Uint8Array, bodyAt: number, h: BatchHeader, i: number): ArrayLike<unknown> {
  const size = T.BYTES_PER_ELEMENT;
  const at = bytes.byteOffset + bodyAt + h.buffers[2 * i];
  const n = Math.floor(h.buffers[2 * i + 1] / size);
  if (at % size === 0) return new T(bytes.buffer, at, n);
  const copy = bytes.slice(at - bytes.byteOffset, at - bytes.byteOffset + n * size);
  return new T(copy.buffer, 0, n);
}
