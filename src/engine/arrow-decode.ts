/**
 * Arrow IPC streams → canonical values and rows: the changelog on replay and
 * reads, snapshots, and Arrow request bodies. Decoding fills columns a batch
 * lacks (added later) with null.
 */
import * as A from 'apache-arrow';
import { isAscii } from 'node:buffer';
import { VectorLoader } from './arrow-internals.js';
import { endsStream, loadFlat, type FlatColumn } from './arrow-flat.js';
import { CHANGE_COLUMN } from './arrow-schema.js';
import type { ColumnType } from './types.js';
import type { CompiledColumn, Row } from './schema.js';
import { rowCodeFor } from './row-code.js';

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

/**
 * The custom metadata of a stored stream's schema (empty when it has none),
 * read from the schema message alone; schemas already seen without metadata
 * are recognised from the cache, so most frames cost one lookup.
 */
export function streamMetadata(bytes: Uint8Array): Map<string, string> {
  const s = messageAt(bytes, 0);
  if (!s) return new Map();
  const key = Buffer.from(s.meta.buffer, s.meta.byteOffset, s.meta.byteLength).toString('latin1');
  if (schemas.has(key)) return new Map();
  const m = A.Message.decode(s.meta);
  if (!m.isSchema()) return new Map();
  const schema = m.header();
  if (schema.metadata.size === 0 && schema.dictionaries.size === 0) {
    if (schemas.size >= 256) schemas.delete(schemas.keys().next().value!);
    schemas.set(key, schema);
  }
  return schema.metadata;
}

/** A stored batch as decoding needs it: no Arrow RecordBatch is built (its constructor cost more than the rest). */
export interface StoredBatch {
  numRows: number;
  column(name: string): A.Data | undefined;
  /** A flat column's buffers without a Data built (batches loaded by arrow-flat.ts): what decoding reads. */
  flat?(name: string): FlatColumn | undefined;
}

const schemas = new Map<string, A.Schema>();
/** The schema last decoded (one without metadata) and its message bytes (a copy). */
let lastSchema: { meta: Buffer; schema: A.Schema } | undefined;

/** An IPC message at `pos`: continuation marker, metadata length, flatbuffer metadata (8-byte padded). */
function messageAt(bytes: Uint8Array, pos: number): { meta: Uint8Array; next: number } | undefined {
  const len = metaLength(bytes, pos);
  return len < 0 ? undefined : { meta: bytes.subarray(pos + 8, pos + 8 + len), next: pos + 8 + len };
}

/** The metadata length of the IPC message at `pos`, -1 when there is none (read without a DataView: this runs once or twice a frame). */
function metaLength(bytes: Uint8Array, pos: number): number {
  if (pos + 8 > bytes.length) return -1;
  const marker = bytes[pos] & bytes[pos + 1] & bytes[pos + 2] & bytes[pos + 3];
  const len = bytes[pos + 4] | (bytes[pos + 5] << 8) | (bytes[pos + 6] << 16) | (bytes[pos + 7] << 24);
  return marker !== 255 || len <= 0 || pos + 8 + len > bytes.length ? -1 : len;
}

