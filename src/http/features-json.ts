/**
 * The JSON of online lookups, written straight into bytes: the lookup routes
 * are the hot path (benchmarked against a bare route returning the same
 * bytes), and building objects for JSON.stringify, or gluing strings together
 * and encoding them, costs more than reading the store. Keys are bytes made
 * once per plan; numbers, plain strings and times are written digit by digit
 * (String(double) alone cost more than a whole cached lookup).
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

/** Per plan: each feature's key as bytes, where its value is, and how to write it. */
interface Fragments {
  /** `"view:feature":` for the first feature, `,"view:feature":` for the others. */
  keys: Buffer[];
  keyText: string[];
  /** Feature f's value is `entries[e * groups + group[f]]`'s value number `index[f]`. */
  group: number[];
  index: number[];
  kind: number[];
  type: ColumnType[];
  /** The inside of `statuses` when every feature is PRESENT, the usual case. */
  allPresent: Buffer;
  /** The inside of `eventTimes` by the one time every feature has, for recent such times (the rows of one commit share one). */
  times: Map<number | null, Buffer>;
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
    const allPresent = Buffer.from(keys.join('"PRESENT"') + '"PRESENT"');
    f = { keys: keys.map((k) => Buffer.from(k)), keyText: keys, group, index, kind: plan.features.map((x) => kindOf(x.type)), type: plan.features.map((x) => x.type), allPresent, times: new Map() };
    fragmentCache.set(plan, f);
  }
  return f;
}

