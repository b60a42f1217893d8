/**
 * Body formats rows arrive in, turned into plain row objects before validation:
 * JSON `{rows, op}`, NDJSON (one row per line) and an Arrow IPC stream.
 */
import { isUtf8 } from 'node:buffer';
import * as A from 'apache-arrow';
import { AsofError } from '../errors.js';
import { decodeColumn } from '../engine/arrow-codec.js';
import { mayBend, noteRowsText, parseJsonText } from '../engine/json-safety.js';
import { rowCodeFor } from '../engine/row-code.js';
import type { ColumnType } from '../engine/types.js';

/** NDJSON text → rows. Blank lines are skipped; a bad line is a 400 naming its row index and line. */
export function parseNdjson(text: string): unknown[] {
  const rows: unknown[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    try {
      rows.push(parseJsonText(line, { what: `NDJSON line ${i + 1}` }));
    } catch (e) {
      const reason = (e as Error).message;
      throw new AsofError('ASOF_INVALID_ROW', `row ${rows.length}: ${reason}; nothing was written`, [{ row: rows.length, field: '', reason: `line ${i + 1}: ${reason}` }]);
    }
  }
  // Kept for the number check (ingest/bent-columns.ts) when a literal in it may bend: read only for a table with an int32, int64, timestamp or json part.
  if (mayBend(text)) noteRowsText(rows, { text, ndjson: true });
  return rows;
}

/**
 * An Arrow IPC stream → rows (plain JS values; validation then checks them
 * against the table). Common scalar columns are read straight from their
 * buffers and rows are built by compiled code when the field names allow it;
 * Arrow's per-value `get` made this path slower than JSON.
 */
export function parseArrowStream(bytes: Uint8Array): unknown[] {
  if (bytes.length === 0) throw new AsofError('ASOF_INVALID_ARGUMENT', 'the body is empty: an Arrow IPC stream holds at least its schema message (send a schema with no batches to write no rows)', [{ field: 'body', reason: 'empty, not an Arrow IPC stream' }]);
  let batches: A.RecordBatch[];
  try {
    const reader = A.RecordBatchReader.from(bytes);
    // Bytes that do not begin with a schema message (no continuation marker, or not Arrow at all) give a reader with
    // no schema and no batches rather than an error: refused here, or they would be an empty write.
    if (!reader.open().schema) throw new AsofError('ASOF_INVALID_ARGUMENT', 'the body is not an Arrow IPC stream: it does not begin with a schema message (0xFFFFFFFF, a length, then a flatbuffer Schema)', [{ field: 'body', reason: 'no Arrow IPC schema message' }]);
    batches = reader.readAll();
    if (reader.isStream()) refuseBytesAfterEnd(bytes);
  } catch (e) {
    if (e instanceof AsofError) throw e;
    throw new AsofError('ASOF_INVALID_ARGUMENT', `body is not a valid Arrow IPC stream: ${(e as Error).message}`, [{ field: 'body', reason: 'invalid Arrow IPC' }]);
  }
  try {
    return batchRows(batches);
  } catch (e) {
    // Nesting deep enough to overflow a recursive read is the body's fault, not the server's.
    if (e instanceof AsofError) throw e;
    throw new AsofError('ASOF_INVALID_ARGUMENT', `the Arrow IPC stream's values cannot be read: ${(e as Error).message}`, [{ field: 'body', reason: 'unreadable Arrow values' }]);
  }
}

/**
 * Refuses bytes after a stream's last message: Arrow's reader stops at the
 * end-of-stream marker and ignores what follows, so a second stream sent
 * after the first (its rows) was dropped without a word. Walks the message
 * frames (continuation marker, metadata length, metadata, body), reading only
 * each header's body length; the reader has already read them all.
 */
function refuseBytesAfterEnd(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  while (pos + 4 <= bytes.length) {
    let len = view.getInt32(pos, true);
    pos += 4;
    // The continuation marker, then the length (streams before Arrow 0.15 have the length alone).
    if (len === -1 && pos + 4 <= bytes.length) {
      len = view.getInt32(pos, true);
      pos += 4;
    }
    if (len === 0) break; // end of stream
    pos += len + Number(A.Message.decode(bytes.subarray(pos, pos + len)).bodyLength);
  }
  if (pos < bytes.length) {
    const reason = `${bytes.length - pos} bytes follow the end of the Arrow IPC stream (a second stream, or other data): send one stream`;
    throw new AsofError('ASOF_INVALID_ARGUMENT', `the body is not one Arrow IPC stream: ${reason}`, [{ field: 'body', reason }]);
  }
}

