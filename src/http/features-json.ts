/**
 * The JSON of online lookups, written straight into bytes: the lookup routes
 * are the hot path (benchmarked against a bare route returning the same
 * bytes), and building objects for JSON.stringify, or gluing strings together
 * and encoding them, costs more than reading the store. Keys are bytes made
 * once per plan; values go in through json-bytes.ts (String(double) alone
 * cost more than a whole cached lookup).
 *
 * An entity's part that the lookup cache keeps is encoded once, kept with its
 * shared evaluation, and copied from then on.
 *
 * Output is exactly what JSON.stringify would write for the same answer
 * (`toObjects` in online/evaluation.ts); a unit test holds the two together.
 */
import { formatTimestamp, toJsonValue } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { FeatureStatus } from '../features/evaluator.js';
import type { EntityEval, Evaluation, Plan } from '../online/service.js';
import { isAscii, JsonBytes, small, type Answer } from './json-bytes.js';

export type { Answer };

/** Per plan: each feature's key as bytes, where its value is, and how to write it. */
interface Fragments {
  /** `"view:feature":` for the first feature, `,"view:feature":` for the others. */
  keys: Buffer[];
  keyText: string[];
  /** Writes `"features":{` and every feature's key and value (not the closing brace) of one entity. */
  features: FeaturesWriter;
  /** Feature f's value is `entries[e * groups + group[f]]`'s value number `index[f]`. */
  group: number[];
  index: number[];
  kind: number[];
  type: ColumnType[];
  /** `},"statuses":{...},"eventTimes":{` when every feature is PRESENT, the usual case. */
  allPresent: Buffer;
  /**
   * The inside of `eventTimes` and its `}`, by the one time every feature has, for recent such times (the rows
   * of one commit share one). A time seen once maps to null: its part is kept only from its second use, the
   * only case where keeping pays, in memory of its own (a pooled Buffer would pin an 8 kB slab).
   */
  times: Map<number | null, Buffer | null>;
  /** `,"token":{...}}` as last written for a one-view plan, and the view source's position it names. */
  tail?: { at: number | undefined; bytes: Buffer };
}

const fragmentCache = new WeakMap<Plan, Fragments>();
const STATUS: Record<FeatureStatus, Buffer> = { PRESENT: Buffer.from('"PRESENT"'), NOT_FOUND: Buffer.from('"NOT_FOUND"'), NULL_VALUE: Buffer.from('"NULL_VALUE"'), OUTSIDE_MAX_AGE: Buffer.from('"OUTSIDE_MAX_AGE"') };

function fragmentsOf(plan: Plan): Fragments {
  let f = fragmentCache.get(plan);
  if (!f) {
    const keys = plan.features.map((x, i) => (i ? ',' : '') + JSON.stringify(x.ref) + ':');
    const group = new Array<number>(plan.features.length);
    const index = new Array<number>(plan.features.length);
    plan.groups.forEach((g, gi) => g.positions.forEach((pos, k) => ((group[pos] = gi), (index[pos] = g.indexes[k]))));
    const allPresent = Buffer.from(`},"statuses":{${keys.join('"PRESENT"')}"PRESENT"},"eventTimes":{`);
    const kind = plan.features.map((x) => kindOf(x.type));
    const type = plan.features.map((x) => x.type);
    const features = compileFeatures(keys.map((k, i) => Buffer.from((i ? '' : '"features":{') + k)), group, index, kind, type);
    f = { keys: keys.map((k) => Buffer.from(k)), keyText: keys, features, group, index, kind, type, allPresent, times: new Map() };
    fragmentCache.set(plan, f);
  }
  return f;
}

/** Writes entity `base`'s features part (see Fragments.features) from its entries (`entries[base + group]`). */
type FeaturesWriter = (out: JsonBytes, entries: EntityEval[], base: number) => void;

/** Key bytes per compiled function: each stays small enough for V8's optimizing compiler, whatever the plan. */
const CODE_KEY_BYTES = 4096;

