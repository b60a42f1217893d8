/**
 * The checks every JSON text and JSON value passes on its way in, whatever
 * the path (REST body, NDJSON line, gRPC json_value, CSV cell, Arrow or
 * Parquet value): a value is stored exactly or refused, never altered.
 *
 *   - text must be valid UTF-8 (Buffer → string would silently put U+FFFD in);
 *   - strings and keys must be well-formed UTF-16: a lone surrogate (`"\ud800"`)
 *     cannot be written as UTF-8, so the changelog would hold U+FFFD;
 *   - numbers must be finite: JSON.parse reads `1e999` as Infinity, which
 *     JSON.stringify writes back as null;
 *   - a number bound for a `json` value, an `int32`, `int64` or `timestamp`
 *     (alone or in a list or struct) must be one a float64 holds as sent:
 *     JSON.parse reads `12345678901234567890` as 12345678901234567000,
 *     `0.1000000000000000055511151231257827` as 0.1 and
 *     `1.0000000000000000001` as the whole number 1. Only the text shows it,
 *     so the text of a write that may hold such a literal (mayBend) is kept
 *     with the rows it became (noteRowsText) and read again against the
 *     table's columns (bentNumbersInRows; ingest/bent-columns.ts). A `float32`
 *     or `float64` takes the nearest value it holds, as documented; an int64
 *     refuses any number beyond 2^53 by its own rule;
 *   - `__proto__` is a reserved name: as a key it would replace an object's
 *     prototype in any later copy or merge;
 *   - nesting is bounded, so no recursive code downstream (encoders,
 *     JSON.stringify, comparisons) can overflow the stack. JSON.parse itself is
 *     iterative in V8, so parsing a deep text is safe; using its result is not.
 */
import { isUtf8 } from 'node:buffer';
import { AsofError } from '../errors.js';

declare global {
  interface String {
    /** ES2024, in Node >= 20: false when the string holds a lone surrogate. */
    isWellFormed(): boolean;
  }
}

/** Most nesting levels (arrays and objects) in one value of a `json` column. */
export const MAX_JSON_VALUE_DEPTH = 100;
/** Most nesting levels in a whole JSON request body (a row is 3 levels in: body, rows, row). */
export const MAX_JSON_BODY_DEPTH = 128;

/** One problem in a JSON value: where (keys and indexes from the value's root) and why. */
export interface JsonProblem {
  path: (string | number)[];
  reason: string;
}

/**
 * The first problem in `value` (a JSON value as JSON.parse or a decoder made
 * it), or undefined when it may be stored as it is. Iterative: safe at any depth.
 */
export function findJsonProblem(value: unknown, maxDepth: number): JsonProblem | undefined {
  // Parallel stacks (value, depth, parent slot, key) so the path is built only on failure.
  const values: unknown[] = [value];
  const depths: number[] = [0];
  const parents: number[] = [-1];
  const keys: (string | number)[] = [''];
  const trail: { parent: number; key: string | number }[] = [];
  const pathOf = (slot: number): (string | number)[] => {
    const p: (string | number)[] = [];
    for (let s = slot; s > 0; s = trail[s].parent) p.push(trail[s].key);
    return p.reverse();
  };
  while (values.length > 0) {
    const v = values.pop();
    const depth = depths.pop()!;
    const parent = parents.pop()!;
    const key = keys.pop()!;
    const slot = trail.push({ parent, key }) - 1;
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { path: pathOf(slot), reason: `${v} is not a finite number (JSON numbers beyond ±1.8e308 are refused, not stored as null)` };
      continue;
    }
    if (typeof v === 'string') {
      if (!v.isWellFormed()) return { path: pathOf(slot), reason: `the string holds a lone surrogate (${firstLoneSurrogate(v)}), which is not Unicode text` };
      continue;
    }
    if (typeof v !== 'object') return { path: pathOf(slot), reason: `${typeof v} is not a JSON value` };
    if (depth >= maxDepth) return { path: pathOf(slot), reason: `nested more than ${maxDepth} levels deep` };
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) {
        values.push(v[i]);
        depths.push(depth + 1);
        parents.push(slot);
        keys.push(i);
      }
      continue;
    }
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (k === '__proto__') return { path: [...pathOf(slot), k], reason: 'the name "__proto__" is reserved' };
      if (!k.isWellFormed()) return { path: [...pathOf(slot), k], reason: `the name holds a lone surrogate (${firstLoneSurrogate(k)}), which is not Unicode text` };
      values.push(o[k]);
      depths.push(depth + 1);
      parents.push(slot);
      keys.push(k);
    }
  }
  return undefined;
}