function batchRows(batches: A.RecordBatch[]): unknown[] {
  const rows: unknown[] = [];
  for (const batch of batches) {
    const fields = batch.schema.fields;
    // Assigned to a plain object, this name would replace the row's prototype rather than add a column.
    if (fields.some((f) => f.name === '__proto__')) throw new AsofError('ASOF_INVALID_ROW', 'column "__proto__": the name "__proto__" is reserved; nothing was written', [{ field: '__proto__', reason: 'the name "__proto__" is reserved' }]);
    // So would a struct's field of that name, inside a column (arrowToJs copies fields into plain objects).
    for (const f of fields) {
      const inner = reservedFieldIn(f.type);
      if (inner) throw new AsofError('ASOF_INVALID_ROW', `column "${f.name}": ${inner}: the name "__proto__" is reserved; nothing was written`, [{ field: f.name, reason: `${inner}: the name "__proto__" is reserved` }]);
    }
    const n = batch.numRows;
    const values = fields.map((f, j) => columnValues(f.name, f.type, batch.getChildAt(j)!, rows.length));
    const code = rowCodeFor(fields.map((f) => ({ name: f.name })));
    if (code) {
      for (const row of code.build(values, n)) rows.push(row);
      continue;
    }
    for (let i = 0; i < n; i++) {
      const row: Record<string, unknown> = {};
      for (let j = 0; j < fields.length; j++) row[fields[j].name] = values[j][i];
      rows.push(row);
    }
  }
  return rows;
}

/** Arrow types whose values read the same as one of our column types (see decodeColumn). */
function sameAs(type: A.DataType): ColumnType | undefined {
  // Half floats are stored as raw 16-bit patterns; Arrow's own getter converts them.
  if (A.DataType.isFloat(type)) return type.precision === A.Precision.HALF ? undefined : { kind: 'float64' };
  // Typed-array values of up to 32 bits read as exact numbers; unsigned 64-bit goes through the generic path.
  if (A.DataType.isInt(type)) return type.bitWidth < 64 ? { kind: 'int32' } : type.isSigned ? { kind: 'int64' } : undefined;
  if (A.DataType.isTimestamp(type)) return type.unit === A.TimeUnit.MILLISECOND ? { kind: 'timestamp' } : undefined;
  if (A.DataType.isUtf8(type)) return { kind: 'string' };
  if (A.DataType.isBool(type)) return { kind: 'bool' };
  return undefined;
}

/** Where a field named `__proto__` is among `type`'s children, at any depth (`s.__proto__`, `[].__proto__`); undefined when none is. */
function reservedFieldIn(type: A.DataType, at = ''): string | undefined {
  const element = A.DataType.isList(type) || A.DataType.isFixedSizeList(type) || A.DataType.isMap(type);
  for (const child of (type.children ?? []) as A.Field[]) {
    const path = element ? `${at}[]` : `${at}${at ? '.' : ''}${child.name}`;
    if (!element && child.name === '__proto__') return `field ${path}`;
    const deeper = reservedFieldIn(child.type, path);
    if (deeper) return deeper;
  }
  return undefined;
}

/**
 * The first Arrow type in `type` (itself or a child, a dictionary's values)
 * whose values asof cannot read as they were sent: Arrow gives decimals,
 * intervals and binary as typed arrays of raw words or bytes, which would be
 * stored as lists of numbers (Decimal(10, 2) 123.45 as [12345,0,0,0]).
 * No column type holds them exactly, so they are refused, not converted.
 */
function unreadableType(type: A.DataType): A.DataType | undefined {
  if (A.DataType.isDecimal(type) || A.DataType.isBinary(type) || A.DataType.isLargeBinary(type) || A.DataType.isFixedSizeBinary(type) || A.DataType.isInterval(type)) return type;
  if (A.DataType.isDictionary(type)) return unreadableType(type.dictionary);
  for (const child of (type.children ?? []) as A.Field[]) {
    const t = unreadableType(child.type);
    if (t) return t;
  }
  return undefined;
}

/** A column's values as plain JS values; `base` is the index of the batch's first row among the body's rows (for errors). */
function columnValues(name: string, type: A.DataType, vec: A.Vector, base: number): unknown[] {
  const unreadable = unreadableType(type);
  if (unreadable) {
    // A column of nulls only stores nulls, exactly: refused only where a value is present.
    let i = 0;
    while (i < vec.length && !vec.isValid(i)) i++;
    if (i < vec.length) {
      const what = unreadable === type ? `Arrow type ${String(type)}` : `Arrow type ${String(type)} (holding ${String(unreadable)})`;
      const reason = `${what} has no exact form in asof's column types (decimal, binary and interval values are refused, not stored as their raw words or bytes nor rounded); send decimals as Utf8 or Float64, bytes as Utf8 text`;
      throw new AsofError('ASOF_INVALID_ROW', `row ${base + i}: column "${name}": ${reason}; nothing was written`, [{ row: base + i, field: name, reason }]);
    }
  }
  // Arrow's decoder would turn bytes that are not UTF-8 into U+FFFD: each chunk's text bytes are checked at once, natively.
  if (A.DataType.isUtf8(type) || A.DataType.isLargeUtf8(type)) {
    for (const d of vec.data) {
      if (d.values && !isUtf8(d.values)) throw new AsofError('ASOF_INVALID_ROW', `column "${name}": the text is not valid UTF-8; nothing was written`, [{ field: name, reason: 'not valid UTF-8' }]);
    }
  }
  const as = sameAs(type);
  if (as) return decodeColumn(as, vec);
  if (A.DataType.isTimestamp(type) || A.DataType.isDate(type)) return timeValues(vec);
  const out: unknown[] = new Array(vec.length);
  let i = 0;
  try {
    for (; i < vec.length; i++) out[i] = vec.isValid(i) ? arrowToJs(vec.get(i)) : null;
  } catch (e) {
    if (!(e instanceof ReservedMapKey)) throw e;
    const reason = `at ${e.path.join('.')}: the name "__proto__" is reserved (an Arrow map key)`;
    throw new AsofError('ASOF_INVALID_ROW', `row ${base + i}: column "${name}": ${reason}; nothing was written`, [{ row: base + i, field: name, reason }]);
  }
  return out;
}

