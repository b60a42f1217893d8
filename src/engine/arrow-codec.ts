/**
 * Canonical rows ↔ Arrow record batches. The changelog stores each commit as
 * one Arrow IPC stream (schema + one record batch): column `_asof_change`
 * (int8 change type) followed by the table's columns as they were at that
 * schema version. Decoding fills columns the batch lacks (added later) with null.
 *
 * Scalar columns are built straight into typed arrays (the ingest hot path);
 * nested types go through Arrow's own builders.
 */
import * as A from 'apache-arrow';
import { isAscii } from 'node:buffer';
import { VectorLoader } from 'apache-arrow/visitor/vectorloader';
import { VectorAssembler } from 'apache-arrow/visitor/vectorassembler';
import { RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import type { ColumnType } from './types.js';
import type { CompiledColumn, Row } from './schema.js';
import { rowCodeFor } from './row-code.js';

export const CHANGE_COLUMN = '_asof_change';

/** Change types, as stored (int8) and as named on the wire. */
export const ChangeType = { INSERT: 0, UPDATE_BEFORE: 1, UPDATE_AFTER: 2, DELETE: 3 } as const;
export type ChangeTypeCode = (typeof ChangeType)[keyof typeof ChangeType];
export const CHANGE_NAMES = ['+I', '-U', '+U', '-D'] as const;
export type ChangeName = (typeof CHANGE_NAMES)[number];

export function arrowType(t: ColumnType): A.DataType {
  switch (t.kind) {
    case 'bool':
      return new A.Bool();
    case 'int32':
      return new A.Int32();
    case 'int64':
      return new A.Int64();
    case 'float32':
      return new A.Float32();
    case 'float64':
      return new A.Float64();
    case 'string':
    case 'json':
      return new A.Utf8();
    case 'timestamp':
      return new A.TimestampMillisecond('UTC');
    case 'list':
      return new A.List(new A.Field('item', arrowType(t.item), true));
    case 'struct':
      return new A.Struct(t.fields.map((f) => new A.Field(f.name, arrowType(f.type), true)));
    case 'vector':
      return new A.FixedSizeList(t.dim, new A.Field('item', new A.Float32(), false));
  }
}

/**
 * Validity bits, allocated at the first null (most columns have none), so a
 * column is built in one pass.
 */
class Validity {
  bitmap?: Uint8Array;
  nullCount = 0;
  constructor(private readonly n: number) {}
  null(i: number): void {
    if (!this.bitmap) {
      this.bitmap = new Uint8Array((this.n + 7) >> 3).fill(0xff);
      if (this.n & 7) this.bitmap[this.bitmap.length - 1] = (1 << (this.n & 7)) - 1;
    }
    this.bitmap[i >> 3] &= ~(1 << (i & 7));
    this.nullCount++;
  }
}

/** Converts nested canonical values into what Arrow's builders accept. */
function toArrowValue(t: ColumnType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (t.kind) {
    case 'json':
      return JSON.stringify(v);
    case 'int64':
      return typeof v === 'bigint' ? v : BigInt(v as number);
    case 'list':
      return (v as unknown[]).map((x) => toArrowValue(t.item, x));
    case 'struct': {
      const o = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const f of t.fields) out[f.name] = toArrowValue(f.type, o[f.name]);
      return out;
    }
    default:
      return v;
  }
}

/**
 * Builds one column's Arrow data from canonical values. One small function per
 * kind, so each loop sees one kind of array (a shared loop was megamorphic).
 */
export function buildColumn(t: ColumnType, values: unknown[]): A.Data {
  switch (t.kind) {
    case 'int32':
      return buildNumbers(new A.Int32(), values, new Int32Array(values.length));
    case 'float32':
      return buildNumbers(new A.Float32(), values, new Float32Array(values.length));
    case 'float64':
      return buildNumbers(new A.Float64(), values, new Float64Array(values.length));
    case 'int64':
      return buildInt64(new A.Int64(), values);
    case 'timestamp':
      return buildInt64(new A.TimestampMillisecond('UTC'), values);
    case 'bool':
      return buildBools(values);
    case 'string':
    case 'json':
      return buildStrings(values, t.kind === 'json');
    case 'vector':
      return buildVectors(t.dim, values);
    default:
      return A.vectorFromArray(values.map((v) => toArrowValue(t, v)) as never[], arrowType(t)).data[0];
  }
}

