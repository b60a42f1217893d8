/**
 * An entity state's JSON (FORMAT.md, "Entity state JSON") read back off its
 * bytes, given as latin1 text (one char per byte; the Redis store never
 * decodes a state's UTF-8 whole). The usual state, a pk view's row
 * `{"b":[eventTime,offset,[scalars]]}` as JSON.stringify wrote it, is read by
 * hand; anything else (log views, lists, structs, escapes, exponents, spaces,
 * bad text) by JSON.parse of the decoded UTF-8. Both give the same object: a
 * string with bytes past ASCII is decoded alone (no quote byte is part of a
 * multi-byte sequence); numbers of up to 15 digits are their digits over a
 * power of ten (both exact doubles: the division rounds correctly, as
 * JSON.parse), longer ones go to Number. The bench's 180-byte states: 0.57 µs
 * each, 0.67 as UTF-8 text read by charCodeAt (2026-12-06, in isolation).
 */
import type { EntityState } from '../features/evaluator.js';

const POW10 = Array.from({ length: 16 }, (_, i) => 10 ** i);

/** Scratch for states given as text alone, copied in by `latin1Write` (what `write(s, at, n, 'latin1')` calls after its argument checks, 25 ns less). */
let scratch = Buffer.allocUnsafe(4096) as Buffer & { latin1Write(s: string, at: number, n: number): number };
/** The bytes being read, where the state starts in them, and where the reader is (-1 once it found something it leaves to JSON.parse). */
let bytes: Buffer = scratch;
let base = 0;
let at = 0;
/** The number of values of the last row state read. */
let width = 0;

/**
 * `latin1`: a state's UTF-8 bytes, one char per byte. `from`, when given, holds the same bytes at `start` (a Redis
 * reply): read there, not copied (55 ns per state of the bench's, 2026-12-06, session 15).
 */
export function parseState(latin1: string, from?: Buffer, start = 0): EntityState {
  let n = latin1.length;
  if (from) bytes = from;
  else {
    if (n > scratch.length) scratch = Buffer.allocUnsafe(Math.max(n, 2 * scratch.length)) as typeof scratch;
    // Grown past 1 MiB by one large state: let go at the next small one rather than kept for good.
    else if (scratch.length > 1 << 20 && n <= 4096) scratch = Buffer.allocUnsafe(4096) as typeof scratch;
    scratch.latin1Write(latin1, 0, n);
    bytes = scratch;
  }
  const b = bytes;
  base = start;
  at = start;
  n += start;
  // Bytes past n are another state's (or the reply's CRLF): any rule that reads one moves `at` past n - 2, where the end check fails.
  // `{"b":[`
  if (n - at < 12 || b[at] !== 123 || b[at + 1] !== 34 || b[at + 2] !== 98 || b[at + 3] !== 34 || b[at + 4] !== 58 || b[at + 5] !== 91) return slow(n);
  at += 6;
  const et = number(latin1);
  if (at < 0 || b[at++] !== 44) return slow(n);
  const offset = number(latin1);
  if (at < 0 || b[at++] !== 44 || b[at++] !== 91) return slow(n);
  // Made at the width of the last state read (the states of a view share one): filled, never grown, where pushing grew it
  // four times for the bench's 20 values (parseState alone 0.90-0.93 of before, 2026-12-07).
  const values: unknown[] = new Array(width);
  let k = 0;
  if (b[at] === 93) at++;
  else
    for (;;) {
      values[k++] = scalar(latin1, n);
      if (at < 0) return slow(n);
      const c = b[at++];
      if (c === 93) break;
      if (c !== 44) return slow(n);
    }
  if (k !== width) values.length = width = k;
  // `]}` ends the text.
  if (at !== n - 2 || b[at] !== 93 || b[at + 1] !== 125) return slow(n);
  return { b: [et, offset, values] };
}

const slow = (n: number): EntityState => JSON.parse(bytes.toString('utf8', base, n)) as EntityState;

function scalar(s: string, n: number): unknown {
  const b = bytes;
  const c = b[at];
  if (c === 34) {
    const start = at + 1;
    let ascii = true;
    for (let i = start; i < n; i++) {
      const d = b[i];
      // ASCII text is its latin1 slice (a copy below 13 chars: V8 slices longer ones, which would keep the state's text alive).
      if (d === 34) return (at = i + 1), ascii && i - start < 13 ? s.slice(start - base, i - base) : b.toString('utf8', start, i);
      // An escape, or a character JSON does not allow raw.
      if (d === 92 || d < 0x20) break;
      if (d > 0x7f) ascii = false;
    }
    return (at = -1), undefined;
  }
  if (c === 116 && b[at + 1] === 114 && b[at + 2] === 117 && b[at + 3] === 101) return (at += 4), true;
  if (c === 102 && b[at + 1] === 97 && b[at + 2] === 108 && b[at + 3] === 115 && b[at + 4] === 101) return (at += 5), false;
  if (c === 110 && b[at + 1] === 117 && b[at + 2] === 108 && b[at + 3] === 108) return (at += 4), null;
  return number(s);
}

/** A JSON number without an exponent; anything else sets `at` to -1. */
function number(s: string): number {
  const b = bytes;
  const start = at;
  let i = at;
  let c = b[i];
  const negative = c === 45;
  if (negative) c = b[++i];
  const first = i;
  let m = 0;
  for (; c >= 48 && c <= 57; c = b[++i]) m = m * 10 + (c - 48);
  let digits = i - first;
  // No digits, or a leading zero JSON does not allow.
  if (digits === 0 || (digits > 1 && b[first] === 48)) return (at = -1);
  let places = 0;
  if (c === 46) {
    const point = ++i;
    for (c = b[i]; c >= 48 && c <= 57; c = b[++i]) m = m * 10 + (c - 48);
    places = i - point;
    if (places === 0) return (at = -1);
    digits += places;
  }
  if (c === 101 || c === 69) return (at = -1);
  at = i;
  if (digits > 15) return Number(s.slice(start - base, i - base));
  const v = places === 0 ? m : m / POW10[places];
  return negative ? -v : v;
}
