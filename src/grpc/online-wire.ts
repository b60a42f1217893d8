/**
 * `asof.v1.OnlineService/GetOnlineFeatures` on the wire, by hand (see wire.ts):
 * the request read into entity keys and a selection, the answer written
 * straight from the online service's `Evaluation` (canonical values, numeric
 * event times). What is the same for every call of a plan, the encoded
 * feature list and each feature's value writer, is built once per plan.
 *
 * Field numbers are those of proto/asof/v1/online.proto and values.proto; a
 * test decodes these bytes with proto-loader and compares them with the REST
 * answer for the same entities.
 */
import { AsofError } from '../errors.js';
import { formatType, type ColumnType } from '../engine/types.js';
import type { FeatureStatus } from '../features/evaluator.js';
import type { Evaluation, FeatureSelection, Plan } from '../online/service.js';
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

// ---- the request ------------------------------------------------------------------------------

/** A decoded GetOnlineFeaturesRequest. */
export interface OnlineRequest {
  /** Each entity's `Value` message as sent: converted to a key by `entityKeys`, and echoed back in the answer. */
  entities: Buffer[];
  /** The same object for the same selection bytes, so the online service's plan cache hits by identity. */
  selection: FeatureSelection;
}

const NO_SELECTION: FeatureSelection = Object.freeze({});
const selections = new Map<string, FeatureSelection>();
const MAX_SELECTIONS = 1000;

/** Request bytes → entities and selection. Throws on malformed protobuf (grpc-js then answers INTERNAL, as for any undecodable request). */
export function decodeOnlineRequest(buf: Buffer): OnlineRequest {
  const r = new ProtoReader(buf);
  const entities: Buffer[] = [];
  let kind = 0;
  let start = 0;
  let end = 0;
  while (r.pos < r.end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if (field >= 1 && field <= 4 && (tag & 7) === LEN) {
      const [s, e] = r.span();
      if (field === 1) entities.push(buf.subarray(s, e));
      else {
        // A oneof: the last member given wins.
        kind = field;
        start = s;
        end = e;
      }
    } else r.skip(tag & 7);
  }
  return { entities, selection: kind === 0 ? NO_SELECTION : selectionOf(buf, kind, start, end) };
}

function selectionOf(buf: Buffer, kind: number, start: number, end: number): FeatureSelection {
  const key = kind + buf.toString('latin1', start, end);
  let sel = selections.get(key);
  if (!sel) {
    if (kind === 2) {
      const refs: string[] = [];
      const r = new ProtoReader(buf, start, end);
      while (r.pos < r.end) {
        const tag = r.uint32();
        if (tag === tagOf(1, LEN)) refs.push(r.string());
        else r.skip(tag & 7);
      }
      sel = { features: refs };
    } else {
      const text = buf.toString('utf8', start, end);
      sel = kind === 3 ? { view: text } : { service: text };
    }
    if (selections.size >= MAX_SELECTIONS) selections.clear();
    selections.set(key, Object.freeze(sel));
  }
  return sel;
}

/**
 * The entities' Values → the plain values the online service takes as keys
 * (int64 as a number when safe, else a decimal string; timestamps as epoch ms;
 * json_value parsed; lists, structs and vectors as arrays and objects; no
 * field or null_value → null). A Value that cannot be read is a 400 naming it.
 */
