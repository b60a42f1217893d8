/**
 * Per-type value checks: each turns an input value into its canonical form
 * (see schema.ts) or throws BadValue naming the path and what is wrong.
 */
import { findJsonProblem, firstLoneSurrogate, MAX_JSON_VALUE_DEPTH } from './json-safety.js';
import { parseTimestamp, timestampProblem } from './time.js';
import type { ColumnType } from './types.js';

export type Coerce = (v: unknown) => unknown;
/** Thrown inside coercers; caught by the validator and turned into a FieldIssue. */
export class BadValue {
  constructor(readonly path: string, readonly reason: string) {}
}

export function coercer(type: ColumnType, path: string): Coerce {
  const bad = (reason: string): never => {
    throw new BadValue(path, reason);
  };
  switch (type.kind) {
    case 'bool':
      return (v) => (typeof v === 'boolean' ? v : bad(`expected bool, got ${describe(v)}`));
    case 'int32':
      return (v) =>
        typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647 ? v : bad(`expected int32, got ${describe(v)}`);
    case 'int64':
      return (v) => {
        if (typeof v === 'number') return Number.isSafeInteger(v) ? v : bad(`expected int64, got ${describe(v)}: integers beyond 2^53 must be sent as strings`);
        if (typeof v === 'bigint' || (typeof v === 'string' && /^-?\d{1,19}$/.test(v))) {
          const b = BigInt(v);
          if (b < -(2n ** 63n) || b >= 2n ** 63n) bad(`int64 out of range: ${String(v)}`);
          return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
        }
        return bad(`expected int64, got ${describe(v)}`);
      };
    case 'float32':
      // Rounded to 32 bits here, once: the value served right after the write must equal the one read back from the changelog.
      return (v) => {
        const f = typeof v === 'number' ? Math.fround(v) : NaN;
        return Number.isFinite(f) ? f : bad(`expected float32, got ${describe(v)}${typeof v === 'number' && Number.isFinite(v) ? ' (out of float32 range)' : ''}`);
      };
    case 'float64':
      return (v) => (typeof v === 'number' && Number.isFinite(v) ? v : bad(`expected ${type.kind}, got ${describe(v)}`));
    case 'string':
      // Every path (JSON, NDJSON, Arrow, CSV, Parquet, gRPC) reaches this check: a lone surrogate cannot be stored as UTF-8 unchanged.
      return (v) =>
        typeof v !== 'string' ? bad(`expected string, got ${describe(v)}`) : v.isWellFormed() ? v : bad(`the string holds a lone surrogate (${firstLoneSurrogate(v)}), which is not Unicode text`);
    case 'timestamp':
      return (v) => parseTimestamp(v) ?? bad(timestampProblem(v, describe(v)));
    case 'json':
      // Walked once here, whatever path the value came by: depth bounded, numbers finite, text well-formed, no `__proto__`.
      return (v) => {
        if (v === undefined) bad('expected a JSON value');
        const p = findJsonProblem(v, MAX_JSON_VALUE_DEPTH);
        if (p) bad(p.path.length ? `at ${p.path.length > 12 ? `${p.path.slice(0, 8).join('.')}…(${p.path.length} levels)` : p.path.join('.')}: ${p.reason}` : p.reason);
        return v;
      };
    case 'vector':
      return (v) => {
        if (!Array.isArray(v) && !(v instanceof Float32Array)) return bad(`expected vector<${type.dim}> (an array of ${type.dim} numbers), got ${describe(v)}`);
        if (v.length !== type.dim) return bad(`expected vector<${type.dim}>, got ${v.length} values`);
        // Stored as float32: each element rounded here, once, as a float32 column's value is (the value served
        // right after the write equals the one read back), and one beyond float32's range refused, not made Infinity.
        const out = new Array<number>(v.length);
        for (let i = 0; i < v.length; i++) {
          const x = v[i];
          const f = typeof x === 'number' ? Math.fround(x) : NaN;
          if (!Number.isFinite(f)) bad(`vector element ${i} is not a finite number${typeof x === 'number' && Number.isFinite(x) ? ' in float32 range' : ''}`);
          out[i] = f;
        }
        return out;
      };
    case 'list': {
      const item = coercer(type.item, `${path}[]`);
      return (v) => {
        if (!Array.isArray(v)) return bad(`expected a list, got ${describe(v)}`);
        return v.map((x) => (x === null ? null : item(x)));
      };
    }
    case 'struct': {
      const fields = type.fields.map((f) => ({ name: f.name, coerce: coercer(f.type, `${path}.${f.name}`) }));
      const known = new Set(type.fields.map((f) => f.name));
      return (v) => {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad(`expected a struct (object), got ${describe(v)}`);
        const o = v as Record<string, unknown>;
        for (const k of Object.keys(o)) if (!known.has(k)) bad(`unknown struct field "${k}"`);
        const out: Record<string, unknown> = {};
        for (const f of fields) {
          // Own properties only: an inherited one (`constructor`, `toString`) is no value the client sent.
          const x = Object.hasOwn(o, f.name) ? o[f.name] : undefined;
          out[f.name] = x === null || x === undefined ? null : f.coerce(x);
        }
        return out;
      };
    }
  }
}

/**
 * How `describe` names an integer number of magnitude 2^53 or more: not by its
 * value, which is the float64 JSON.parse (or a double) made of what was sent
 * (`9007199254740993` arrives as 9007199254740992), so printing it would show a
 * number the client never sent. A caller holding the text quotes the literal
 * in front of it (ingest.ts).
 */
export const BEYOND_2_53 = 'a number of magnitude 2^53 or more (a JSON number does not carry one exactly)';

/** `v` as JSON for a message naming a value, or BEYOND_2_53 for a number whose value is not the one sent (see there). */
export const shownJson = (v: unknown): string => (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v) ? BEYOND_2_53 : JSON.stringify(v));

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) return BEYOND_2_53;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}