/**
 * Code made once per plan that writes the features part: each key's bytes
 * as constant stores, four at a time (`w.setUint32(a, 0x65662022, true)`),
 * then its value. One TypedArray#set per key cost about three times as much
 * as byte stores (37 against 14 ns a 20-byte key, in isolation), and the
 * word stores half as much again (114 against 262 ns for the bench's 20
 * keys); keys are two thirds of what a cold entity writes by hand. Room is
 * made once for a run of keys and values of bounded length (numbers, bools,
 * times, nulls), not per key: only a string or a value of another kind can
 * outgrow it, and the next run makes its own. Only numbers (bytes, words,
 * group and value indexes, lengths) go into the code, never a name.
 */
function compileFeatures(keys: Buffer[], group: number[], index: number[], kind: number[], types: ColumnType[]): FeaturesWriter {
  const parts: FeaturesWriter[] = [];
  let body = '';
  let bytes = 0;
  const close = (): void => {
    const make = new Function('writeValue', 'types', `"use strict"; return function features(out, entries, base) { let b, w, a, v, vs;\n${body}};`);
    parts.push(make(writeValue, types) as FeaturesWriter);
    body = '';
    bytes = 0;
  };
  // The bytes a run from feature f on may write before a value of unbounded length (keys, and each bounded value at its longest).
  const runBytes = (f: number): number => {
    let n = 0;
    for (; f < keys.length; f++) {
      n += keys[f].length + MAX_BOUNDED;
      if (!BOUNDED[kind[f]]) break;
    }
    return n;
  };
  // Whether feature f starts a run (the first of a function, or after a value of unbounded length), and which group's values `vs` holds.
  let runStarts = true;
  let values = -1;
  for (let f = 0; f < keys.length; f++) {
    const k = keys[f];
    if (runStarts) body += `out.room(${runBytes(f)}); b = out.buf; w = out.view;`;
    const runEnds = !BOUNDED[kind[f]];
    if (group[f] !== values) body += ` vs = entries[base + ${(values = group[f])}].values;`;
    body += ` a = out.at;`;
    let j = 0;
    for (; j + 4 <= k.length; j += 4) body += ` w.setUint32(a + ${j}, ${k.readUInt32LE(j)}, true);`;
    for (; j < k.length; j++) body += ` b[a + ${j}] = ${k[j]};`;
    body += ` out.at = a + ${k.length}; v = vs[${index[f]}];`;
    // Numbers, times, strings and true straight to their writer; null, false and the rest through writeValue, after which
    // the run's room is made again (a value of another type than its column's, not expected, could be of any length).
    const other = `writeValue(out, ${kind[f]}, types[${f}], v);`;
    const again = runEnds ? '' : ` out.room(${runBytes(f + 1)}); b = out.buf; w = out.view;`;
    if (kind[f] === NUMBER) body += ` if (typeof v === 'number') out.number(v); else { ${other}${again} }\n`;
    else if (kind[f] === TIME) body += ` if (typeof v === 'number') out.time(v); else { ${other}${again} }\n`;
    else if (kind[f] === BOOL) body += ` if (v === true) { w.setUint32(a + ${k.length}, ${TRUE.readUInt32LE(0)}, true); out.at += 4; } else { ${other}${again} }\n`;
    else if (kind[f] === STRING) body += ` if (typeof v === 'string') out.string(v); else ${other}\n`;
    else body += ` ${other}\n`;
    bytes += k.length;
    runStarts = runEnds;
    if (bytes >= CODE_KEY_BYTES) {
      close();
      runStarts = true;
      values = -1;
    }
  }
  if (body !== '' || parts.length === 0) close();
  if (parts.length === 1) return parts[0];
  return (out, entries, base) => {
    for (let p = 0; p < parts.length; p++) parts[p](out, entries, base);
  };
}

