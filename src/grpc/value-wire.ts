/**
 * `asof.v1.Value` written by hand (see wire.ts, and online-wire.ts for the
 * measurement that keeps it) from canonical values typed by their column
 * (see proto/asof/v1/values.proto for which field each type takes).
 */
import type { ColumnType } from '../engine/types.js';
import { FIXED32, FIXED64, LEN, ProtoWriter, tagOf, VARINT } from './wire.js';

// Tags of asof.v1.Value's fields, and of field 1 and 2 as messages (list items, map entries, keys, values).
const T_NULL = tagOf(1, VARINT);
const T_BOOL = tagOf(2, VARINT);
const T_INT32 = tagOf(3, VARINT);
const T_INT64 = tagOf(4, VARINT);
const T_FLOAT = tagOf(5, FIXED32);
const T_DOUBLE = tagOf(6, FIXED64);
const T_STRING = tagOf(7, LEN);
const T_TIMESTAMP = tagOf(8, LEN);
const T_JSON = tagOf(9, LEN);
const T_LIST = tagOf(10, LEN);
const T_STRUCT = tagOf(11, LEN);
const T_VECTOR = tagOf(12, LEN);
const T_FIRST = tagOf(1, LEN);
const T_SECOND = tagOf(2, LEN);

/** Writes a canonical value (see engine/schema.ts) of one column type as a `Value` message's fields. */
export type ValueWriter = (w: ProtoWriter, v: unknown) => void;

/** null_value: NULL_VALUE (0); a oneof member is written even at its default. */
function writeNull(w: ProtoWriter): void {
  w.uint32(T_NULL);
  w.uint32(0);
}

/** The Value writer of a column type: which field a value takes follows the type, never the value (see values.proto). */
export function valueWriter(type: ColumnType): ValueWriter {
  const write = setWriter(type);
  return (w, v) => (v === null || v === undefined ? writeNull(w) : write(w, v));
}

/** A field of `tag` whose value `put` writes. */
const field =
  (tag: number, put: ValueWriter): ValueWriter =>
  (w, v) => {
    w.uint32(tag);
    put(w, v);
  };

/** A length-delimited field of `tag` (a nested message, packed floats) whose body `put` writes. */
const message =
  (tag: number, put: ValueWriter): ValueWriter =>
  (w, v) => {
    w.uint32(tag);
    const s = w.begin();
    put(w, v);
    w.end(s);
  };

function setWriter(type: ColumnType): ValueWriter {
  switch (type.kind) {
    case 'bool':
      return field(T_BOOL, (w, v) => w.bool(v as boolean));
    case 'int32':
      return field(T_INT32, (w, v) => w.int32(v as number));
    case 'int64':
      return field(T_INT64, (w, v) => w.int64(v as number | string | bigint));
    case 'float32':
      return field(T_FLOAT, (w, v) => w.float(v as number));
    case 'float64':
      return field(T_DOUBLE, (w, v) => w.double(v as number));
    case 'string':
      return field(T_STRING, (w, v) => w.string(v as string));
    case 'json':
      return field(T_JSON, (w, v) => w.string(JSON.stringify(v)));
    case 'timestamp':
      return message(T_TIMESTAMP, (w, v) => w.timestamp(v as number));
    case 'list': {
      // Each item a Value message, null or not.
      const item = message(T_FIRST, valueWriter(type.item));
      return message(T_LIST, (w, v) => {
        for (const x of v as unknown[]) item(w, x);
      });
    }
    case 'struct': {
      // map<string, Value>: an entry message per field, key 1 and value 2.
      const fields = type.fields.map((f) => ({ name: f.name, value: message(T_SECOND, valueWriter(f.type)) }));
      return message(T_STRUCT, (w, v) => {
        const o = v as Record<string, unknown>;
        for (const f of fields) {
          w.uint32(T_FIRST);
          const entry = w.begin();
          w.uint32(T_FIRST);
          w.string(f.name);
          f.value(w, o[f.name]);
          w.end(entry);
        }
      });
    }
    case 'vector':
      // Vector.values: packed floats.
      return message(
        T_VECTOR,
        message(T_FIRST, (w, v) => {
          for (const x of v as number[]) w.float(x);
        }),
      );
  }
}
