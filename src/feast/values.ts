/**
 * Feast's typed values (`feast.types.Value`), built from asof values and
 * rendered back to the JSON Feast's Python feature server answers with.
 *
 * Which field a value takes follows the feature's column type, never the
 * value itself, so a column always answers in one type:
 *   bool → bool_val; int32 → int32_val; int64 → int64_val; float32 → float_val;
 *   float64 → double_val; string → string_val; timestamp → unix_timestamp_val
 *   (whole seconds since the epoch, UTC, as Feast stores them; milliseconds are
 *   dropped, rounding down); vector<D> → float_list_val; struct → map_val;
 *   list<T> → the T list (bool_list_val, int32_list_val, int64_list_val,
 *   float_list_val, double_list_val, string_list_val, unix_timestamp_list_val),
 *   list<struct> → map_list_val; json, list<json|list|vector> → string_val
 *   holding the value's JSON text; null → null_val.
 * Feast's typed lists cannot hold null items: in float lists a null item
 * becomes NaN (Feast's own convention); any other list with a null item is sent
 * whole as JSON text in string_val.
 *
 * Objects here are in the shape @grpc/proto-loader serializes (snake_case
 * field names, int64 as decimal strings or numbers), which is also what
 * the generated codec (src/grpc/codecs.ts) writes to the wire.
 */
import { isUtf8 } from 'node:buffer';
import { AsofError } from '../errors.js';
import { toJsonValue } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';

/** A `feast.types.Value` as a plain object: exactly one field set (or none, meaning null). */
export type FeastValue = Record<string, unknown>;

export const FEAST_NULL: FeastValue = Object.freeze({ null_val: 'NULL' });

const LIST_FIELD: Partial<Record<ColumnType['kind'], string>> = {
  bool: 'bool_list_val',
  int32: 'int32_list_val',
  int64: 'int64_list_val',
  float32: 'float_list_val',
  float64: 'double_list_val',
  string: 'string_list_val',
  timestamp: 'unix_timestamp_list_val',
};

/** Epoch ms → whole seconds since the epoch (rounded down, as Feast's int64 seconds). */
const seconds = (ms: unknown): number => Math.floor((ms as number) / 1000);

/** An int64 as proto-loader takes it: a number, or a decimal string beyond 2^53. */
const int64 = (v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);

/**
 * A canonical asof value (see engine/schema.ts: timestamps epoch ms, int64
 * beyond 2^53 as decimal strings or bigints) → a Feast value typed by `type`.
 */
export function toFeastValue(type: ColumnType, v: unknown): FeastValue {
  if (v === null || v === undefined) return FEAST_NULL;
  switch (type.kind) {
    case 'bool':
      return { bool_val: v };
    case 'int32':
      return { int32_val: v };
    case 'int64':
      return { int64_val: int64(v) };
    case 'float32':
      return { float_val: v };
    case 'float64':
      return { double_val: v };
    case 'string':
      return { string_val: v };
    case 'timestamp':
      return { unix_timestamp_val: seconds(v) };
    case 'json':
      return { string_val: JSON.stringify(v) };
    case 'vector':
      return { float_list_val: { val: v } };
    case 'struct':
      return { map_val: structMap(type, v as Record<string, unknown>) };
    case 'list':
      return listValue(type, v as unknown[]);
  }
}

function structMap(type: Extract<ColumnType, { kind: 'struct' }>, o: Record<string, unknown>): { val: Record<string, FeastValue> } {
  const val: Record<string, FeastValue> = {};
  for (const f of type.fields) val[f.name] = toFeastValue(f.type, o[f.name]);
  return { val };
}

function listValue(type: Extract<ColumnType, { kind: 'list' }>, items: unknown[]): FeastValue {
  const item = type.item;
  const field = LIST_FIELD[item.kind];
  const hasNull = items.some((x) => x === null || x === undefined);
  if (field && !hasNull) return { [field]: { val: item.kind === 'timestamp' ? items.map(seconds) : item.kind === 'int64' ? items.map(int64) : items } };
  if (field && (item.kind === 'float32' || item.kind === 'float64')) return { [field]: { val: items.map((x) => (x === null || x === undefined ? NaN : x)) } };
  if (item.kind === 'struct' && !hasNull) return { map_list_val: { val: items.map((x) => structMap(item, x as Record<string, unknown>)) } };
  // As JSON text: the items in their JSON form (timestamps RFC 3339, int64 beyond 2^53 as strings).
  return { string_val: JSON.stringify(toJsonValue(type, items)) };
}

/**
 * A Feast value → plain JSON, the way Feast's feature server renders it (its
 * protobuf JSON patch): the set field's value itself, lists as arrays, null for
 * null_val or nothing set, unix_timestamp_val as a number of seconds. Beyond
 * Feast: int64 outside ±2^53 as a decimal string (JSON numbers cannot hold it),
 * NaN as null (JSON has no NaN), map_val as an object.
 */