/** How a feature's values are written: kinds with a short path, and the rest (through toJsonValue and JSON.stringify). */
const NUMBER = 0;
const BOOL = 1;
const TIME = 2;
const STRING = 3;
const OTHER = 4;

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
function writeValue(out: Out, kind: number, type: ColumnType, v: unknown): void {
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
const NULL = Buffer.from('null');
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');

/** Encoded answer bytes; `release`, when set, must be called once they are sent (they live in a reused buffer). */
export interface Answer {
  bytes: Buffer;
  release?: () => void;
}

/** The answer of `GET /features/{entity}`: one `EntityFeatures`. */
export function renderOne(entity: unknown, e: Evaluation): Answer {
  const frags = fragmentsOf(e.plan);
  const tail = tailOf(e, frags);
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
  const out = new Out();
  writeEntity(out, entity, e, 0, frags, tail);
  return out.finish();
}

const ENTITY_KEY = '{"entity":';

/** The answer of `POST /features`: `{"results": [EntityFeatures, ...]}`. */
export function renderMany(entities: unknown[], e: Evaluation): Answer {
  const out = new Out();
  const frags = fragmentsOf(e.plan);
  const tail = tailOf(e, frags);
  out.ascii('{"results":[');
  for (let i = 0; i < entities.length; i++) {
    if (i) out.byte(44);
    writeEntity(out, entities[i], e, i, frags, tail);
  }
  out.ascii(']}');
  return out.finish();
}

/** `,"token":{...}}`; with one view in the plan, kept per plan while the view's position stays. */
function tailOf(e: Evaluation, frags: Fragments): Buffer {
  if (e.plan.groups.length !== 1) return Buffer.from(',"token":' + JSON.stringify(e.token) + '}');
  const w = e.token[e.plan.groups[0].def.source];
  if (frags.tail === undefined || frags.tail.at !== w) frags.tail = { at: w, bytes: Buffer.from(',"token":' + JSON.stringify(e.token) + '}') };
  return frags.tail.bytes;
}

function writeEntity(out: Out, entity: unknown, e: Evaluation, i: number, frags: Fragments, tail: Buffer): void {
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
function writeBody(out: Out, e: Evaluation, i: number, frags: Fragments): void {
  const { keys, group, index } = frags;
  const nf = keys.length;
  const entries = e.entries;
  const base = i * e.plan.groups.length;
  let allPresent = true;
  let sameTime = true;
  let r: EntityEval = entries[base + group[0]];
  const t0 = r.eventTimes[index[0]] ?? null;
  out.ascii('"features":{');
  for (let f = 0; f < nf; f++) {
    r = entries[base + group[f]];
    const k = index[f];
    out.bytes(keys[f]);
    writeValue(out, frags.kind[f], frags.type[f], r.values[k]);
    if (r.statuses[k] !== 'PRESENT') allPresent = false;
    if ((r.eventTimes[k] ?? null) !== t0) sameTime = false;
  }
  out.ascii('},"statuses":{');
  if (allPresent) out.bytes(frags.allPresent);
  else for (let f = 0; f < nf; f++) out.bytes(keys[f]), out.bytes(STATUS[entries[base + group[f]].statuses[index[f]]]);
  out.ascii('},"eventTimes":{');
  if (sameTime) {
    // Features of one view usually share one time, and the rows of one commit one commit time: such parts are kept.
    let part = frags.times.get(t0);
    if (part === undefined) {
      const text = t0 === null ? 'null' : `"${isoTime(t0)}"`;
      part = Buffer.from(frags.keyText.join(text) + text);
      if (frags.times.size >= 1024) frags.times.clear();
      frags.times.set(t0, part);
    }
    out.bytes(part);
  } else {
    for (let f = 0; f < nf; f++) {
      out.bytes(keys[f]);
      const ms = entries[base + group[f]].eventTimes[index[f]] ?? null;
      if (ms === null) out.ascii('null');
      else out.time(ms);
    }
  }
  out.byte(125);
}

/**
 * An answer written straight into bytes, in a reused buffer (grown when
 * needed). Short ASCII is copied by hand: a call into Node's encoder costs
 * more than the few dozen bytes it would write.
 */
class Out {
  buf: Buffer = spares.pop() ?? Buffer.allocUnsafeSlow(256 * 1024);
  at = 0;

  byte(b: number): void {
    this.room(1);
    this.buf[this.at++] = b;
  }

  /** Text known to be ASCII. */
  ascii(s: string): void {
    this.room(s.length);
    for (let k = 0; k < s.length; k++) this.buf[this.at++] = s.charCodeAt(k);
  }

  /** Any text, as UTF-8. */
  text(s: string): void {
    if (s.length <= 64 && isAscii(s)) return this.ascii(s);
    this.room(3 * s.length);
    this.at += this.buf.write(s, this.at);
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }

  /** A string as JSON: printable ASCII without quotes or backslashes byte for byte, anything else through JSON.stringify. */
  string(s: string): void {
    for (let k = 0; k < s.length; k++) {
      const c = s.charCodeAt(k);
      if (c < 0x20 || c > 0x7e || c === 34 || c === 92) return this.text(JSON.stringify(s));
    }
    this.room(s.length + 2);
    this.buf[this.at++] = 34;
    this.ascii(s);
    this.buf[this.at++] = 34;
  }

  /**
   * A number as JSON.stringify writes it. Safe integers, and decimals of up
   * to 6 places whose digits (below 2^51) divide back to exactly the number,
   * are written digit by digit: the fewest decimals that give the number back
   * are its shortest round-trip form, which is what JavaScript prints.
   * Anything else (exponents, 17-digit doubles) goes through String.
   */
  number(v: number): void {
    if (!Number.isFinite(v)) return this.ascii('null');
    const a = Math.abs(v);
    if (Number.isInteger(v) && a <= Number.MAX_SAFE_INTEGER) {
      if (v < 0) this.byte(45);
      return this.digits(a, 0);
    }
    for (let d = 1; d <= 6; d++) {
      const p = POW10[d];
      const m = Math.round(a * p);
      if (m / p === a && m < 2 ** 51) {
        if (v < 0) this.byte(45);
        const whole = Math.floor(m / p);
        this.digits(whole, 0);
        this.byte(46);
        return this.digits(m - whole * p, d);
      }
    }
    this.ascii(String(v));
  }

  /** A non-negative safe integer, padded with zeros to `width` digits. */
  private digits(n: number, width: number): void {
    let len = 1;
    while (len < 16 && n >= POW10[len]) len++;
    if (len < width) len = width;
    this.room(len);
    let k = this.at + len - 1;
    // Above 2^31 in double arithmetic, then in int32 (no floating-point remainder per digit).
    for (; n > 0x7fffffff; k--) {
      const q = Math.floor(n / 10);
      this.buf[k] = 48 + (n - q * 10);
      n = q;
    }
    for (let i = n | 0; k >= this.at; k--) {
      const q = (i / 10) | 0;
      this.buf[k] = 48 + (i - q * 10);
      i = q;
    }
    this.at += len;
  }

  /** Epoch ms as a JSON string, RFC 3339 UTC with milliseconds. */
  time(ms: number): void {
    this.byte(34);
    this.ascii(isoTime(ms));
    this.byte(34);
  }

  /** The bytes written: small answers are copied out and the buffer goes back at once; large ones give it back on `release`. */
  finish(): Answer {
    const whole = this.buf;
    const n = this.at;
    if (n < REUSE_FROM) {
      const bytes = small(n);
      whole.copy(bytes, 0, 0, n);
      giveBack(whole);
      return { bytes };
    }
    let released = false;
    return {
      bytes: whole.subarray(0, n),
      release: () => {
        if (released) return;
        released = true;
        giveBack(whole);
      },
    };
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.length, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    giveBack(this.buf);
    this.buf = bigger;
  }
}

const POW10 = Array.from({ length: 17 }, (_, i) => 10 ** i);

/**
 * Answers are written into reused buffers: a fresh 200 kB buffer per batch
 * answer cost ten times the copying into it, in page faults and in the
 * collections its external memory set off.
 */
const REUSE_FROM = 64 * 1024;
const spares: Buffer[] = [];
const MAX_SPARES = 16;
const MAX_SPARE_BYTES = 8 * 1024 * 1024;

function giveBack(b: Buffer): void {
  if (spares.length < MAX_SPARES && b.length <= MAX_SPARE_BYTES) spares.push(b);
}

/**
 * Answers below 16 kB are cut from a 256 kB slab, like Node's own pool for
 * allocUnsafe but 32 times larger: a new 8 kB pool every three or four 2 kB
 * answers was a tenth of a lookup's time in allocation and collection. An
 * answer lives until its socket write is done; a slab is freed with the last
 * answer cut from it.
 */
const SLAB = 256 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB);
let slabAt = 0;

function small(n: number): Buffer {
  if (n > 16 * 1024) return Buffer.allocUnsafe(n);
  if (slabAt + n > SLAB) {
    slab = Buffer.allocUnsafeSlow(SLAB);
    slabAt = 0;
  }
  const b = slab.subarray(slabAt, slabAt + n);
  slabAt = (slabAt + n + 7) & ~7;
  return b;
}

function isAscii(s: string): boolean {
  for (let k = 0; k < s.length; k++) if (s.charCodeAt(k) > 0x7f) return false;
  return true;
}

const PAD2 = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const PAD3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
let dayCache = new Map<number, string>();

/**
 * Epoch ms → RFC 3339 UTC with milliseconds, exactly as `formatTimestamp`
 * writes it, with the date part cached per day: Date#toISOString costs more
 * than the rest of a lookup's rendering.
 */
export function isoTime(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= 253402300800000) return formatTimestamp(ms);
  const day = Math.floor(ms / 86_400_000);
  let date = dayCache.get(day);
  if (date === undefined) {
    date = formatTimestamp(day * 86_400_000).slice(0, 11);
    if (dayCache.size >= 10_000) dayCache = new Map();
    dayCache.set(day, date);
  }
  let rest = ms - day * 86_400_000;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const sec = Math.floor(rest / 1000);
  return `${date}${PAD2[h]}:${PAD2[m]}:${PAD2[sec]}.${PAD3[rest - sec * 1000]}Z`;
}
