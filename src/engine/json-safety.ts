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
 *   - inside a `json` value, a number must be one a float64 holds as sent:
 *     JSON.parse reads `12345678901234567890` as 12345678901234567000 and
 *     `0.1000000000000000055511151231257827` as 0.1. Only the text shows it,
 *     so the text of a write is kept with the rows it became (noteRowsText)
 *     and read again only for a table with a json column (bentNumbersInRows);
 *     other column types have their own rules (an int64
 *     refuses any number beyond 2^53, a float64 takes the nearest double);
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
 */
export function bentNumbersInRows(rows: unknown[]): BentNumber[] {
  const t = rowsTexts.get(rows);
  if (!t) return [];
  if (!t.ndjson) return bentNumbers(t.text).flatMap((b) => (b.path[0] === 'rows' ? [{ ...b, path: b.path.slice(1) }] : []));
  const out: BentNumber[] = [];
  let row = 0;
  for (const raw of t.text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    for (const b of bentNumbers(line)) out.push({ ...b, path: [row, ...b.path] });
    row++;
  }
  return out;
}

/**
 * Whether `text` may hold a number literal a float64 does not hold as
 * written: one of 16 significant digits or more, or a tiny one (an exponent
 * of -100 or below, as subnormals and underflow to 0 need). A literal of at most 15
 * significant digits within float64's normal range always comes back as
 * written. Cheap, and true for some texts with no such number (long digit
 * strings, doubles written with 17 digits): bentNumbers then tells.
 */
export function mayBend(text: string): boolean {
  // A loop, not a regular expression: /[\d.]{16}|[eE]-\d{3}/ took 1.6 times as long on a 77 kB body of numbers.
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c >= 0x30 && c <= 0x39) || c === 0x2e) {
      if (++run >= 16) return true;
    } else {
      run = 0;
      if ((c === 0x65 || c === 0x45) && text.charCodeAt(i + 1) === 0x2d && /^\d{3}/.test(text.slice(i + 2, i + 5))) return true;
    }
  }
  return false;
}

/**
 * Every number literal in `text` (valid JSON; an NDJSON line or a body) whose
 * value differs from that of the float64 JSON.parse reads it as, written back
 * (`12345678901234567890` → 12345678901234567000; `1e300` and
 * `12345678901234567000` are kept as sent). `-0` counts as 0. Paths name
 * object keys and array indexes from the root.
 */
export function bentNumbers(text: string): BentNumber[] {
  if (!mayBend(text)) return [];
  const out: BentNumber[] = [];
  // One frame per open container: an array's index, or the bounds of an object's current key in the text.
  const frames: { array: boolean; index: number; keyStart: number; keyEnd: number }[] = [];
  let expectKey = false;
  const pathHere = (): (string | number)[] => frames.map((f) => (f.array ? f.index : (JSON.parse(text.slice(f.keyStart, f.keyEnd)) as string)));
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      if (expectKey) {
        const f = frames[frames.length - 1];
        f.keyStart = start;
        f.keyEnd = i + 1;
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
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      const start = i;
      while (i + 1 < text.length && /[-+.eE0-9]/.test(text[i + 1])) i++;
      const literal = text.slice(start, i + 1);
      if (literal.length < 16 && !/[eE]-\d{3}/.test(literal)) continue;
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
