/**
 * V8 makes a slice (or trim) of 13 characters or more of a string a view of
 * it (a sliced string) that keeps the whole string alive as long as the slice
 * lives. What is kept long (a table's values, a cache's keys) must not be such
 * a view of something much larger (a request body, a header, a file).
 */

/**
 * `s` as a string that keeps nothing else alive: a copy of one character more,
 * flattened, and the slice of it that is `s` (about 30 bytes more than `s`).
 * Where the bytes are at hand, `buf.toString(encoding, start, end)` is the
 * cheaper copy (arrow-decode.ts, json-rows.ts).
 */
export function ownString(s: string): string {
  return s.length < 13 ? s : ('\0' + s).slice(1);
}