/**
 * A map key `__proto__` met while reading a value, with its path in the value
 * (keys and list indexes). Unlike a struct's field names, a map's keys are
 * data, so they are checked value by value: assigned to a plain object, the
 * key would replace its prototype and the entry would be gone from the row.
 */
class ReservedMapKey extends Error {
  constructor(readonly path: (string | number)[]) {
    super('reserved map key');
  }
}

/** Integer division rounded down (toward -infinity, as a time's fraction is dropped), in bigint. */
const floorDiv = (v: bigint, d: bigint): bigint => (v % d < 0n ? v / d - 1n : v / d);

/**
 * A timestamp or date vector → epoch ms, from its stored integers: seconds
 * times 1000, µs and ns rounded down to the ms a timestamp column holds (like
 * finer RFC 3339 fractions), days times 86,400,000. Not Arrow's getter, which
 * divides µs and ns in float64 and so moves a value near a millisecond's end
 * into the next (1700000000000999999 ns read as 1700000000001 ms, a
 * millisecond late), nor `toArray`, which gives a list's raw µs as if they
 * were ms.
 */
function timeValues(vec: A.Vector): (number | null)[] {
  const out = new Array<number | null>(vec.length);
  let k = 0;
  for (const d of vec.data) {
    const t = d.type as A.DataType;
    const unit = A.DataType.isTimestamp(t) ? t.unit : undefined;
    const values = d.values as ArrayLike<bigint | number>;
    for (let i = 0; i < d.length; i++, k++) {
      if (!d.getValid(i)) out[k] = null;
      else if (unit === A.TimeUnit.SECOND) out[k] = Number(BigInt(values[i]) * 1000n);
      else if (unit === A.TimeUnit.MICROSECOND) out[k] = Number(floorDiv(BigInt(values[i]), 1000n));
      else if (unit === A.TimeUnit.NANOSECOND) out[k] = Number(floorDiv(BigInt(values[i]), 1_000_000n));
      else out[k] = Number(vec.get(k)); // ms timestamps and dates (days or ms): exact integers already
    }
  }
  return out;
}

/** An Arrow value → a plain JS value; a map key `__proto__` throws ReservedMapKey naming its path. */
function arrowToJs(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (v instanceof A.Vector) {
    if (A.DataType.isTimestamp(v.type) || A.DataType.isDate(v.type)) return timeValues(v);
    const items = v.toArray() as ArrayLike<unknown>;
    const out = new Array<unknown>(items.length);
    for (let i = 0; i < items.length; i++) out[i] = within(i, items[i]);
    return out;
  }
  // Raw words or bytes (decimals, binary, intervals): their columns are refused before any value is read (unreadableType).
  if (ArrayBuffer.isView(v)) throw new Error(`an Arrow value of raw words or bytes (${v.constructor.name}) has no exact form in asof`);
  if (typeof v === 'object') {
    // A map's keys are read from the map itself: its toJSON assigns them to a plain object, where `__proto__` sets the prototype and vanishes.
    if (v instanceof A.MapRow) {
      for (const [k] of v as Iterable<[unknown, unknown]>) if (String(k) === '__proto__') throw new ReservedMapKey(['__proto__']);
    }
    const o = (typeof (v as { toJSON?: unknown }).toJSON === 'function' ? (v as { toJSON(): unknown }).toJSON() : v) as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = within(k, x);
    return out;
  }
  return v;
}

/** arrowToJs of the value at `key` of a list or object, the key put in front of the path of a reserved map key found inside. */
function within(key: string | number, x: unknown): unknown {
  if (x === null || typeof x !== 'object') return arrowToJs(x);
  try {
    return arrowToJs(x);
  } catch (e) {
    if (e instanceof ReservedMapKey) e.path.unshift(key);
    throw e;
  }
}
