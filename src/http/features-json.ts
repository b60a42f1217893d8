/**
 * The JSON of online lookups, written from precomputed fragments: the lookup
 * routes are the hot path (benchmarked against a bare route returning the same
 * bytes), and building objects for JSON.stringify, or gluing a hundred small
 * strings together, costs more than reading the store.
 *
 * Answers are UTF-8 bytes, not strings: each entity's part is encoded once and
 * kept with its shared evaluation, and an answer is those parts copied into
 * one buffer (parts not kept are written straight into it). A string answer would be measured and transcoded again on every
 * send, which for a 100-entity batch costs more than the lookups.
 *
 * Output is exactly what JSON.stringify would write for the same answer
 * (`toObjects` in online/evaluation.ts); a unit test holds the two together.
 */
import { formatTimestamp, toJsonValue } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { FeatureStatus } from '../features/evaluator.js';
import type { Evaluation, Plan } from '../online/service.js';

/** Per plan: the text of each feature's key, and how to write each value. */
export interface Fragments {
  /** `"view:feature":` for the first feature, `,"view:feature":` for the others. */
  keys: string[];
  value: ((v: unknown) => string)[];
  /** The inside of `statuses` when every feature is PRESENT, the usual case. */
  allPresent: string;
  /** The same, as bytes. */
  allPresentBytes: Buffer;
  /** The last token written for a one-view plan, and the view source's position it names. */
  token?: { at: number | undefined; text: string };
}

const fragmentCache = new WeakMap<Plan, Fragments>();
const STATUS_JSON: Record<FeatureStatus, string> = { PRESENT: '"PRESENT"', NOT_FOUND: '"NOT_FOUND"', NULL_VALUE: '"NULL_VALUE"', OUTSIDE_MAX_AGE: '"OUTSIDE_MAX_AGE"' };

export function fragmentsOf(plan: Plan): Fragments {
  let f = fragmentCache.get(plan);
  if (!f) {
    const keys = plan.features.map((x, i) => (i ? ',' : '') + JSON.stringify(x.ref) + ':');
    const allPresent = keys.join(STATUS_JSON.PRESENT) + STATUS_JSON.PRESENT;
    f = { keys, value: plan.features.map((x) => valueWriter(x.type)), allPresent, allPresentBytes: Buffer.from(allPresent) };
    fragmentCache.set(plan, f);
  }
  return f;
}

/** Canonical value → JSON text, per column type. Numbers take the short path. */
function valueWriter(type: ColumnType): (v: unknown) => string {
  const general = (v: unknown): string => (v === null || v === undefined ? 'null' : JSON.stringify(toJsonValue(type, v)));
  switch (type.kind) {
    case 'int32':
    case 'float32':
    case 'float64':
    case 'int64':
      return (v) => (typeof v === 'number' ? (Number.isFinite(v) ? String(v) : 'null') : general(v));
    case 'bool':
      return (v) => (v === true ? 'true' : v === false ? 'false' : 'null');
    case 'timestamp':
      return (v) => (typeof v === 'number' ? `"${isoTime(v)}"` : 'null');
    case 'string':
      return (v) => (typeof v === 'string' ? JSON.stringify(v) : general(v));
    default:
      return general;
  }
}

/** Encoded answer bytes; `release`, when set, must be called once they are sent (they live in a reused buffer). */
export interface Answer {
  bytes: Buffer;
  release?: () => void;
}

/** The answer of `GET /features/{entity}`: one `EntityFeatures`. */
export function renderOne(entity: unknown, e: Evaluation): Answer {
  const frags = fragmentsOf(e.plan);
  const head = '{"entity":' + (JSON.stringify(entity) ?? 'null') + ',';
  const tail = ',"token":' + tokenText(e, frags) + '}';
  const kept = keptBytes(e, 0, frags);
  if (kept !== undefined && isAscii(head) && isAscii(tail)) {
    // The usual case: the entity's part made before, copied in between two short texts.
    const out = small(head.length + kept.length + tail.length);
    copyAscii(out, head, 0);
    out.set(kept, head.length);
    copyAscii(out, tail, head.length + kept.length);
    return { bytes: out };
  }
  const out = new Writer();
  out.text(head);
  renderBody(e, 0, frags, out);
  out.text(tail);
  return out.finish();
}

/** The token's JSON; with one view in the plan, kept per plan while the view's position stays. */
function tokenText(e: Evaluation, frags: Fragments): string {
  if (e.plan.groups.length !== 1) return JSON.stringify(e.token);
  const w = e.token[e.plan.groups[0].def.source];
  if (frags.token === undefined || frags.token.at !== w) frags.token = { at: w, text: JSON.stringify(e.token) };
  return frags.token.text;
}

/** The answer of `POST /features`: `{"results": [EntityFeatures, ...]}`. */
export function renderMany(entities: unknown[], e: Evaluation): Answer {
  const out = new Writer();
  const frags = fragmentsOf(e.plan);
  const tail = ',"token":' + tokenText(e, frags) + '}';
  out.text('{"results":[');
  for (let i = 0; i < entities.length; i++) {
    out.text((i ? ',{"entity":' : '{"entity":') + (JSON.stringify(entities[i]) ?? 'null') + ',');
    renderBody(e, i, frags, out);
    out.text(tail);
  }
  out.text(']}');
  return out.finish();
}