function decodeOwnStream(bytes: Uint8Array): StoredBatch | undefined {
  // Buffers are used in place as typed arrays, which need their natural alignment (8 for int64).
  if (bytes.byteOffset % 8 !== 0) bytes = bytes.slice();
  const len = metaLength(bytes, 0);
  if (len < 0) return undefined;
  // Consecutive frames mostly share a schema: compared to the last one's bytes in place before building a key.
  let schema = lastSchema && lastSchema.meta.length === len && lastSchema.meta.compare(bytes, 8, 8 + len) === 0 ? lastSchema.schema : undefined;
  if (!schema) {
    const meta = bytes.subarray(8, 8 + len);
    const key = Buffer.from(meta.buffer, meta.byteOffset, meta.byteLength).toString('latin1');
    schema = schemas.get(key);
    if (!schema) {
      const m = A.Message.decode(meta);
      if (!m.isSchema() || m.bodyLength !== 0) return undefined;
      schema = m.header();
      if (schema.dictionaries.size > 0) return undefined;
      // A schema with custom metadata (a commit's idempotency keys) is one of a kind: caching it would only evict the shared ones.
      if (schema.metadata.size === 0) {
        if (schemas.size >= 256) schemas.delete(schemas.keys().next().value!);
        schemas.set(key, schema);
      }
    }
    if (schema.metadata.size === 0) lastSchema = { meta: Buffer.from(meta), schema };
  }
  const b = messageAt(bytes, 8 + len);
  if (!b) return undefined;
  const flat = loadFlat(schema, b.meta, bytes, b.next);
  if (flat) return flat;
  const msg = A.Message.decode(b.meta);
  if (!msg.isRecordBatch()) return undefined;
  const end = b.next + Number(msg.bodyLength);
  if (!endsStream(bytes, end)) return undefined;
  const header = msg.header();
  const fields = schema.fields;
  const numRows = Number(header.length);
  const children: A.Data[] = new VectorLoader(bytes.subarray(b.next, end), header.nodes, header.buffers, new Map(), msg.version).visitMany(fields);
  return {
    numRows,
    column(name) {
      for (let i = 0; i < fields.length; i++) if (fields[i].name === name) return children[i];
      return undefined;
    },
  };
}

/**
 * Decodes a stored batch into canonical rows shaped by `columns` (the current
 * schema): a column the batch lacks reads as null. `only` limits the columns;
 * `at` (row indexes) limits the rows decoded and built: `rows[k]` is row
 * `at[k]` (`changes` stays whole).
 */