function buildNumbers(type: A.Int32 | A.Float32 | A.Float64, values: unknown[], arr: Int32Array | Float32Array | Float64Array): A.Data {
  const n = values.length;
  const valid = new Validity(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null || v === undefined) valid.null(i);
    else arr[i] = v as number;
  }
  return A.makeData({ type: type as A.Int32, length: n, nullCount: valid.nullCount, nullBitmap: valid.bitmap, data: arr as Int32Array });
}

function buildInt64(type: A.Int64 | A.TimestampMillisecond, values: unknown[]): A.Data {
  const n = values.length;
  const valid = new Validity(n);
  // Safe integers are written as two int32 halves: a BigInt per value cost more than the rest of the column.
  const arr = new BigInt64Array(n);
  const halves = new Int32Array(arr.buffer);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (typeof v === 'number') {
      const hi = Math.floor(v / 4294967296);
      halves[2 * i] = v - hi * 4294967296;
      halves[2 * i + 1] = hi;
    } else if (typeof v === 'bigint') arr[i] = v;
    else valid.null(i);
  }
  return A.makeData({ type: type as A.Int64, length: n, nullCount: valid.nullCount, nullBitmap: valid.bitmap, data: arr });
}

function buildBools(values: unknown[]): A.Data {
  const n = values.length;
  const valid = new Validity(n);
  const bits = new Uint8Array((n + 7) >> 3);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === true) bits[i >> 3] |= 1 << (i & 7);
    else if (v === null || v === undefined) valid.null(i);
  }
  return A.makeData({ type: new A.Bool(), length: n, nullCount: valid.nullCount, nullBitmap: valid.bitmap, data: bits });
}

function buildStrings(values: unknown[], json: boolean): A.Data {
  const n = values.length;
  const valid = new Validity(n);
  const strs: string[] = new Array(n);
  const offsets = new Int32Array(n + 1);
  let chars = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    let str = '';
    if (v === null || v === undefined) valid.null(i);
    else str = json ? JSON.stringify(v) : (v as string);
    strs[i] = str;
    chars += str.length;
    offsets[i + 1] = chars;
  }
  const make = (data: Uint8Array): A.Data => A.makeData({ type: new A.Utf8(), length: n, nullCount: valid.nullCount, nullBitmap: valid.bitmap, valueOffsets: offsets, data });
  // One join and one encode; when every character is ASCII (bytes === characters) the character offsets are the byte offsets.
  const joined = Buffer.from(strs.join(''), 'utf8');
  if (joined.length === chars) return make(joined);
  const data = Buffer.allocUnsafe(joined.length + 8);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    pos += data.write(strs[i], pos, 'utf8');
    offsets[i + 1] = pos;
  }
  return make(data.subarray(0, pos));
}

function buildVectors(dim: number, values: unknown[]): A.Data {
  const n = values.length;
  const valid = new Validity(n);
  const flat = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const v = values[i] as ArrayLike<number> | null | undefined;
    if (v === null || v === undefined) valid.null(i);
    else for (let j = 0; j < dim; j++) flat[i * dim + j] = v[j];
  }
  const child = A.makeData({ type: new A.Float32(), length: n * dim, nullCount: 0, data: flat });
  return A.makeData({ type: new A.FixedSizeList(dim, new A.Field('item', new A.Float32(), false)), length: n, nullCount: valid.nullCount, nullBitmap: valid.bitmap, child });
}

/** Per column list: Arrow fields and schema, and the schema message as it opens every stream. */
const fieldCache = new WeakMap<CompiledColumn[], { fields: A.Field[]; schema: A.Schema; schemaMessage: Uint8Array }>();

