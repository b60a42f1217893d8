/**
 * The JSON of online lookups, written from precomputed fragments: the lookup
 * routes are the hot path (benchmarked against a bare route returning the same
 * bytes), and building objects for JSON.stringify, or gluing a hundred small
 * strings together, costs more than reading the store.
 *
 * Answers are UTF-8 bytes, not strings: each entity's part is encoded once and
 * kept with its shared evaluation, and an answer is those parts copied into
 * one buffer. A string answer would be measured and transcoded again on every
 * send, which for a 100-entity batch costs more than the lookups.
 *
 * Output is exactly what JSON.stringify would write for the same answer
 * (`toObjects` in online/service.ts); a unit test holds the two together.
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
  /** The last token written for a one-view plan, and the view source's position it names. */
  token?: { at: number | undefined; text: string };
}

const fragmentCache = new WeakMap<Plan, Fragments>();
const STATUS_JSON: Record<FeatureStatus, string> = { PRESENT: '"PRESENT"', NOT_FOUND: '"NOT_FOUND"', NULL_VALUE: '"NULL_VALUE"', OUTSIDE_MAX_AGE: '"OUTSIDE_MAX_AGE"' };

export function fragmentsOf(plan: Plan): Fragments {
  let f = fragmentCache.get(plan);
  if (!f) {
    const keys = plan.features.map((x, i) => (i ? ',' : '') + JSON.stringify(x.ref) + ':');
    f = { keys, value: plan.features.map((x) => valueWriter(x.type)), allPresent: keys.join(STATUS_JSON.PRESENT) + STATUS_JSON.PRESENT };
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
  const body = renderBody(e, 0, frags);
  const head = '{"entity":' + (JSON.stringify(entity) ?? 'null') + ',';
  const tail = ',"token":' + tokenText(e, frags) + '}';
  if (typeof body === 'string') return { bytes: Buffer.from(head + body + tail) };
  // The usual case, a kept part: one buffer, the part copied in between two short texts.
  if (!isAscii(head) || !isAscii(tail)) return { bytes: Buffer.concat([Buffer.from(head), body, Buffer.from(tail)]) };
  const out = small(head.length + body.length + tail.length);
  copyAscii(out, head, 0);
  out.set(body, head.length);
  copyAscii(out, tail, head.length + body.length);
  return { bytes: out };
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
  const out = new Chunks();
  const frags = fragmentsOf(e.plan);
  const token = tokenText(e, frags);
  out.text('{"results":[');
  for (let i = 0; i < entities.length; i++) {
    if (i) out.text(',');
    writeEntity(out, entities[i], e, i, frags, token);
  }
  out.text(']}');
  return out.toBuffer();
}

function writeEntity(out: Chunks, entity: unknown, e: Evaluation, i: number, frags: Fragments, token: string): void {
  out.text('{"entity":' + (JSON.stringify(entity) ?? 'null') + ',');
  const body = renderBody(e, i, frags);
  if (typeof body === 'string') out.text(body);
  else out.bytes(body);
  out.text(',"token":' + token + '}');
}

/**
 * Pieces of an answer, text and bytes, joined into one buffer at the end.
 * Text between two byte pieces is gathered into one string first, and short
 * ASCII text is copied by hand: a call into Node's encoder costs more than
 * the few dozen bytes between two entities.
 */
class Chunks {
  private readonly parts: (string | Buffer)[] = [];
  /** Per text part: whether it is short ASCII, copied by hand. */
  private readonly plain: boolean[] = [];
  private pending = '';
  private length = 0;

  text(s: string): void {
    this.pending += s;
  }

  bytes(b: Buffer): void {
    this.flush();
    this.parts.push(b);
    this.plain.push(false);
    this.length += b.length;
  }

  toBuffer(): Answer {
    this.flush();
    const answer = allocate(this.length);
    const out = answer.bytes;
    let at = 0;
    for (let i = 0; i < this.parts.length; i++) {
      const p = this.parts[i];
      if (typeof p !== 'string') {
        out.set(p, at);
        at += p.length;
      } else if (this.plain[i]) {
        copyAscii(out, p, at);
        at += p.length;
      } else at += out.write(p, at);
    }
    return answer;
  }

  private flush(): void {
    if (!this.pending) return;
    const s = this.pending;
    const plain = s.length <= 64 && isAscii(s);
    this.parts.push(s);
    this.plain.push(plain);
    this.length += plain ? s.length : Buffer.byteLength(s);
    this.pending = '';
  }
}

/**
 * Large answers (batches) are written into reused buffers: a fresh 200 kB
 * buffer per answer cost ten times the copying into it, in page faults and
 * in the collections its external memory set off.
 */
const REUSE_FROM = 64 * 1024;
const spares: Buffer[] = [];
const MAX_SPARES = 16;
const MAX_SPARE_BYTES = 8 * 1024 * 1024;

function allocate(n: number): Answer {
  if (n < REUSE_FROM) return { bytes: small(n) };
  let big = spares.pop();
  if (!big || big.length < n) big = Buffer.allocUnsafeSlow(Math.max(n, 2 * (big?.length ?? 0), 256 * 1024));
  const whole = big;
  let released = false;
  return {
    bytes: whole.subarray(0, n),
    release: () => {
      if (released) return;
      released = true;
      if (spares.length < MAX_SPARES && whole.length <= MAX_SPARE_BYTES) spares.push(whole);
    },
  };
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

/**
 * `"features":{...},"statuses":{...},"eventTimes":{...}` of entity i. With one
 * view in the plan it follows from the entity's shared evaluation alone, so
 * when the lookup cache keeps that evaluation the part is encoded once and
 * kept with it; otherwise it is text, written into the answer once.
 */
function renderBody(e: Evaluation, i: number, frags: Fragments): Buffer | string {
  const entry = e.entries[i];
  if (e.plan.groups.length !== 1 || !entry.kept) return renderFresh(e, i, frags);
  const hit = entry.json as { frags: Fragments; bytes: Buffer } | undefined;
  if (hit !== undefined && hit.frags === frags) return hit.bytes;
  const text = renderFresh(e, i, frags);
  // Its own memory, not a slice of Node's shared pool: a kept slice would keep the whole pool slab alive.
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(text));
  bytes.write(text);
  entry.json = { frags, bytes };
  return bytes;
}

function renderFresh(e: Evaluation, i: number, frags: Fragments): string {
  const nf = frags.keys.length;
  const base = i * nf;
  const keys = frags.keys;
  let allPresent = true;
  let sameTime = true;
  const t0 = e.eventTimes[base] ?? null;
  let features = '"features":{';
  for (let f = 0; f < nf; f++) {
    features += keys[f] + frags.value[f](e.values[base + f]);
    if (e.statuses[base + f] !== 'PRESENT') allPresent = false;
    if ((e.eventTimes[base + f] ?? null) !== t0) sameTime = false;
  }
  let statuses: string;
  if (allPresent) statuses = frags.allPresent;
  else {
    statuses = '';
    for (let f = 0; f < nf; f++) statuses += keys[f] + STATUS_JSON[e.statuses[base + f]];
  }
  let times = '';
  if (sameTime) {
    // Features of one view usually share one event time: format it once.
    const t = t0 === null ? 'null' : `"${isoTime(t0)}"`;
    for (let f = 0; f < nf; f++) times += keys[f] + t;
  } else {
    let lastMs = NaN;
    let lastText = 'null';
    for (let f = 0; f < nf; f++) {
      const ms = e.eventTimes[base + f] ?? null;
      if (ms === null) times += keys[f] + 'null';
      else {
        if (ms !== lastMs) {
          lastMs = ms;
          lastText = `"${isoTime(ms)}"`;
        }
        times += keys[f] + lastText;
      }
    }
  }
  return features + '},"statuses":{' + statuses + '},"eventTimes":{' + times + '}';
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