/** How a feature's values are written: kinds with a short path, and the rest (through toJsonValue and JSON.stringify). */
const NUMBER = 0;
const BOOL = 1;
const TIME = 2;
const STRING = 3;
const OTHER = 4;

/** Kinds whose JSON has a length bound, MAX_BOUNDED: a number's longest is 24 bytes (`-1.7976931348623157e+308`), a time's 29 (`"+275760-09-13T00:00:00.000Z"`). */
const BOUNDED = [true, true, true, false, false];
const MAX_BOUNDED = 32;

function kindOf(type: ColumnType): number {
  switch (type.kind) {
    case 'int32':
    case 'float32':
    case 'float64':
    case 'int64':
      return NUMBER;
    case 'bool':
      return BOOL;
    case 'timestamp':
      return TIME;
    case 'string':
      return STRING;
    default:
      return OTHER;
  }
}

/** Canonical value → JSON. A switch, not a function per feature: one call site calling many functions was slower than the writing. */
function writeValue(out: JsonBytes, kind: number, type: ColumnType, v: unknown): void {
  if (v === null || v === undefined) return out.bytes(NULL);
  switch (kind) {
    case NUMBER:
      if (typeof v === 'number') return out.number(v);
      break;
    case BOOL:
      return out.bytes(v === true ? TRUE : FALSE);
    case TIME:
      return out.time(v as number);
    case STRING:
      if (typeof v === 'string') return out.string(v);
      break;
  }
  out.text(JSON.stringify(toJsonValue(type, v)));
}
const [NULL, TRUE, FALSE] = ['null', 'true', 'false'].map((t) => Buffer.from(t));


/** The answer of `GET /features/{entity}`: one `EntityFeatures`. */
export function renderOne(entity: unknown, e: Evaluation): Answer {
  const frags = fragmentsOf(e.plan);
  const tail = tailOf(e, frags, 0);
  const kept = keptBytes(e, 0, frags);
  const key = kept !== undefined && (typeof entity === 'string' || typeof entity === 'number') ? JSON.stringify(entity) : undefined;
  if (key !== undefined && key.length <= 256 && isAscii(key)) {
    // The usual case: the entity's part made before, copied in after the entity (written byte by byte: no
    // intermediate string or Buffer per request), then the token's part.
    const at = ENTITY_KEY.length + key.length + 1;
    const out = small(at + kept!.length + tail.length);
    for (let k = 0; k < ENTITY_KEY.length; k++) out[k] = ENTITY_KEY.charCodeAt(k);
    for (let k = 0; k < key.length; k++) out[ENTITY_KEY.length + k] = key.charCodeAt(k);
    out[at - 1] = 44;
    out.set(kept!, at);
    out.set(tail, at + kept!.length);
    return { bytes: out };
  }
  const out = new JsonBytes();
  writeEntity(out, entity, e, 0, frags, tail);
  return out.finish();
}

const ENTITY_KEY = '{"entity":';

/** The answer of `POST /features`: `{"results": [EntityFeatures, ...]}`. */
export function renderMany(entities: unknown[], e: Evaluation): Answer {
  const out = new JsonBytes();
  const frags = fragmentsOf(e.plan);
  const tail = e.tokens === undefined ? tailOf(e, frags, 0) : undefined;
  out.ascii('{"results":[');
  for (let i = 0; i < entities.length; i++) {
    if (i) out.byte(44);
    writeEntity(out, entities[i], e, i, frags, tail ?? tailOf(e, frags, i));
  }
  out.ascii(']}');
  return out.finish();
}

/** Entity i's `,"token":{...}}`; with one view in the plan and one token for all, kept per plan while the view's position stays. */
function tailOf(e: Evaluation, frags: Fragments, i: number): Buffer {
  if (e.tokens !== undefined) return Buffer.from(',"token":' + JSON.stringify(e.tokens[i]) + '}');
  if (e.plan.groups.length !== 1) return Buffer.from(',"token":' + JSON.stringify(e.token) + '}');
  const w = e.token[e.plan.groups[0].def.source];
  if (frags.tail === undefined || frags.tail.at !== w) frags.tail = { at: w, bytes: Buffer.from(',"token":' + JSON.stringify(e.token) + '}') };
  return frags.tail.bytes;
}