function fieldsOf(columns: CompiledColumn[]): { fields: A.Field[]; schema: A.Schema; schemaMessage: Uint8Array } {
  let f = fieldCache.get(columns);
  if (!f) {
    const fields: A.Field[] = [new A.Field(CHANGE_COLUMN, new A.Int8(), false)];
    for (const c of columns) fields.push(new A.Field(c.name, arrowType(c.type), c.nullable, new Map([['asof.type', formatTypeKind(c.type)]])));
    const schema = new A.Schema(fields);
    f = { fields, schema, schemaMessage: framed(A.Message.encode(A.Message.from(schema))) };
    fieldCache.set(columns, f);
  }
  return f;
}

/** A message's metadata as the stream format frames it: continuation marker, length, flatbuffer, padding to 8. */
function framed(meta: Uint8Array): Uint8Array {
  const size = (meta.length + 8 + 7) & ~7;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setInt32(0, -1, true);
  view.setInt32(4, size - 8, true);
  out.set(meta, 8);
  return out;
}

/**
 * Encodes rows with their change types as one Arrow IPC stream: the schema
 * message, one record batch, the end-of-stream marker. Byte for byte what
 * Arrow's RecordBatchStreamWriter produces (a test checks it), assembled
 * directly: the writer's queue and iterator machinery cost more than the data.
 */
export function encodeBatch(columns: CompiledColumn[], changes: Uint8Array | number[], rows: Row[]): Uint8Array {
  const n = rows.length;
  const { schemaMessage } = fieldsOf(columns);
  const children: A.Data[] = [A.makeData({ type: new A.Int8(), length: n, nullCount: 0, data: Int8Array.from(changes) })];
  const code = rowCodeFor(columns);
  const gathered = code ? code.gather(rows) : columns.map((c) => rows.map((r) => r[c.name]));
  for (let j = 0; j < columns.length; j++) children.push(buildColumn(columns[j].type, gathered[j]));
  const body = VectorAssembler.assemble(...children.map((d) => new A.Vector([d])));
  const message = framed(A.Message.encode(A.Message.from(new RecordBatchHeader(n, body.nodes, body.bufferRegions), body.byteLength)));
  const out = new Uint8Array(schemaMessage.length + message.length + body.byteLength + 8);
  out.set(schemaMessage, 0);
  out.set(message, schemaMessage.length);
  let at = schemaMessage.length + message.length;
  // Body buffers at the offsets the metadata names (each padded to 8; the array is zero-filled).
  for (const b of body.buffers) {
    if (!b || b.byteLength === 0) continue;
    out.set(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), at);
    at += (b.byteLength + 7) & ~7;
  }
  new DataView(out.buffer).setInt32(out.length - 8, -1, true); // end of stream: -1, 0
  return out;
}

function formatTypeKind(t: ColumnType): string {
  return t.kind === 'vector' ? `vector<${t.dim}>` : t.kind;
}

/** One decoded commit: change types and rows in canonical form. */
export interface DecodedBatch {
  changes: Int8Array;
  rows: Row[];
}

/**
 * One Arrow IPC stream (schema + one record batch) → the batch.
 *
 * Streams we wrote are read by a short path: the schema message is the same
 * bytes for every frame of a schema version, so it is parsed once and looked
 * up by those bytes; the batch message is decoded and its buffers loaded
 * directly. Arrow's general reader (stream sniffing, iterators) cost ~30 us a
 * frame warm and several times that cold, which dominated replaying small
 * frames. Anything unexpected falls back to the general reader.
 */
export function decodeIpc(bytes: Uint8Array): StoredBatch {
  const batch = decodeOwnStream(bytes);
  if (batch) return batch;
  const batches = A.RecordBatchReader.from(bytes).readAll();
  if (batches.length !== 1) throw new Error(`expected one record batch, found ${batches.length}`);
  const b = batches[0];
  return { numRows: b.numRows, column: (name) => b.getChild(name)?.data[0] };
}

/** A stored batch as decoding needs it: no Arrow RecordBatch is built (its constructor cost more than the rest). */
export interface StoredBatch {
  numRows: number;
  column(name: string): A.Data | undefined;
}