/** `\uXXXX` of the first code unit of `s` that is a surrogate without its pair. */
export function firstLoneSurrogate(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++;
    else if (c >= 0xd800 && c <= 0xdfff) return `\\u${c.toString(16)}`;
  }
  return '';
}

/**
 * UTF-8 bytes → text; 400 naming the first bad byte when they are not valid
 * UTF-8 (Node would replace them with U+FFFD and the stored value would differ
 * from the one sent). `what` names the text in the message ("the body").
 */
export function decodeUtf8(bytes: Buffer, what: string): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  const at = firstInvalidUtf8(bytes);
  throw new AsofError('ASOF_INVALID_ARGUMENT', `${what} is not valid UTF-8 (byte ${at}: 0x${bytes[at]?.toString(16).padStart(2, '0') ?? '??'}); nothing was written`, [{ field: 'body', reason: `invalid UTF-8 at byte ${at}` }]);
}

/** Offset of the first byte that starts no valid UTF-8 sequence (bytes known to be invalid somewhere). */
function firstInvalidUtf8(b: Buffer): number {
  for (let i = 0; i < b.length; ) {
    const n = b[i] < 0x80 ? 1 : b[i] >= 0xc2 && b[i] <= 0xdf ? 2 : b[i] >= 0xe0 && b[i] <= 0xef ? 3 : b[i] >= 0xf0 && b[i] <= 0xf4 ? 4 : 0;
    if (n === 0 || i + n > b.length || !isUtf8(b.subarray(i, i + n))) return i;
    i += n;
  }
  return b.length;
}

/** A JSON problem as asof's 400: under `rows[i]` it names the row and column (ASOF_INVALID_ROW), else the body field. */
export function jsonProblemError(p: JsonProblem, prefix: (string | number)[] = []): AsofError {
  const path = [...prefix, ...p.path];
  if (path[0] === 'rows' && typeof path[1] === 'number') {
    const inRow = path.slice(2);
    const field = (inRow.length > 12 ? [...inRow.slice(0, 8), `…(${inRow.length} levels)`] : inRow).join('.');
    return new AsofError('ASOF_INVALID_ROW', `row ${path[1]}: ${field ? `column "${field}": ` : ''}${p.reason}; nothing was written`, [{ row: path[1], field, reason: p.reason }]);
  }
  // A path thousands of levels deep is shortened: its start says where, the count how deep.
  const shown = path.length > 12 ? [...path.slice(0, 8), `…(${path.length} levels)`] : path;
  const field = ['body', ...shown].join('.');
  return new AsofError('ASOF_INVALID_ARGUMENT', `${field}: ${p.reason}`, [{ field, reason: p.reason }]);
}

/**
 * JSON text → value, refused with 400 when it is not JSON or breaks a rule
 * above. With `maxDepth` every value is walked; without, the walk runs only
 * when the text could break a rule the caller does not check itself (a
 * `__proto__` key, an escaped surrogate): the row validator checks numbers,
 * strings and depth of every row value, so 1,000-row writes skip the walk.
 */
