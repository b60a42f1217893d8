/**
 * `asof.v1.Value` ↔ asof values. Outgoing values are typed by their column's
 * type (see proto/asof/v1/values.proto); incoming ones become the plain JS
 * values asof's validators take (the same as a JSON request body), so the
 * column types decide what is accepted, once, in the engine.
 */
import { AsofError } from '../errors.js';
import { bentNumberReason, bentNumbers } from '../engine/json-safety.js';
import type { Row, TableSchema } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import { protoTimestamp } from '../feast/values.js';

/** An `asof.v1.Value` as a plain object (proto-loader's shape). */
export type PbValue = Record<string, unknown>;

/** google.protobuf.NullValue as its number. */
export const PB_NULL: PbValue = Object.freeze({ null_value: 0 });

/** A value in its JSON form (timestamps RFC 3339, big int64 as strings) → a Value typed by `type`. */
export function toPbValue(type: ColumnType, v: unknown): PbValue {
  if (v === null || v === undefined) return PB_NULL;
  switch (type.kind) {
    case 'bool':
      return { bool_value: v };
    case 'int32':
      return { int32_value: v };
    case 'int64':
      return { int64_value: v };
    case 'float32':
      return { float_value: v };
    case 'float64':
      return { double_value: v };
    case 'string':
      return { string_value: v };
    case 'timestamp':
      return { timestamp_value: protoTimestamp(typeof v === 'number' ? v : Date.parse(v as string)) };
    case 'json':
      return { json_value: JSON.stringify(v) };
    case 'vector':
      return { vector_value: { values: v } };
    case 'list':
      return { list_value: { values: (v as unknown[]).map((x) => toPbValue(type.item, x)) } };
    case 'struct': {
      const o = v as Record<string, unknown>;
      const fields: Record<string, PbValue> = {};
      for (const f of type.fields) fields[f.name] = toPbValue(f.type, o[f.name]);
      return { struct_value: { fields } };
    }
  }
}

/** A canonical engine row → `asof.v1.Row` (every column of the schema; nulls as null_value). */
export function toPbRow(schema: TableSchema, row: Row): { columns: Record<string, PbValue> } {
  const json = schema.rowToJson(row);
  const columns: Record<string, PbValue> = {};
  for (const c of schema.columns) columns[c.name] = toPbValue(c.type, json[c.name]);
  return { columns };
}

/** Thrown for a Value that cannot be read (a json_value that is not JSON, no kind set); callers name the row and column. */
export class BadJsonValue extends Error {}

const NO_KIND = 'an asof.v1.Value with no kind set (send a null as null_value)';

/** A google.protobuf.Timestamp as proto-loader gives it (int64 seconds as a string or number). */
export interface PbTimestamp {
  seconds?: string | number;
  nanos?: number;
}

/**
 * A Timestamp → epoch ms (the nanos below a millisecond dropped, as the
 * engine keeps milliseconds). protobuf defines nanos as 0..999,999,999, also
 * before 1970; any other is refused (INVALID_ARGUMENT naming `field`), not
 * carried into the seconds: nanos -1 would otherwise be stored a millisecond early.
 */
export function timestampMs(t: PbTimestamp, field: string): number {
  const nanos = t.nanos ?? 0;
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) {
    throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid ${field}: a Timestamp's nanos must be 0 to 999999999, got ${nanos}`, [{ field, reason: 'nanos out of range' }]);
  }
  return Number(t.seconds ?? 0) * 1000 + Math.floor(nanos / 1_000_000);
}

/**
 * A decoded Value → the plain JS value a JSON body would carry: int64 as a
 * number when it is safe, else a decimal string; timestamps as epoch ms;
 * json_value parsed; lists, structs and vectors as arrays and objects;
 * null_value → null. A Value with no kind set is refused (BadJsonValue), not
 * read as null: a null is sent as null_value, so an empty Value is a client's
 * mistake (a value it meant to set), and storing null would bend it.
 */
export function fromPbValue(v: PbValue | null | undefined): unknown {
  if (!v) return null;
  const kind = v.kind as string | undefined;
  switch (kind) {
    case undefined:
      throw new BadJsonValue(NO_KIND);
    case 'null_value':
      return null;
    case 'int64_value': {
      const n = Number(v.int64_value);
      return Number.isSafeInteger(n) ? n : String(v.int64_value);
    }
    case 'timestamp_value':
      return timestampMs(v.timestamp_value as PbTimestamp, 'timestamp_value');
    case 'json_value': {
      let value: unknown;
      try {
        value = JSON.parse(v.json_value as string);
      } catch (e) {
        throw new BadJsonValue(`json_value is not valid JSON: ${(e as Error).message}`);
      }
      // A json_value is a json column's value: a number in it a float64 does not hold as sent is refused (json-safety.ts).
      const bent = bentNumbers(v.json_value as string)[0];
      if (bent) throw new BadJsonValue(`json_value ${bentNumberReason(bent, bent.path)}`);
      return value;
    }
    case 'list_value':
      return ((v.list_value as { values?: PbValue[] }).values ?? []).map(fromPbValue);
    case 'struct_value': {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries((v.struct_value as { fields?: Record<string, PbValue> }).fields ?? {})) {
        // Assigned to a plain object, this name would replace its prototype (the value lost) rather than add a field.
        if (k === '__proto__') throw new BadJsonValue('struct_value field "__proto__": the name "__proto__" is reserved');
        out[k] = fromPbValue(x);
      }
      return out;
    }
    case 'vector_value':
      return (v.vector_value as { values?: number[] }).values ?? [];
    default:
      return v[kind];
  }
}

/** Typed rows of a write → plain row objects; a bad json_value or Timestamp is a 400 naming the row and column. */
export function fromPbRows(rows: { columns?: Record<string, PbValue> }[]): Record<string, unknown>[] {
  return rows.map((r, i) => {
    const out: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(r.columns ?? {})) {
      try {
        out[name] = fromPbValue(v);
      } catch (e) {
        // A json_value that is not JSON, or a Timestamp out of range: the row's error, like any value the column refuses.
        if (!(e instanceof BadJsonValue) && !(e instanceof AsofError)) throw e;
        throw new AsofError('ASOF_INVALID_ROW', `row ${i}: column "${name}": ${e.message}; nothing was written`, [{ row: i, field: name, reason: e.message }]);
      }
    }
    return out;
  });
}