const schemas = new Map<string, A.Schema>();

/** An IPC message at `pos`: continuation marker, metadata length, flatbuffer metadata (8-byte padded). */
function messageAt(bytes: Uint8Array, pos: number): { meta: Uint8Array; next: number } | undefined {
  if (pos + 8 > bytes.length) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset + pos, 8);
  const len = view.getInt32(4, true);
  if (view.getInt32(0, true) !== -1 || len <= 0 || pos + 8 + len > bytes.length) return undefined;
  return { meta: bytes.subarray(pos + 8, pos + 8 + len), next: pos + 8 + len };
}

function decodeOwnStream(bytes: Uint8Array): StoredBatch | undefined {
  // Buffers are used in place as typed arrays, which need their natural alignment (8 for int64).
  if (bytes.byteOffset % 8 !== 0) bytes = bytes.slice();
  const s = messageAt(bytes, 0);
  if (!s) return undefined;
  const key = Buffer.from(s.meta.buffer, s.meta.byteOffset, s.meta.byteLength).toString('latin1');
  let schema = schemas.get(key);
  if (!schema) {
    const m = A.Message.decode(s.meta);
    if (!m.isSchema() || m.bodyLength !== 0) return undefined;
    schema = m.header();
    if (schema.dictionaries.size > 0) return undefined;
    if (schemas.size >= 256) schemas.delete(schemas.keys().next().value!);
    schemas.set(key, schema);
  }
  const b = messageAt(bytes, s.next);
  if (!b) return undefined;
  const msg = A.Message.decode(b.meta);
  if (!msg.isRecordBatch()) return undefined;
  const end = b.next + Number(msg.bodyLength);
  // What follows must be the end of the stream: nothing, or the end-of-stream marker.
  if (end !== bytes.length && !(end + 8 === bytes.length && new DataView(bytes.buffer, bytes.byteOffset + end, 8).getInt32(4, true) === 0)) return undefined;
  const header = msg.header();
  const children: A.Data[] = new VectorLoader(bytes.subarray(b.next, end), header.nodes, header.buffers, new Map(), msg.version).visitMany(schema.fields);
  const fields = schema.fields;
  return {
    numRows: Number(header.length),
    column(name) {
      for (let i = 0; i < fields.length; i++) if (fields[i].name === name) return children[i];
      return undefined;
    },
  };
}

/**
 * Decodes a stored batch into canonical rows shaped by `columns` (the current
 * schema): a column the batch lacks reads as null. `only` limits the columns.
 */
export function decodeBatch(batch: StoredBatch, columns: CompiledColumn[], only?: Set<string>): DecodedBatch {
  const n = batch.numRows;
  const cols = only ? columns.filter((c) => only.has(c.name)) : columns;
  const { changes, values } = decodeValues(batch, cols);
  const code = only ? undefined : rowCodeFor(columns);
  if (code) return { changes, rows: code.build(values, n) };
  const rows: Row[] = new Array(n);
  for (let i = 0; i < n; i++) rows[i] = {};
  cols.forEach((c, j) => {
    const vals = values[j];
    for (let i = 0; i < n; i++) rows[i][c.name] = vals[i];
  });
  return { changes, rows };
}

/**
 * Change types and canonical values, one array per column of `columns`, no
 * rows built (replay builds only the rows it keeps). A column the batch lacks
 * reads as null.
 */
export function decodeValues(batch: StoredBatch, columns: CompiledColumn[]): { changes: Int8Array; values: unknown[][] } {
  const n = batch.numRows;
  const changes = (batch.column(CHANGE_COLUMN)!.values as Int8Array).subarray(0, n);
  const values = columns.map((c) => {
    const data = batch.column(c.name);
    return data ? decodeData(c.type, data) : new Array(n).fill(null);
  });
  return { changes, values };
}

/** An Arrow column → canonical values (null where invalid). */
export function decodeColumn(t: ColumnType, vec: A.Vector): unknown[] {
  return vec.data.length === 1 ? decodeData(t, vec.data[0]) : decodeSlow(t, vec);
}

