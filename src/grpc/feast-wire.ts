/**
 * Feast's `GetOnlineFeaturesResponse` written by hand (see wire.ts), from the
 * column-oriented answer of src/feast/online.ts: proto-loader's serializer
 * would first copy every value into a protobufjs message object. Values are
 * typed by `toFeastValue` (the one statement of Feast's typing rules); this
 * file only puts each field it sets on the wire, with the field numbers of
 * proto/feast/types/Value.proto and proto/feast/serving/ServingService.proto.
 */
import type { FeastAnswer } from '../feast/online.js';
import { toFeastValue, type FeastValue } from '../feast/values.js';
import { STATUS_NUMBER } from './online-wire.js';
import { FIXED32, FIXED64, LEN, ProtoWriter, tagOf, VARINT } from './wire.js';

/** feast.types.Value's fields: number, and how the value (or each list item) is written. */
type Kind = 'string' | 'int32' | 'int64' | 'double' | 'float' | 'bool' | 'null' | 'map' | 'map_list';
const FIELDS: Record<string, { field: number; kind: Kind; list?: boolean }> = {
  string_val: { field: 2, kind: 'string' },
  int32_val: { field: 3, kind: 'int32' },
  int64_val: { field: 4, kind: 'int64' },
  double_val: { field: 5, kind: 'double' },
  float_val: { field: 6, kind: 'float' },
  bool_val: { field: 7, kind: 'bool' },
  unix_timestamp_val: { field: 8, kind: 'int64' },
  string_list_val: { field: 12, kind: 'string', list: true },
  int32_list_val: { field: 13, kind: 'int32', list: true },
  int64_list_val: { field: 14, kind: 'int64', list: true },
  double_list_val: { field: 15, kind: 'double', list: true },
  float_list_val: { field: 16, kind: 'float', list: true },
  bool_list_val: { field: 17, kind: 'bool', list: true },
  unix_timestamp_list_val: { field: 18, kind: 'int64', list: true },
  null_val: { field: 19, kind: 'null' },
  map_val: { field: 20, kind: 'map' },
  map_list_val: { field: 21, kind: 'map_list' },
};

const WIRE: Record<Kind, number> = { string: LEN, int32: VARINT, int64: VARINT, double: FIXED64, float: FIXED32, bool: VARINT, null: VARINT, map: LEN, map_list: LEN };

function scalar(w: ProtoWriter, kind: Kind, x: unknown): void {
  switch (kind) {
    case 'string':
      return w.string(x as string);
    case 'int32':
      return w.int32(x as number);
    case 'int64':
      return w.int64(x as number | string);
    case 'double':
      return w.double(x as number);
    case 'float':
      return w.float(x as number);
    case 'bool':
      return w.bool(x as boolean);
    default:
      throw new Error(`not a scalar: ${kind}`);
  }
}

/** A Feast Value's fields (the one set in `v`). */
function writeValue(w: ProtoWriter, v: FeastValue): void {
  for (const name in v) {
    const f = FIELDS[name];
    if (!f) throw new Error(`no feast.types.Value field "${name}"`);
    const x = v[name];
    if (f.kind === 'null') {
      w.uint32(tagOf(f.field, VARINT));
      w.uint32(0);
    } else if (f.kind === 'map') {
      w.uint32(tagOf(f.field, LEN));
      const s = w.begin();
      writeMap(w, x as { val: Record<string, FeastValue> });
      w.end(s);
    } else if (f.kind === 'map_list') {
      w.uint32(tagOf(f.field, LEN));
      const s = w.begin();
      for (const m of (x as { val: { val: Record<string, FeastValue> }[] }).val) {
        w.uint32(tagOf(1, LEN));
        const ms = w.begin();
        writeMap(w, m);
        w.end(ms);
      }
      w.end(s);
    } else if (f.list) {
      // A XxxList message: `repeated T val = 1`, packed unless T is a string.
      w.uint32(tagOf(f.field, LEN));
      const s = w.begin();
      const items = (x as { val: ArrayLike<unknown> }).val;
      if (f.kind === 'string') {
        for (let i = 0; i < items.length; i++) {
          w.uint32(tagOf(1, LEN));
          w.string(items[i] as string);
        }
      } else if (items.length) {
        w.uint32(tagOf(1, LEN));
        const p = w.begin();
        for (let i = 0; i < items.length; i++) scalar(w, f.kind, items[i]);
        w.end(p);
      }
      w.end(s);
    } else {
      w.uint32(tagOf(f.field, WIRE[f.kind]));
      scalar(w, f.kind, x);
    }
  }
}

/** feast.types.Map: `map<string, Value> val = 1`. */
function writeMap(w: ProtoWriter, m: { val: Record<string, FeastValue> }): void {
  for (const key in m.val) {
    w.uint32(tagOf(1, LEN));
    const entry = w.begin();
    w.uint32(tagOf(1, LEN));
    w.string(key);
    w.uint32(tagOf(2, LEN));
    const value = w.begin();
    writeValue(w, m.val[key]);
    w.end(value);
    w.end(entry);
  }
}

const out = new ProtoWriter();

/**
 * The answer: `metadata.feature_names`, then one FeatureVector per column
 * (values, statuses, event timestamps; the epoch where a value has none).
 */
export function encodeFeastAnswer(answer: FeastAnswer): Buffer {
  const w = out.reset();
  w.uint32(tagOf(1, LEN));
  const md = w.begin();
  w.uint32(tagOf(1, LEN));
  const names = w.begin();
  for (const c of answer.columns) {
    w.uint32(tagOf(1, LEN));
    w.string(c.name);
  }
  w.end(names);
  w.end(md);
  for (const c of answer.columns) {
    w.uint32(tagOf(2, LEN));
    const vec = w.begin();
    for (const v of c.values) {
      w.uint32(tagOf(1, LEN));
      const s = w.begin();
      writeValue(w, toFeastValue(c.type, v));
      w.end(s);
    }
    if (c.statuses.length) {
      w.uint32(tagOf(2, LEN));
      const s = w.begin();
      for (const st of c.statuses) w.uint32(STATUS_NUMBER[st]);
      w.end(s);
    }
    for (const t of c.eventTimes) {
      w.uint32(tagOf(3, LEN));
      const s = w.begin();
      w.timestamp(t ?? 0);
      w.end(s);
    }
    w.end(vec);
  }
  return w.finish();
}