export function entityKeys(entities: Buffer[]): unknown[] {
  const out = new Array<unknown>(entities.length);
  for (let i = 0; i < entities.length; i++) {
    const b = entities[i];
    try {
      out[i] = readValue(new ProtoReader(b));
    } catch (e) {
      const reason = (e as Error).message;
      throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${i} is not a readable asof.v1.Value: ${reason}`, [{ row: i, field: 'entity', reason }]);
    }
  }
  return out;
}

function readValue(r: ProtoReader): unknown {
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
        v = readTimestamp(r.message());
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
          if (t === T_FIRST) items.push(readValue(list.message()));
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
            else if (et === T_SECOND) value = readValue(entry.message());
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

/** google.protobuf.Timestamp → epoch ms (sub-millisecond nanos dropped). */
function readTimestamp(r: ProtoReader): number {
  let seconds = 0;
  let nanos = 0;
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === tagOf(1, VARINT)) seconds = Number(r.int64());
    else if (tag === tagOf(2, VARINT)) nanos = r.uint32() | 0;
    else r.skip(tag & 7);
  }
  return seconds * 1000 + Math.floor(nanos / 1_000_000);
}

/** Vector.values: repeated float, packed or not (a reader must take both). */
function readFloats(r: ProtoReader): number[] {
  const out: number[] = [];
  while (r.pos < r.end) {
    const tag = r.uint32();
    if (tag === tagOf(1, LEN)) {
      const packed = r.message();
      if ((packed.end - packed.pos) % 4) throw new Error('packed floats of a length not a multiple of 4');
      while (packed.pos < packed.end) out.push(packed.float());
    } else if (tag === tagOf(1, FIXED32)) out.push(r.float());
    else r.skip(tag & 7);
  }
  return out;
}

// ---- the answer -------------------------------------------------------------------------------

/** Writes a canonical value (see engine/schema.ts) of one column type as a `Value` message's fields. */
export type ValueWriter = (w: ProtoWriter, v: unknown) => void;


/** null_value: NULL_VALUE (0); a oneof member is written even at its default. */
function writeNull(w: ProtoWriter): void {
  w.uint32(T_NULL);
  w.uint32(0);
}

/** A google.protobuf.Timestamp's fields from epoch ms (seconds rounded down, the rest as nanos); both written, zero or not. */
export function writeTimestamp(w: ProtoWriter, ms: number): void {
  const s = Math.floor(ms / 1000);
  w.uint32(tagOf(1, VARINT));
  w.int64(s);
  w.uint32(tagOf(2, VARINT));
  w.uint32((ms - s * 1000) * 1_000_000);
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
        writeTimestamp(w, v as number);
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

export const STATUS_NUMBER: Record<FeatureStatus, number> = { PRESENT: 1, NULL_VALUE: 2, NOT_FOUND: 3, OUTSIDE_MAX_AGE: 4 };

/** Per plan: the answer's `features` field (the FeatureInfo list, the same for every call) and each feature's value writer. */
interface PlanWire {
  prefix: Buffer;
  values: ValueWriter[];
}

const planWires = new WeakMap<Plan, PlanWire>();

function planWire(plan: Plan): PlanWire {
  let pw = planWires.get(plan);
  if (!pw) {
    const w = new ProtoWriter(256);
    for (const f of plan.features) {
      w.uint32(T_FIRST);
      const s = w.begin();
      w.uint32(tagOf(1, LEN));
      w.string(f.ref);
      w.uint32(tagOf(2, LEN));
      w.string(f.view);
      w.uint32(tagOf(3, LEN));
      w.string(f.feature);
      w.uint32(tagOf(4, LEN));
      w.string(formatType(f.type));
      w.end(s);
    }
    pw = { prefix: w.finish(), values: plan.features.map((f) => valueWriter(f.type)) };
    planWires.set(plan, pw);
  }
  return pw;
}

// Encoding is synchronous: one buffer serves every call.
const out = new ProtoWriter();
const tokenBytes = new ProtoWriter(256);

/** A GetOnlineFeaturesResponse for `e`; `entities` are the request's Value messages, in the same order. */
export function encodeOnlineAnswer(e: Evaluation, entities: Uint8Array[]): Buffer {
  const pw = planWire(e.plan);
  const nf = e.plan.features.length;
  // map<string, int64> token: the same entries in every result.
  const t = tokenBytes.reset();
  for (const table in e.token) {
    t.uint32(tagOf(3, LEN));
    const s = t.begin();
    t.uint32(tagOf(1, LEN));
    t.string(table);
    t.uint32(tagOf(2, VARINT));
    t.int64(e.token[table]);
    t.end(s);
  }
  const token = t.buf.subarray(0, t.pos);

  const w = out.reset();
  w.raw(pw.prefix);
  const { values, statuses, eventTimes } = e;
  for (let i = 0; i < entities.length; i++) {
    w.uint32(tagOf(2, LEN));
    const result = w.begin();
    w.uint32(T_FIRST);
    w.uint32(entities[i].length);
    w.raw(entities[i]);
    for (let f = 0, k = i * nf; f < nf; f++, k++) {
      w.uint32(tagOf(2, LEN));
      const fv = w.begin();
      w.uint32(T_FIRST);
      const value = w.begin();
      pw.values[f](w, values[k]);
      w.end(value);
      w.uint32(tagOf(2, VARINT));
      w.uint32(STATUS_NUMBER[statuses[k]]);
      const et = eventTimes[k];
      if (et !== null && et !== undefined) {
        w.uint32(tagOf(3, LEN));
        const ts = w.begin();
        writeTimestamp(w, et);
        w.end(ts);
      }
      w.end(fv);
    }
    w.raw(token);
    w.end(result);
  }
  return w.finish();
}