export function decodeBatch(batch: StoredBatch, columns: CompiledColumn[], only?: Set<string>, at?: number[]): DecodedBatch {
  const cols = only ? columns.filter((c) => only.has(c.name)) : columns;
  const { changes, values } = decodeValues(batch, cols, at);
  const n = at ? at.length : batch.numRows;
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
 * Change types (every row) and canonical values, one array per column of
 * `columns`, of the rows `at` (all when absent: `values[j][k]` is row
 * `at[k]`); no rows built (replay builds only the rows it keeps). A column
 * the batch lacks reads as null.
 */
export function decodeValues(batch: StoredBatch, columns: CompiledColumn[], at?: number[]): { changes: Int8Array; values: unknown[][] } {
  const n = at ? at.length : batch.numRows;
  const values: unknown[][] = [];
  for (let j = 0; j < columns.length; j++) values.push(new Array<unknown>(n));
  return { changes: decodeValuesInto(batch, columns, at, values, 0), values };
}

/**
 * `decodeValues` into arrays the caller holds: `into[j][base + k]` is column
 * j's value of row `at[k]` (of row k when `at` is absent). Returns the change
 * types of every row of the batch. Many frames decoded into one set of
 * arrays (the audit's key reads, union-read.ts) make no arrays per frame.
 */
export function decodeValuesInto(batch: StoredBatch, columns: CompiledColumn[], at: number[] | undefined, into: unknown[][], base: number): Int8Array {
  const n = at ? at.length : batch.numRows;
  const changes = ((batch.flat?.(CHANGE_COLUMN) ?? batch.column(CHANGE_COLUMN))!.values as Int8Array).subarray(0, batch.numRows);
  for (let j = 0; j < columns.length; j++) {
    const c = columns[j];
    const out = into[j];
    const flat = batch.flat?.(c.name);
    if (flat && decodeFlat(c.type, flat, at, out, base)) continue;
    const data = batch.column(c.name);
    if (data) decodeData(c.type, data, at, out, base);
    else for (let k = 0; k < n; k++) out[base + k] = null;
  }
  return changes;
}

/** An Arrow column → canonical values (null where invalid). */
export function decodeColumn(t: ColumnType, vec: A.Vector): unknown[] {
  if (vec.data.length !== 1) return decodeSlow(t, vec, undefined, new Array(vec.length), 0);
  const out = new Array(vec.length);
  decodeData(t, vec.data[0], undefined, out, 0);
  return out;
}

function decodeData(t: ColumnType, data: A.Data, at: number[] | undefined, out: unknown[], base: number): void {
  if (data.offset === 0 && decodeFlat(t, data, at, out, base)) return;
  decodeSlow(t, new A.Vector([data]), at, out, base);
}

function decodeSlow(t: ColumnType, vec: A.Vector, at: number[] | undefined, out: unknown[], base: number): unknown[] {
  const n = at ? at.length : vec.length;
  const hasNulls = vec.nullCount > 0;
  for (let k = 0; k < n; k++) {
    const i = at ? at[k] : k;
    out[base + k] = hasNulls && !vec.isValid(i) ? null : fromArrowValue(t, vec.get(i));
  }
  return out;
}

/**
 * Scalar columns read straight from their buffers (replay decodes every
 * record it applies; Arrow's per-value `get` was most of that time), the rows
 * `at` or all, into `out`. False for types this does not handle
 * (nothing written); the caller then uses `get`. Row `at[k]` goes to
 * `out[base + k]`.
 */
function decodeFlat(t: ColumnType, d: FlatColumn, at: number[] | undefined, out: unknown[], base: number): boolean {
  const n = at ? at.length : d.length;
  const bitmap = d.nullCount > 0 ? d.nullBitmap : undefined;
  const values = d.values as ArrayLike<unknown> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number };
  switch (t.kind) {
    case 'int32':
    case 'float32':
    case 'float64':
      for (let k = 0; k < n; k++) out[base + k] = values[at ? at[k] : k];
      break;
    case 'bool': {
      const bits = values as Uint8Array;
      for (let k = 0; k < n; k++) {
        const i = at ? at[k] : k;
        out[base + k] = ((bits[i >> 3] >> (i & 7)) & 1) === 1;
      }
      break;
    }
    case 'int64':
    case 'timestamp': {
      if (!(values instanceof BigInt64Array)) return false;
      const halves = new Int32Array(values.buffer, values.byteOffset, values.length * 2);
      for (let k = 0; k < n; k++) {
        const i = at ? at[k] : k;
        const hi = halves[2 * i + 1];
        // |hi| < 2^21 means a safe integer: no BigInt needed.
        out[base + k] = hi > -2097152 && hi < 2097152 ? hi * 4294967296 + (halves[2 * i] >>> 0) : t.kind === 'timestamp' ? Number(values[i]) : fromArrowValue(t, values[i]);
      }
      break;
    }
    case 'string':
    case 'json': {
      const offsets = d.valueOffsets as Int32Array;
      const bytes = values as Uint8Array;
      if (asciiBytes(bytes)) {
        // One string for the column, then substrings: short ones are copies; long ones are
        // sliced from it, which would pin the whole column in memory, so those are copied out.
        const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const all = buf.toString('latin1');
        for (let k = 0; k < n; k++) {
          const i = at ? at[k] : k;
          const a = offsets[i];
          const b = offsets[i + 1];
          out[base + k] = b - a < 13 ? all.substring(a, b) : buf.toString('latin1', a, b);
        }
      } else {
        const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        for (let k = 0; k < n; k++) {
          const i = at ? at[k] : k;
          out[base + k] = buf.toString('utf8', offsets[i], offsets[i + 1]);
        }
      }
      if (t.kind === 'json') {
        for (let k = 0; k < n; k++) {
          const i = at ? at[k] : k;
          if (!bitmap || (bitmap[i >> 3] >> (i & 7)) & 1) out[base + k] = JSON.parse(out[base + k] as string);
        }
      }
      break;
    }
    default:
      return false;
  }
  if (bitmap) {
    for (let k = 0; k < n; k++) {
      const i = at ? at[k] : k;
      if (((bitmap[i >> 3] >> (i & 7)) & 1) === 0) out[base + k] = null;
    }
  }
  return true;
}

/** Whether every byte is ASCII: a loop for the short columns of one commit (no view made for the native check), isAscii for long ones. */
function asciiBytes(bytes: Uint8Array): boolean {
  const n = bytes.length;
  if (n > 256) return isAscii(bytes);
  let or = 0;
  for (let i = 0; i < n; i++) or |= bytes[i];
  return or < 128;
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