export function parseJsonText(text: string, opts: { maxDepth?: number; what?: string } = {}): unknown {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    const reason = (e as Error).message;
    throw new AsofError('ASOF_INVALID_ARGUMENT', `${opts.what ?? 'the body'} is not valid JSON: ${reason}`, [{ field: 'body', reason }]);
  }
  if (opts.maxDepth !== undefined || text.includes('__proto__') || text.includes('\\ud') || text.includes('\\uD')) {
    const p = findJsonProblem(v, opts.maxDepth ?? Infinity);
    if (p) throw jsonProblemError(p);
  }
  return v;
}

/**
 * A number literal in JSON text that a float64 does not hold as written: its
 * path from the text's root, the literal, and the number JSON.parse made of it
 * (as JSON.stringify writes it back).
 */
export interface BentNumber {
  path: (string | number)[];
  literal: string;
  stored: string;
}

/**
 * The text the rows of a write were parsed from: a body whose `rows` they are
 * (paths start with `rows`, i), or NDJSON (a row per line that is not blank).
 */
export interface RowsText {
  text: string;
  ndjson?: boolean;
}

const rowsTexts = new WeakMap<unknown[], RowsText>();

/** Keeps, for the json columns' number check, the text `rows` were parsed from (until `rows` is collected). */
export function noteRowsText(rows: unknown[], text: RowsText): void {
  rowsTexts.set(rows, text);
}

/**
 * The numbers a float64 bends in the text `rows` were parsed from (noteRowsText),
 * each with its path from the rows: [row index, column, ...inside the value].
 * `counts` as for bentNumbers, asked with such paths.
 */
export function bentNumbersInRows(rows: unknown[], counts?: (path: (string | number)[]) => boolean): BentNumber[] {
  const t = rowsTexts.get(rows);
  if (!t) return [];
  if (!t.ndjson) {
    const inRows = counts && ((p: (string | number)[]): boolean => p[0] === 'rows' && p.length > 1 && counts(p.slice(1)));
    return bentNumbers(t.text, inRows).flatMap((b) => (b.path[0] === 'rows' ? [{ ...b, path: b.path.slice(1) }] : []));
  }
  const out: BentNumber[] = [];
  let row = 0;
  for (const raw of t.text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const r = row;
    for (const b of bentNumbers(line, counts && ((p) => counts([r, ...p])))) out.push({ ...b, path: [row, ...b.path] });
    row++;
  }
  return out;
}

/**
 * Whether `text` may hold a number literal a float64 does not hold as
 * written: one of 16 significant digits or more (a run of 16 digits and
 * points), or a tiny one (an exponent of -100 or below, as subnormals and
 * underflow to 0 need). A literal of at most 15 significant digits within
 * float64's normal range always comes back as written. Cheap, and true for
 * some texts with no such number (long digit strings, doubles written with 17
 * digits): bentNumbers then tells. `mayBendBytes` is the same over UTF-8 bytes.
 *
 * It runs on every write body to a table with an integer, timestamp or json
 * part, so it reads one character in eight: a run of 16 covers two positions
 * 8 apart that are multiples of 8, and only where both are digits is the run
 * measured. A tiny exponent is found from each `-` (indexOf). On
 * bench:ingest's 1,000-row bodies this took 0.06-0.17 of JSON.parse's time of
 * the same body as bytes, 0.1-0.21 as text; a loop over every character took
 * 0.6-1.0, the regular expression /[\d.]{16}|[eE]-\d{3}/ 0.75-1.4 (best of
 * 30-40 runs each, on a shared 2-core machine, 2026-12-07).
 */
export function mayBend(text: string): boolean {
  const n = text.length;
  outer: for (let i = 0; i + 8 < n; i += 8) {
    if (!digitOrPoint(text.charCodeAt(i + 8)) || !digitOrPoint(text.charCodeAt(i))) continue;
    for (let k = i + 1; k < i + 8; k++) if (!digitOrPoint(text.charCodeAt(k))) continue outer;
    let s = i;
    while (s > 0 && digitOrPoint(text.charCodeAt(s - 1))) s--;
    let e = i + 9;
    while (e < n && digitOrPoint(text.charCodeAt(e))) e++;
    if (e - s >= 16) return true;
  }
  for (let i = text.indexOf('-', 1); i !== -1; i = text.indexOf('-', i + 1)) {
    if ((text.charCodeAt(i - 1) | 0x20) === 0x65 && threeDigits(text.charCodeAt(i + 1), text.charCodeAt(i + 2), text.charCodeAt(i + 3))) return true;
  }
  return false;
}

