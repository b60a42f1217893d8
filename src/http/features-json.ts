/**
 * The JSON text of online lookups, written from precomputed fragments: the
 * lookup routes are the hot path (benchmarked against a bare route returning
 * the same bytes), and building objects for JSON.stringify, or gluing a
 * hundred small strings together, costs more than reading the store.
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

// Reused between calls (rendering is synchronous): joined into one flat string, which the socket writes faster than a rope of pieces.
const parts: string[] = [];

/** One entity's answer (`EntityFeatures`) as JSON text. `token` is the token's JSON text. */
export function renderEntity(entity: unknown, e: Evaluation, i: number, frags: Fragments, token: string): string {
  const nf = frags.keys.length;
  const base = i * nf;
  parts.length = 2 * nf;
  let allPresent = true;
  let sameTime = true;
  const t0 = e.eventTimes[base] ?? null;
  for (let f = 0; f < nf; f++) {
    parts[2 * f] = frags.keys[f];
    parts[2 * f + 1] = frags.value[f](e.values[base + f]);
    if (e.statuses[base + f] !== 'PRESENT') allPresent = false;
    if ((e.eventTimes[base + f] ?? null) !== t0) sameTime = false;
  }
  const features = parts.join('');
  let statuses = frags.allPresent;
  if (!allPresent) {
    for (let f = 0; f < nf; f++) parts[2 * f + 1] = STATUS_JSON[e.statuses[base + f]];
    statuses = parts.join('');
  }
  let times: string;
  if (sameTime) {
    // Features of one view usually share one event time: format it once.
    const t = t0 === null ? 'null' : `"${isoTime(t0)}"`;
    times = frags.keys.join(t) + t;
  } else {
    let lastMs = NaN;
    let lastText = 'null';
    for (let f = 0; f < nf; f++) {
      const ms = e.eventTimes[base + f] ?? null;
      if (ms === null) parts[2 * f + 1] = 'null';
      else {
        if (ms !== lastMs) {
          lastMs = ms;
          lastText = `"${isoTime(ms)}"`;
        }
        parts[2 * f + 1] = lastText;
      }
    }
    times = parts.join('');
  }
  return '{"entity":' + (JSON.stringify(entity) ?? 'null') + ',"features":{' + features + '},"statuses":{' + statuses + '},"eventTimes":{' + times + '},"token":' + token + '}';
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