export function feastValueJson(v: FeastValue): unknown {
  for (const k in v) {
    const x = v[k];
    switch (k) {
      case 'null_val':
        return null;
      case 'int64_val':
      case 'unix_timestamp_val':
        return int64Json(x);
      case 'double_val':
      case 'float_val':
        return Number.isNaN(x) ? null : x;
      case 'map_val':
        return mapJson(x as { val: Record<string, FeastValue> });
      case 'map_list_val':
        return (x as { val: { val: Record<string, FeastValue> }[] }).val.map(mapJson);
      default:
        if (k.endsWith('_list_val')) {
          const items = (x as { val: unknown[] }).val;
          return k === 'int64_list_val' || k === 'unix_timestamp_list_val' ? items.map(int64Json) : items.map((i) => (typeof i === 'number' && Number.isNaN(i) ? null : i));
        }
        return x;
    }
  }
  return null;
}

function mapJson(m: { val: Record<string, FeastValue> }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m.val)) out[k] = feastValueJson(v);
  return out;
}

function int64Json(x: unknown): unknown {
  if (typeof x === 'number') return x;
  const n = Number(x);
  return Number.isSafeInteger(n) ? n : String(x);
}

/**
 * A decoded Feast value (proto-loader object, `oneofs: true` so `val` names the
 * set field, int64 as strings) → a plain JS value for asof's entity-key
 * coercion: int64 → number when safe else decimal string; unix_timestamp_val →
 * epoch ms; bytes_val → its UTF-8 text; lists → arrays, each item read as the
 * single value of its kind is (bytes_list_val items as UTF-8 text, map_list_val
 * items as map_val); null_val or nothing set → null. `field` names the value in
 * errors (`entities.user_id[3]`, an item `entities.user_id[3][0]`).
 */
export function fromFeastValue(v: FeastValue | null | undefined, field = 'value'): unknown {
  if (!v) return null;
  const set = (v.val as string | undefined) ?? Object.keys(v).find((k) => k !== 'val');
  if (set === undefined || set === 'null_val') return null;
  const x = v[set];
  switch (set) {
    case 'int64_val':
      return int64Json(x);
    case 'unix_timestamp_val':
      return Number(x) * 1000;
    case 'bytes_val':
      return utf8Text(x, field, 'bytes_val');
    case 'map_val': {
      const out: Record<string, unknown> = {};
      for (const [k, i] of Object.entries((x as { val: Record<string, FeastValue> }).val ?? {})) out[k] = fromFeastValue(i, `${field}.${k}`);
      return out;
    }
    default: {
      if (set.endsWith('_list_val')) {
        const items = (x as { val?: unknown[] }).val ?? [];
        if (set === 'int64_list_val') return items.map(int64Json);
        if (set === 'unix_timestamp_list_val') return items.map((i) => Number(i) * 1000);
        if (set === 'bytes_list_val') return items.map((i, j) => utf8Text(i, `${field}[${j}]`, 'a bytes_list_val item'));
        if (set === 'map_list_val') return items.map((i, j) => fromFeastValue({ map_val: i }, `${field}[${j}]`));
        return items;
      }
      return x;
    }
  }
}

/**
 * Feast bytes → text, refusing bytes that are not UTF-8: decoding with
 * replacement would turn every bad byte into U+FFFD, and so one entity into
 * another's key. `what` names the Feast field in the message.
 */
function utf8Text(x: unknown, field: string, what: string): string {
  const bytes = Buffer.from(x as Uint8Array);
  if (!isUtf8(bytes)) throw new AsofError('ASOF_INVALID_ARGUMENT', `${field}: ${what} is not valid UTF-8 text`, [{ field, reason: `${what} is not valid UTF-8` }]);
  return bytes.toString('utf8');
}

/** Epoch ms → `google.protobuf.Timestamp` fields (seconds rounded down, the rest as nanos). */
export function protoTimestamp(ms: number): { seconds: number; nanos: number } {
  const s = Math.floor(ms / 1000);
  return { seconds: s, nanos: (ms - s * 1000) * 1_000_000 };
}

/**
 * Epoch ms → a Timestamp in protobuf's JSON form, as Feast's feature server
 * writes it: RFC 3339 UTC with "Z", no fraction on whole seconds, else
 * milliseconds (`1970-01-01T00:00:00Z`, `2024-05-01T10:00:00.250Z`).
 */
export function protoJsonTimestamp(ms: number): string {
  const iso = new Date(ms).toISOString();
  return ms % 1000 === 0 ? iso.slice(0, 19) + 'Z' : iso;
}
