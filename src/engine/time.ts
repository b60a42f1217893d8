/**
 * Timestamps: accepted as RFC 3339 strings or epoch milliseconds, held as epoch
 * ms (UTC, a number), returned as RFC 3339 UTC with milliseconds.
 *
 * The RFC 3339 parser is hand-written because it runs once per timestamp value
 * of every ingested row; a regex plus Date.parse cost about a tenth of the
 * server's time in the ingest benchmark.
 */

/**
 * The instants a timestamp holds: 0001-01-01T00:00:00.000Z to
 * 9999-12-31T23:59:59.999Z, inclusive, as epoch ms. Every adapter can answer
 * each of them: RFC 3339 writes them in UTC (a four-digit year; Date would
 * format later ones as extended years, `+010000-01-01T00:00:00.000Z`, which no
 * RFC 3339 reader takes), and so do a gRPC `google.protobuf.Timestamp` and
 * Python's `datetime` (Feast's SDK), whose ranges start at year 1: a year-0000
 * value, once stored, could not be answered to them.
 * An offset can carry a string's date past either end (`0001-01-01T00:00:00+01:00`
 * is 0000-12-31 in UTC): refused like any other instant outside.
 */
export const MIN_TIMESTAMP_MS = -62_135_596_800_000;
export const MAX_TIMESTAMP_MS = 253_402_300_799_999;

/** Epoch ms text (query strings, CSV): digits only. Longer than any timestamp held, so a long one is refused as out of range, not as unreadable. */
const EPOCH_TEXT = /^-?\d{1,19}$/;

/** An RFC 3339 string or epoch ms (number, digit text, Date) → epoch ms, whatever its range; undefined when it is neither. */
function readTimestamp(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) ? v : undefined;
  if (typeof v === 'string') return parseRfc3339(v) ?? (EPOCH_TEXT.test(v) ? Number(v) : undefined);
  if (v instanceof Date) return v.getTime();
  return undefined;
}

const inRange = (ms: number): boolean => ms >= MIN_TIMESTAMP_MS && ms <= MAX_TIMESTAMP_MS;

/**
 * RFC 3339 string or epoch milliseconds → epoch ms (UTC); undefined when it is
 * neither, or outside MIN_TIMESTAMP_MS..MAX_TIMESTAMP_MS. Epoch ms must be a
 * whole number: 1.5 is refused, not truncated (finer RFC 3339 fractions are
 * truncated, as documented). `timestampProblem` says why a value was refused.
 */
export function parseTimestamp(v: unknown): number | undefined {
  const ms = readTimestamp(v);
  return ms !== undefined && inRange(ms) ? ms : undefined;
}

/**
 * Why parseTimestamp refused `v`, for an error's reason; `shown` is how the
 * message names the value (coerce.ts's `describe`).
 */
export function timestampProblem(v: unknown, shown: string): string {
  if (typeof v === 'number' && Number.isFinite(v) && !Number.isInteger(v)) return `epoch milliseconds must be a whole number, got ${v} (refused rather than rounded)`;
  const ms = readTimestamp(v);
  if (ms !== undefined && !inRange(ms)) {
    const end = ms < MIN_TIMESTAMP_MS ? 'before 0001-01-01T00:00:00.000Z' : 'after 9999-12-31T23:59:59.999Z';
    return `${shown} is ${end}${typeof v === 'number' ? '' : ` (epoch ms ${ms})`}: a timestamp is an instant of the years 0001 to 9999 in UTC, which RFC 3339, protobuf Timestamps and Python's datetime all hold`;
  }
  return `expected an RFC 3339 timestamp or epoch milliseconds, got ${shown}`;
}

/**
 * Epoch ms → RFC 3339 UTC with milliseconds (`YYYY-MM-DDTHH:MM:SS.mmmZ`, 24
 * characters) for every instant parseTimestamp accepts.
 */
export const formatTimestamp = (ms: number): string => new Date(ms).toISOString();

/** The digits at i and i+1 as a number, or -1 when either is not a digit. */
function two(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48;
  const b = s.charCodeAt(i + 1) - 48;
  // `>>> 0` turns a negative into a large number, so one comparison checks 0..9.
  return a >>> 0 > 9 || b >>> 0 > 9 ? -1 : a * 10 + b;
}

/**
 * The date (YYYYMMDD as a number) parseRfc3339 last checked and its day
 * number: the timestamps of one batch mostly share their date, and checking
 * and converting it was a third of the parse (bench:ingest's timestamps: 75-93
 * -> 56-65 ns each in isolation, session 12).
 */
let lastDate = -1;
let lastDays = 0;

/**
 * `YYYY-MM-DD(T|t| )hh:mm:ss(.fraction)?(Z|z|±hh:mm)` → epoch ms, fraction
 * truncated to milliseconds; undefined for anything else, including dates that
 * do not exist (Feb 30, hour 24, second 60: leap seconds are not representable).
 */
export function parseRfc3339(s: string): number | undefined {
  const n = s.length;
  if (n < 20 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  const sep = s.charCodeAt(10);
  if (sep !== 84 && sep !== 116 && sep !== 32) return undefined; // T t space
  const century = two(s, 0);
  const yy = two(s, 2);
  const month = two(s, 5);
  const day = two(s, 8);
  const hour = two(s, 11);
  const minute = two(s, 14);
  const second = two(s, 17);
  if (century < 0 || yy < 0 || month < 0 || day < 0 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return undefined;
  const date = ((century * 100 + yy) * 100 + month) * 100 + day;
  let days = lastDays;
  if (date !== lastDate) {
    const year = century * 100 + yy;
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
    days = daysFromCivil(year, month, day);
    lastDate = date;
    lastDays = days;
  }
  let i = 19;
  let millis = 0;
  if (s.charCodeAt(i) === 46) {
    const start = ++i;
    for (let d = s.charCodeAt(i) - 48; d >>> 0 <= 9 && i < n; d = s.charCodeAt(++i) - 48) if (i - start < 3) millis = millis * 10 + d;
    if (i === start) return undefined;
    for (let k = Math.min(i - start, 3); k < 3; k++) millis *= 10;
  }
  let offsetMin = 0;
  const z = s.charCodeAt(i);
  if (z === 90 || z === 122) {
    if (i + 1 !== n) return undefined; // Z z
  } else if ((z === 43 || z === 45) && i + 6 === n && s.charCodeAt(i + 3) === 58) {
    const oh = two(s, i + 1);
    const om = two(s, i + 4);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return undefined;
    offsetMin = (z === 45 ? -1 : 1) * (oh * 60 + om);
  } else {
    return undefined;
  }
  return ((days * 24 + hour) * 60 + minute - offsetMin) * 60_000 + second * 1000 + millis;
}


function daysInMonth(y: number, m: number): number {
  if (m === 2) return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}