/** mayBend over UTF-8 bytes (a request body before it is text): the same answer for the same text. */
export function mayBendBytes(b: Uint8Array): boolean {
  const n = b.length;
  outer: for (let i = 0; i + 8 < n; i += 8) {
    if (!digitOrPoint(b[i + 8]) || !digitOrPoint(b[i])) continue;
    for (let k = i + 1; k < i + 8; k++) if (!digitOrPoint(b[k])) continue outer;
    let s = i;
    while (s > 0 && digitOrPoint(b[s - 1])) s--;
    let e = i + 9;
    while (e < n && digitOrPoint(b[e])) e++;
    if (e - s >= 16) return true;
  }
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  for (let i = buf.indexOf(0x2d, 1); i !== -1; i = buf.indexOf(0x2d, i + 1)) {
    if ((buf[i - 1] | 0x20) === 0x65 && threeDigits(buf[i + 1], buf[i + 2], buf[i + 3])) return true;
  }
  return false;
}

const digitOrPoint = (c: number): boolean => (c >= 0x30 && c <= 0x39) || c === 0x2e;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const threeDigits = (a: number, b: number, c: number): boolean => isDigit(a) && isDigit(b) && isDigit(c);
/** A character a JSON number literal may hold after its first. */
const inNumber = (c: number): boolean => isDigit(c) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2d || c === 0x2b;

/**
 * Every number literal in `text` (valid JSON; an NDJSON line or a body) whose
 * value differs from that of the float64 JSON.parse reads it as, written back
 * (`12345678901234567890` → 12345678901234567000; `1e300` and
 * `12345678901234567000` are kept as sent). `-0` counts as 0. Paths name
 * object keys and array indexes from the root. `counts`, when given, is asked
 * about each literal that may bend before it is read (its path): false skips
 * it, so the literals of a float64 column cost no more than the scan. The
 * scan runs only where mayBend fires: on 1,000 rows whose three float64
 * columns hold 17-digit doubles it took about JSON.parse's time of the body
 * (0.9-1.6 of it); reading each long literal as well, 7 to 12 times that.
 */
