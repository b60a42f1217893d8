/**
 * Canonical rows → one Arrow IPC stream (the changelog payload). Columns are
 * built straight into typed arrays, one small function per kind; nested types
 * go through Arrow's own builders.
 */
import * as A from 'apache-arrow';
import { RecordBatchHeader, VectorAssembler } from './arrow-internals.js';
import { arrowType, CHANGE_COLUMN } from './arrow-schema.js';
import type { ColumnType } from './types.js';
import type { CompiledColumn, Row } from './schema.js';
import { rowCodeFor } from './row-code.js';

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
 * `metadata` goes into the schema's custom metadata (commit-level facts such
 * as idempotency keys, see idempotency.ts); without it the schema message is
 * the cached one.
 */
export function encodeBatch(columns: CompiledColumn[], changes: Uint8Array | number[], rows: Row[], metadata?: Map<string, string>): Uint8Array {
  const code = rowCodeFor(columns);
  return encodeValues(columns, changes, code ? code.gather(rows) : columns.map((c) => rows.map((r) => r[c.name])), rows.length, metadata);
}

/** `encodeBatch` from canonical values, one array of `n` per column (column order), no rows. */
export function encodeValues(columns: CompiledColumn[], changes: Uint8Array | number[], gathered: unknown[][], n: number, metadata?: Map<string, string>): Uint8Array {
  const cached = fieldsOf(columns);
  const schemaMessage = metadata?.size ? framed(A.Message.encode(A.Message.from(new A.Schema(cached.fields, metadata)))) : cached.schemaMessage;
  const children: A.Data[] = [A.makeData({ type: new A.Int8(), length: n, nullCount: 0, data: Int8Array.from(changes) })];
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