function writeEntity(out: JsonBytes, entity: unknown, e: Evaluation, i: number, frags: Fragments, tail: Buffer): void {
  out.ascii('{"entity":');
  if (typeof entity === 'number') out.number(entity);
  else if (typeof entity === 'string') out.string(entity);
  else out.text(JSON.stringify(entity) ?? 'null');
  out.byte(44);
  const entry = e.entries[i];
  if (e.plan.groups.length !== 1 || !entry.kept) writeBody(out, e, i, frags);
  else {
    const kept = keptBytes(e, i, frags);
    if (kept !== undefined) out.bytes(kept);
    else {
      const start = out.at;
      writeBody(out, e, i, frags);
      // Its own memory, not a slice of a shared buffer: a kept slice would keep the whole buffer alive.
      const bytes = Buffer.allocUnsafeSlow(out.at - start);
      out.buf.copy(bytes, 0, start, out.at);
      entry.json = { frags, bytes };
    }
  }
  out.bytes(tail);
}

/** Entity i's part as made before and kept with its shared evaluation, if it was. */
function keptBytes(e: Evaluation, i: number, frags: Fragments): Buffer | undefined {
  const hit = e.plan.groups.length === 1 ? (e.entries[i].json as { frags: Fragments; bytes: Buffer } | undefined) : undefined;
  return hit !== undefined && hit.frags === frags ? hit.bytes : undefined;
}

/** Writes `"features":{...},"statuses":{...},"eventTimes":{...}` of entity i, from its entries. */
function writeBody(out: JsonBytes, e: Evaluation, i: number, frags: Fragments): void {
  const { keys, group, index } = frags;
  const nf = keys.length;
  const entries = e.entries;
  const base = i * e.plan.groups.length;
  let allPresent = true;
  let sameTime = true;
  let r: EntityEval = entries[base + group[0]];
  const t0 = r.eventTimes[index[0]] ?? null;
  frags.features(out, entries, base);
  // One view whose evaluation says every feature is PRESENT at one time (a pk row without nulls) needs no check per feature.
  if (e.plan.groups.length !== 1 || r.uniform === undefined) {
    for (let f = 0; f < nf; f++) {
      r = entries[base + group[f]];
      const k = index[f];
      if (r.statuses[k] !== 'PRESENT') allPresent = false;
      if ((r.eventTimes[k] ?? null) !== t0) sameTime = false;
    }
  }
  if (allPresent) out.bytes(frags.allPresent);
  else {
    out.ascii('},"statuses":{');
    for (let f = 0; f < nf; f++) out.bytes(keys[f]), out.bytes(STATUS[entries[base + group[f]].statuses[index[f]]]);
    out.ascii('},"eventTimes":{');
  }
  if (sameTime) {
    // Features of one view usually share one time, and the rows of one commit one commit time: such parts are kept (see Fragments.times).
    const part = frags.times.get(t0);
    if (part) out.bytes(part);
    else {
      const time = t0 === null ? 'null' : JSON.stringify(formatTimestamp(t0));
      const text = frags.keyText.join(time) + time + '}';
      if (frags.times.size >= 1024) frags.times.clear();
      if (part === undefined) {
        frags.times.set(t0, null);
        out.text(text);
      } else {
        const kept = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
        kept.write(text);
        frags.times.set(t0, kept);
        out.bytes(kept);
      }
    }
  } else {
    for (let f = 0; f < nf; f++) {
      out.bytes(keys[f]);
      const ms = entries[base + group[f]].eventTimes[index[f]] ?? null;
      if (ms === null) out.ascii('null');
      else out.time(ms);
    }
    out.byte(125);
  }
}
