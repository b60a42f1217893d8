/**
 * An entity state's JSON (FORMAT.md, "Entity state JSON") read back. The
 * usual state, a pk view's row `{"b":[eventTime,offset,[scalars]]}` as
 * JSON.stringify wrote it, is read by hand; anything else (log views' `f`
 * and `w`, lists, structs, escapes, exponents, whitespace, bad text) by
 * JSON.parse. Both give the same object: numbers of up to 15 digits are
 * their digits over a power of ten (both exact doubles, so the division is
 * the correctly rounded value, as JSON.parse's), longer ones go to Number.
 *
 * Measured (2026-12-06, in isolation, load ~6): JSON.parse of the bench's
 * 180-character state of 20 features cost 1.4 µs, the largest part of a cold
 * Redis lookup's evaluation.
 */
import type { EntityState } from '../features/evaluator.js';

const POW10 = Array.from({ length: 16 }, (_, i) => 10 ** i);

/** Where the reader is in the text; -1 once it found something it leaves to JSON.parse. */
let at = 0;

export function parseState(text: string): EntityState {
  // `{"b":[`
  if (text.length < 12 || text.charCodeAt(0) !== 123 || text.charCodeAt(1) !== 34 || text.charCodeAt(2) !== 98 || text.charCodeAt(3) !== 34 || text.charCodeAt(4) !== 58 || text.charCodeAt(5) !== 91) return JSON.parse(text) as EntityState;
  at = 6;
  const et = number(text);
  if (at < 0 || text.charCodeAt(at++) !== 44) return JSON.parse(text) as EntityState;
  const offset = number(text);
  if (at < 0 || text.charCodeAt(at++) !== 44 || text.charCodeAt(at++) !== 91) return JSON.parse(text) as EntityState;
  const values: unknown[] = [];
  if (text.charCodeAt(at) === 93) at++;
  else {
    for (;;) {
      values.push(scalar(text));
      if (at < 0) return JSON.parse(text) as EntityState;
      const c = text.charCodeAt(at++);
      if (c === 93) break;
      if (c !== 44) return JSON.parse(text) as EntityState;
    }
  }
  // `]}` ends the text.
  if (at !== text.length - 2 || text.charCodeAt(at) !== 93 || text.charCodeAt(at + 1) !== 125) return JSON.parse(text) as EntityState;
  return { b: [et, offset, values] };
}

function scalar(s: string): unknown {
  const c = s.charCodeAt(at);
  if (c === 34) {
    const start = at + 1;
    for (let i = start; i < s.length; i++) {
      const d = s.charCodeAt(i);
      if (d === 34) return (at = i + 1), s.slice(start, i);
      // An escape, or a character JSON does not allow raw.
      if (d === 92 || d < 0x20) break;
    }
    return (at = -1), undefined;
  }
  if (c === 116 && s.startsWith('true', at)) return (at += 4), true;
  if (c === 102 && s.startsWith('false', at)) return (at += 5), false;
  if (c === 110 && s.startsWith('null', at)) return (at += 4), null;
  return number(s);
}

/** A JSON number without an exponent; anything else sets `at` to -1. */
function number(s: string): number {
  const start = at;
  let i = at;
  let c = s.charCodeAt(i);
  const negative = c === 45;
  if (negative) c = s.charCodeAt(++i);
  const first = i;
  let m = 0;
  while (c >= 48 && c <= 57) {
    m = m * 10 + (c - 48);
    c = s.charCodeAt(++i);
  }
  let digits = i - first;
  // No digits, or a leading zero JSON does not allow.
  if (digits === 0 || (digits > 1 && s.charCodeAt(first) === 48)) return (at = -1);
  let places = 0;
  if (c === 46) {
    const point = ++i;
    c = s.charCodeAt(i);
    while (c >= 48 && c <= 57) {
      m = m * 10 + (c - 48);
      c = s.charCodeAt(++i);
    }
    places = i - point;
    if (places === 0) return (at = -1);
    digits += places;
  }
  if (c === 101 || c === 69) return (at = -1);
  at = i;
  if (digits > 15) return Number(s.slice(start, i));
  const v = places === 0 ? m : m / POW10[places];
  return negative ? -v : v;
}