function decodeData(t: ColumnType, data: A.Data): unknown[] {
  return (data.offset === 0 ? decodeFlat(t, data) : undefined) ?? decodeSlow(t, new A.Vector([data]));
}

function decodeSlow(t: ColumnType, vec: A.Vector): unknown[] {
  const n = vec.length;
  const out: unknown[] = new Array(n);
  const hasNulls = vec.nullCount > 0;
  for (let i = 0; i < n; i++) out[i] = hasNulls && !vec.isValid(i) ? null : fromArrowValue(t, vec.get(i));
  return out;
}

/**
 * Scalar columns read straight from their buffers (replay decodes every
 * record it applies; Arrow's per-value `get` was most of that time).
 * Undefined for types this does not handle; the caller then uses `get`.
 */
function decodeFlat(t: ColumnType, d: A.Data): unknown[] | undefined {
  const n = d.length;
  const bitmap = d.nullCount > 0 ? d.nullBitmap : undefined;
  const out: unknown[] = new Array(n);
  const values = d.values as ArrayLike<unknown> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number };
  switch (t.kind) {
    case 'int32':
    case 'float32':
    case 'float64':
      for (let i = 0; i < n; i++) out[i] = values[i];
      break;
    case 'bool': {
      const bits = values as Uint8Array;
      for (let i = 0; i < n; i++) out[i] = ((bits[i >> 3] >> (i & 7)) & 1) === 1;
      break;
    }
    case 'int64':
    case 'timestamp': {
      if (!(values instanceof BigInt64Array)) return undefined;
      const halves = new Int32Array(values.buffer, values.byteOffset, n * 2);
      for (let i = 0; i < n; i++) {
        const hi = halves[2 * i + 1];
        // |hi| < 2^21 means a safe integer: no BigInt needed.
        out[i] = hi > -2097152 && hi < 2097152 ? hi * 4294967296 + (halves[2 * i] >>> 0) : t.kind === 'timestamp' ? Number(values[i]) : fromArrowValue(t, values[i]);
      }
      break;
    }
    case 'string':
    case 'json': {
      const offsets = d.valueOffsets as Int32Array;
      const bytes = values as Uint8Array;
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (isAscii(buf)) {
        // One string for the column, then substrings: short ones are copies; long ones are
        // sliced from it, which would pin the whole column in memory, so those are copied out.
        const all = buf.toString('latin1');
        for (let i = 0; i < n; i++) {
          const a = offsets[i];
          const b = offsets[i + 1];
          out[i] = b - a < 13 ? all.substring(a, b) : buf.toString('latin1', a, b);
        }
      } else {
        for (let i = 0; i < n; i++) out[i] = buf.toString('utf8', offsets[i], offsets[i + 1]);
      }
      if (t.kind === 'json') for (let i = 0; i < n; i++) if (!bitmap || (bitmap[i >> 3] >> (i & 7)) & 1) out[i] = JSON.parse(out[i] as string);
      break;
    }
    default:
      return undefined;
  }
  if (bitmap) for (let i = 0; i < n; i++) if (((bitmap[i >> 3] >> (i & 7)) & 1) === 0) out[i] = null;
  return out;
}

function fromArrowValue(t: ColumnType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (t.kind) {
    case 'int64': {
      const b = v as bigint;
      return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
    }
    case 'timestamp':
      return Number(v);
    case 'json':
      return JSON.parse(v as string);
    case 'vector':
      return Array.from((v as A.Vector).toArray() as Float32Array);
    case 'list': {
      const vec = v as A.Vector;
      const out: unknown[] = [];
      for (let i = 0; i < vec.length; i++) out.push(vec.isValid(i) ? fromArrowValue(t.item, vec.get(i)) : null);
      return out;
    }
    case 'struct': {
      const s = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const f of t.fields) out[f.name] = fromArrowValue(f.type, s[f.name]);
      return out;
    }
    default:
      return v;
  }
}