export function bentNumbers(text: string, counts?: (path: (string | number)[]) => boolean): BentNumber[] {
  if (!mayBend(text)) return [];
  const out: BentNumber[] = [];
  // One frame per open container: an array's index, or the bounds of an object's current key in the text (its name read once, when asked).
  const frames: { array: boolean; index: number; keyStart: number; keyEnd: number; key?: string }[] = [];
  let expectKey = false;
  const keyOf = (f: (typeof frames)[number]): string => {
    if (f.key === undefined) {
      const raw = text.slice(f.keyStart + 1, f.keyEnd - 1);
      f.key = raw.includes('\\') ? (JSON.parse(text.slice(f.keyStart, f.keyEnd)) as string) : raw;
    }
    return f.key;
  };
  const pathHere = (): (string | number)[] => frames.map((f) => (f.array ? f.index : keyOf(f)));
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      // To the closing quote: one not escaped, i.e. after an even run of backslashes (indexOf, native: strings are most of a body).
      for (i = text.indexOf('"', i + 1); ; i = text.indexOf('"', i + 1)) {
        let k = i;
        while (text.charCodeAt(k - 1) === 0x5c /* \ */) k--;
        if ((i - k) % 2 === 0) break;
      }
      if (expectKey) {
        const f = frames[frames.length - 1];
        f.keyStart = start;
        f.keyEnd = i + 1;
        f.key = undefined;
        expectKey = false;
      }
    } else if (c === 0x7b /* { */) {
      frames.push({ array: false, index: 0, keyStart: 0, keyEnd: 0 });
      expectKey = true;
    } else if (c === 0x5b /* [ */) frames.push({ array: true, index: 0, keyStart: 0, keyEnd: 0 });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
      expectKey = false;
    }
    else if (c === 0x2c /* , */) {
      const f = frames[frames.length - 1];
      if (f?.array) f.index++;
      else expectKey = f !== undefined;
    } else if (c === 0x2d /* - */ || isDigit(c)) {
      const start = i;
      let exp = -1;
      for (let d = text.charCodeAt(i + 1); inNumber(d); d = text.charCodeAt(++i + 1)) if ((d | 0x20) === 0x65) exp = i + 1;
      // Up to 15 characters and no exponent of -100 or below: nothing a float64 bends (mayBend).
      if (i + 1 - start < 16 && !(exp >= 0 && text.charCodeAt(exp + 1) === 0x2d && threeDigits(text.charCodeAt(exp + 2), text.charCodeAt(exp + 3), text.charCodeAt(exp + 4)))) continue;
      if (counts && !counts(pathHere())) continue;
      const literal = text.slice(start, i + 1);
      const n = Number(literal);
      // Beyond ±1.8e308 (Infinity) is findJsonProblem's refusal.
      if (Number.isFinite(n) && !sameDecimal(literal, String(n))) out.push({ path: pathHere(), literal, stored: String(n) });
    }
  }
  return out;
}

/** Why a bent number is refused; `at` is its path inside the json value. Worded like an int64's refusal. */
export function bentNumberReason(b: BentNumber, at: (string | number)[]): string {
  const shown = b.literal.length > 40 ? `${b.literal.slice(0, 40)}…` : b.literal;
  const why = decimalOf(b.literal).exponent >= 0 ? 'integers beyond 2^53 must be sent as strings' : 'a float64 keeps 15 to 17 significant digits, fewer below 2.2e-308: send more as a string';
  return `${at.length ? `at ${at.join('.')}: ` : ''}${shown} would be stored as ${b.stored}, as a JSON number is held as a float64 (${why})`;
}

/**
 * Why a bent number is refused where an `int32`, `int64` or `timestamp` goes
 * (`kind`): worded as that column's own refusals of a fraction or of an
 * integer beyond 2^53.
 */
export function bentScalarReason(b: BentNumber, kind: 'int32' | 'int64' | 'timestamp'): string {
  const shown = b.literal.length > 40 ? `${b.literal.slice(0, 40)}…` : b.literal;
  const held = `a JSON number is held as a float64, which would store it as ${b.stored}`;
  if (decimalOf(b.literal).exponent >= 0) return `expected ${kind === 'timestamp' ? 'epoch milliseconds' : kind}, got ${shown} (${held}; integers beyond 2^53 must be sent as strings)`;
  if (kind === 'timestamp') return `epoch milliseconds must be a whole number, got ${shown} (${held}: refused rather than rounded)`;
  return `expected ${kind}, got ${shown}, which is not a whole number (${held}: refused rather than rounded)`;
}

/** Whether two number literals (JSON or JavaScript's) write the same decimal value. */
function sameDecimal(a: string, b: string): boolean {
  const x = decimalOf(a);
  const y = decimalOf(b);
  return x.digits === y.digits && (x.digits === '' || (x.negative === y.negative && x.exponent === y.exponent));
}

/** A literal as sign, significant digits (no leading or trailing zeros) and the exponent of the last one; zero has no digits. */
function decimalOf(s: string): { negative: boolean; digits: string; exponent: number } {
  const m = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/.exec(s)!;
  const all = (m[2] + (m[3] ?? '')).replace(/^0+/, '');
  const digits = all.replace(/0+$/, '');
  return { negative: m[1] === '-', digits, exponent: Number(m[4] ?? 0) - (m[3]?.length ?? 0) + (all.length - digits.length) };
}
