/**
 * `asof.v1.Value` on the wire, by hand (see wire.ts): read into the plain
 * values asof's validators take, and written from canonical values typed by
 * their column (see proto/asof/v1/values.proto for which field each type takes).
 */
import type { ColumnType } from '../engine/types.js';
import { FIXED32, FIXED64, LEN, ProtoReader, ProtoWriter, tagOf, VARINT } from './wire.js';

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

/**
 * A Value's bytes → the plain value a JSON body would carry (as fromPbValue in
 * values.ts): int64 as a number when safe, else a decimal string; timestamps as
 * epoch ms; json_value parsed; lists, structs and vectors as arrays and
 * objects; no field or null_value → null. Throws on malformed bytes or JSON.
 */
export function readValue(buf: Buffer): unknown {
  return readFields(new ProtoReader(buf));
}

function readFields(r: ProtoReader): unknown {
  let v: unknown = null;
  while (r.pos < r.end) {
    const tag = r.uint32();
    switch (tag) {
      case T_NULL:
        r.uint32();
        v = null;
        break;
      case T_BOOL:
        v = r.uint32() !== 0;
        break;
      case T_INT32:
        v = r.uint32() | 0;
        break;
      case T_INT64:
        v = r.int64();
        break;
      case T_FLOAT:
        v = r.float();
        break;
      case T_DOUBLE:
        v = r.double();
        break;
      case T_STRING:
        v = r.string();
        break;
      case T_TIMESTAMP:
        v = r.message().timestamp();
        break;
      case T_JSON: {
        const text = r.string();
        try {
          v = JSON.parse(text);
        } catch (e) {
          throw new Error(`json_value is not valid JSON: ${(e as Error).message}`);
        }
        break;
      }
      case T_LIST: {
        const list = r.message();
        const items: unknown[] = [];
        while (list.pos < list.end) {
          const t = list.uint32();
          if (t === T_FIRST) items.push(readFields(list.message()));
          else list.skip(t & 7);
        }
        v = items;
        break;
      }
      case T_STRUCT: {
        const struct = r.message();
        const fields: Record<string, unknown> = {};
        while (struct.pos < struct.end) {
          const t = struct.uint32();
          if (t !== T_FIRST) {
            struct.skip(t & 7);
            continue;
          }
          const entry = struct.message();
          let name = '';
          let value: unknown = null;
          while (entry.pos < entry.end) {
            const et = entry.uint32();
            if (et === T_FIRST) name = entry.string();
            else if (et === T_SECOND) value = readFields(entry.message());
            else entry.skip(et & 7);
          }
          fields[name] = value;
        }
        v = fields;
        break;
      }
      case T_VECTOR:
        v = readFloats(r.message());
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return v;
}

/** Vector.values: repeated float, packed or not (a reader must take both). */
function readFloats(r: ProtoReader): number[] {
  const out: number[] = [];
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === T_FIRST) {
      const packed = r.message();
      if ((packed.end - packed.pos) % 4) throw new Error('packed floats of a length not a multiple of 4');
      while (packed.pos < packed.end) out.push(packed.float());
    } else if (tag === tagOf(1, FIXED32)) out.push(r.float());
    else r.skip(tag & 7);
  }
  return out;
}

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

function setWriter(type: ColumnType): ValueWriter {
  switch (type.kind) {
    case 'bool':
      return (w, v) => {
        w.uint32(T_BOOL);
        w.bool(v as boolean);
      };
    case 'int32':
      return (w, v) => {
        w.uint32(T_INT32);
        w.int32(v as number);
      };
    case 'int64':
      return (w, v) => {
        w.uint32(T_INT64);
        w.int64(v as number | string | bigint);
      };
    case 'float32':
      return (w, v) => {
        w.uint32(T_FLOAT);
        w.float(v as number);
      };
    case 'float64':
      return (w, v) => {
        w.uint32(T_DOUBLE);
        w.double(v as number);
      };
    case 'string':
      return (w, v) => {
        w.uint32(T_STRING);
        w.string(v as string);
      };
    case 'timestamp':
      return (w, v) => {
        w.uint32(T_TIMESTAMP);
        const s = w.begin();
        w.timestamp(v as number);
        w.end(s);
      };
    case 'json':
      return (w, v) => {
        w.uint32(T_JSON);
        w.string(JSON.stringify(v));
      };
    case 'list': {
      const item = valueWriter(type.item);
      return (w, v) => {
        w.uint32(T_LIST);
        const s = w.begin();
        for (const x of v as unknown[]) {
          w.uint32(T_FIRST);
          const i = w.begin();
          item(w, x);
          w.end(i);
        }
        w.end(s);
      };
    }
    case 'struct': {
      const fields = type.fields.map((f) => ({ name: f.name, write: valueWriter(f.type) }));
      return (w, v) => {
        const o = v as Record<string, unknown>;
        w.uint32(T_STRUCT);
        const s = w.begin();
        for (const f of fields) {
          w.uint32(T_FIRST);
          const entry = w.begin();
          w.uint32(T_FIRST);
          w.string(f.name);
          w.uint32(T_SECOND);
          const value = w.begin();
          f.write(w, o[f.name]);
          w.end(value);
          w.end(entry);
        }
        w.end(s);
      };
    }
    case 'vector':
      return (w, v) => {
        w.uint32(T_VECTOR);
        const s = w.begin();
        w.uint32(T_FIRST);
        const packed = w.begin();
        for (const x of v as number[]) w.float(x);
        w.end(packed);
        w.end(s);
      };
  }
}