/**
 * An answer written straight into bytes, piece by piece, in a reused buffer
 * (grown when needed). Short ASCII text is copied by hand: a call into
 * Node's encoder costs more than the few dozen bytes between two entities.
 * Gathering the text first and encoding it once at the end built a rope of
 * the whole answer that was measured and flattened again, and its pieces
 * were garbage.
 */
class Writer {
  private buf: Buffer = spares.pop() ?? Buffer.allocUnsafeSlow(256 * 1024);
  private at = 0;

  text(s: string): void {
    if (s.length <= 64 && isAscii(s)) {
      this.room(s.length);
      copyAscii(this.buf, s, this.at);
      this.at += s.length;
    } else {
      this.room(3 * s.length);
      this.at += this.buf.write(s, this.at);
    }
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }

  /** A copy of the bytes written in memory of its own (not a slab's); the buffer goes back. */
  copyOut(): Buffer {
    const bytes = Buffer.allocUnsafeSlow(this.at);
    this.buf.copy(bytes, 0, 0, this.at);
    giveBack(this.buf);
    return bytes;
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

/** Short ASCII text into `out` at `at`, by hand: cheaper than a call into Node's encoder for a few dozen bytes. */
function copyAscii(out: Buffer, s: string, at: number): void {
  for (let k = 0; k < s.length; k++) out[at + k] = s.charCodeAt(k);
}

function isAscii(s: string): boolean {
  for (let k = 0; k < s.length; k++) if (s.charCodeAt(k) > 0x7f) return false;
  return true;
}

/** Entity i's part as made before and kept with its shared evaluation, if it was. */
function keptBytes(e: Evaluation, i: number, frags: Fragments): Buffer | undefined {
  const hit = e.plan.groups.length === 1 ? (e.entries[i].json as { frags: Fragments; bytes: Buffer } | undefined) : undefined;
  return hit !== undefined && hit.frags === frags ? hit.bytes : undefined;
}

/**
 * Writes `"features":{...},"statuses":{...},"eventTimes":{...}` of entity i.
 * With one view in the plan it follows from the entity's shared evaluation
 * alone, so when the lookup cache keeps that evaluation the part is encoded
 * once, kept with it and copied from then on; otherwise it is written afresh.
 */
function renderBody(e: Evaluation, i: number, frags: Fragments, out: Writer): void {
  const entry = e.entries[i];
  if (e.plan.groups.length !== 1 || !entry.kept) return writeFresh(out, e, i, frags);
  const kept = keptBytes(e, i, frags);
  if (kept !== undefined) return out.bytes(kept);
  const scratch = new Writer();
  writeFresh(scratch, e, i, frags);
  // Its own memory, not a slice of a shared slab: a kept slice would keep the whole slab alive.
  const bytes = scratch.copyOut();
  entry.json = { frags, bytes };
  out.bytes(bytes);
}

/**
 * Writes `"features":{...},"statuses":{...},"eventTimes":{...}` of entity i.
 * With one view in the plan, values come from the entity's evaluation
 * itself, so the request's flat arrays are never gathered.
 */
function writeFresh(out: Writer, e: Evaluation, i: number, frags: Fragments): void {
  const nf = frags.keys.length;
  const keys = frags.keys;
  let values: readonly unknown[];
  let statuses: readonly FeatureStatus[];
  let times: readonly (number | null)[];
  let map: readonly number[] | undefined;
  let base = 0;
  if (e.plan.groups.length === 1) {
    const r = e.entries[i];
    ({ values, statuses, eventTimes: times } = r);
    map = e.plan.groups[0].indexes;
  } else {
    ({ values, statuses, eventTimes: times } = e);
    base = i * nf;
  }
  let allPresent = true;
  let sameTime = true;
  const t0 = times[map ? map[0] : base] ?? null;
  let features = '"features":{';
  for (let f = 0; f < nf; f++) {
    const k = map ? map[f] : base + f;
    features += keys[f] + frags.value[f](values[k]);
    if (statuses[k] !== 'PRESENT') allPresent = false;
    if ((times[k] ?? null) !== t0) sameTime = false;
  }
  out.text(features + '},"statuses":{');
  if (allPresent) out.bytes(frags.allPresentBytes);
  else {
    let text = '';
    for (let f = 0; f < nf; f++) text += keys[f] + STATUS_JSON[statuses[map ? map[f] : base + f]];
    out.text(text);
  }
  let text = '},"eventTimes":{';
  if (sameTime) {
    // Features of one view usually share one event time: format it once.
    const t = t0 === null ? 'null' : `"${isoTime(t0)}"`;
    for (let f = 0; f < nf; f++) text += keys[f] + t;
  } else {
    let lastMs = NaN;
    let lastText = 'null';
    for (let f = 0; f < nf; f++) {
      const ms = times[map ? map[f] : base + f] ?? null;
      if (ms === null) text += keys[f] + 'null';
      else {
        if (ms !== lastMs) {
          lastMs = ms;
          lastText = `"${isoTime(ms)}"`;
        }
        text += keys[f] + lastText;
      }
    }
  }
  out.text(text + '}');
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
