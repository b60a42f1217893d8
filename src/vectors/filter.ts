/**
 * Structured search filters: `{col: value}`, `{col: {in|gt|gte|lt|lte|ne: v}}`,
 * `{and: [...]}`, `{or: [...]}`. Never SQL text from the caller.
 *
 * One compiled filter gives two things that must agree on every row:
 *   - `sql`, Lance's where clause: identifiers in backticks (column names are
 *     checked against the schema and only ever [A-Za-z0-9_]), every value
 *     coerced to its column's type first and written as a literal (strings
 *     quoted with '' doubling, the only escape in Lance's SQL dialect;
 *     numbers and booleans from the coerced value, never from caller text);
 *     written for the columns the dataset searched holds: a column added to
 *     the table after that dataset version was written is null on every row
 *     of it, so a condition on it is the constant `test` gives a null (Lance
 *     refuses a column it does not have);
 *   - `test(row)`, the same predicate on a canonical row (hot rows).
 * SQL's three-valued logic is matched: a comparison with a null column value
 * is not true, and since there is no NOT, "not true" and "false" agree.
 * `{col: null}` is IS NULL and `{col: {ne: null}}` IS NOT NULL.
 * Strings compare by Unicode code point, as Lance compares UTF-8 bytes.
 */
import { AsofError } from '../errors.js';
import { BadValue } from '../engine/coerce.js';
import type { CompiledColumn, Row, TableSchema } from '../engine/schema.js';

export type Filter = Record<string, unknown>;

export interface CompiledFilter {
  /** Lance where clause for a dataset (version) holding the table columns `held`; a condition on any other is TRUE or FALSE, as for a null. */
  sql: (held: ReadonlySet<string>) => string;
  /** The same predicate over a canonical row. */
  test: (row: Row) => boolean;
}

/** Column types a filter may name (stored as typed Lance columns). */
export const FILTERABLE = new Set(['bool', 'int32', 'int64', 'float32', 'float64', 'string', 'timestamp']);
const OPS = ['in', 'gt', 'gte', 'lt', 'lte', 'ne'] as const;
type Op = (typeof OPS)[number] | 'eq';
const SQL_OP: Record<Exclude<Op, 'in'>, string> = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' };
const MAX_DEPTH = 16;
const MAX_NODES = 2000;

/** Compiles a filter against a table's schema; 400 naming the field for anything not allowed. */
export function compileFilter(schema: TableSchema, filter: Filter, where = 'filter'): CompiledFilter {
  let nodes = 0;
  const bad = (field: string, reason: string): never => {
    throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid ${field}: ${reason}`, [{ field, reason }]);
  };

  const node = (f: unknown, path: string, depth: number): CompiledFilter => {
    if (++nodes > MAX_NODES) bad(path, `a filter may have at most ${MAX_NODES} conditions`);
    if (depth > MAX_DEPTH) bad(path, `filters nest at most ${MAX_DEPTH} deep`);
    if (f === null || typeof f !== 'object' || Array.isArray(f)) return bad(path, 'a filter is an object');
    const entries = Object.entries(f as Filter);
    if (entries.length === 0) bad(path, 'an empty filter object; give at least one condition');
    const parts = entries.map(([k, v]) => {
      if ((k === 'and' || k === 'or') && Array.isArray(v)) {
        if (v.length === 0) bad(`${path}.${k}`, `"${k}" needs at least one filter`);
        const subs = v.map((s, i) => node(s, `${path}.${k}[${i}]`, depth + 1));
        return k === 'and' ? all(subs) : any(subs);
      }
      return condition(k, v, `${path}.${k}`);
    });
    return all(parts);
  };

  const condition = (name: string, v: unknown, path: string): CompiledFilter => {
    const col = schema.byName.get(name);
    if (!col) return bad(path, `unknown column "${name}" (table "${schema.name}" has ${schema.columns.map((c) => c.name).join(', ')})`);
    if (!FILTERABLE.has(col.type.kind)) return bad(path, `column "${name}" has type ${col.type.kind}; filters take ${[...FILTERABLE].join(', ')} columns`);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return compare(col, 'eq', v, path);
    const ops = Object.entries(v as Filter);
    if (ops.length === 0) bad(path, `give one of ${OPS.join(', ')}`);
    return all(ops.map(([op, x]) => ((OPS as readonly string[]).includes(op) ? compare(col, op as Op, x, `${path}.${op}`) : bad(`${path}.${op}`, `unknown operator "${op}" (known: ${OPS.join(', ')})`))));
  };

  const compare = (col: CompiledColumn, op: Op, v: unknown, path: string): CompiledFilter => {
    const id = `\`${col.name}\``;
    const name = col.name;
    if (op === 'in') {
      if (!Array.isArray(v) || v.length === 0) return bad(path, '"in" takes a non-empty array of values');
      if (v.length > 10_000) bad(path, '"in" takes at most 10000 values');
      nodes += v.length;
      if (nodes > MAX_NODES * 10) bad(path, 'the filter has too many values');
      const values = v.map((x, i) => coerceValue(col, x, `${path}[${i}]`, bad));
      return leaf(name, `${id} IN (${values.map((x) => literal(col, x)).join(', ')})`, (row) => values.some((x) => cmp(col, row[name], x) === 0));
    }
    if (v === null) {
      if (op === 'eq') return leaf(name, `${id} IS NULL`, (row) => row[name] === null || row[name] === undefined);
      if (op === 'ne') return leaf(name, `${id} IS NOT NULL`, (row) => row[name] !== null && row[name] !== undefined);
      return bad(path, `"${op}" needs a value, not null`);
    }
    if (col.type.kind === 'bool' && op !== 'eq' && op !== 'ne') bad(path, `"${op}" does not apply to bool columns`);
    const x = coerceValue(col, v, path, bad);
    const ok = OP_TEST[op];
    return leaf(name, `${id} ${SQL_OP[op]} ${literal(col, x)}`, (row) => ok(cmp(col, row[name], x)));
  };

  return node(filter, where, 0);
}

const OP_TEST: Record<Exclude<Op, 'in'>, (c: number) => boolean> = {
  eq: (c) => c === 0,
  ne: (c) => c !== 0 && !Number.isNaN(c),
  gt: (c) => c > 0,
  gte: (c) => c >= 0,
  lt: (c) => c < 0,
  lte: (c) => c <= 0,
};

/** One condition on column `name`: `sql` where the dataset holds it, else what `test` answers for a row where it is null. */
function leaf(name: string, sql: string, test: (row: Row) => boolean): CompiledFilter {
  const absent = test({}) ? 'TRUE' : 'FALSE';
  return { sql: (held) => (held.has(name) ? sql : absent), test };
}

function all(parts: CompiledFilter[]): CompiledFilter {
  if (parts.length === 1) return parts[0];
  return { sql: (held) => parts.map((p) => `(${p.sql(held)})`).join(' AND '), test: (row) => parts.every((p) => p.test(row)) };
}

function any(parts: CompiledFilter[]): CompiledFilter {
  if (parts.length === 1) return parts[0];
  return { sql: (held) => parts.map((p) => `(${p.sql(held)})`).join(' OR '), test: (row) => parts.some((p) => p.test(row)) };
}

function coerceValue(col: CompiledColumn, v: unknown, path: string, bad: (field: string, reason: string) => never): unknown {
  if (v === null || v === undefined) return bad(path, 'null is allowed only as {col: null} or {col: {ne: null}}');
  try {
    return col.coerce(v);
  } catch (e) {
    if (e instanceof BadValue) return bad(path, e.reason);
    throw e;
  }
}

/** A coerced value as a Lance SQL literal. Only the coerced value is written, never caller text. */
function literal(col: CompiledColumn, v: unknown): string {
  switch (col.type.kind) {
    case 'string':
      return `'${(v as string).replaceAll("'", "''")}'`;
    case 'bool':
      return v ? 'true' : 'false';
    case 'int32':
    case 'int64':
    case 'timestamp':
      // Integers (number or bigint) after coercion: digits and a sign only.
      return BigInt(v as number | bigint).toString();
    default:
      return floatLiteral(v as number);
  }
}

/** A finite double as decimal text Lance parses as a float (no exponent form). */
function floatLiteral(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e21) return `${x}.0`;
  // The shortest text that reads back as the same double; Lance's SQL reads the exponent form too (test/integration/vector-filters.test.ts filters on 1e-7 and 1e21).
  return String(x);
}

/**
 * Compares a row value with a coerced filter value: <0, 0, >0, or NaN when
 * the row value is null (no comparison is true).
 */
function cmp(col: CompiledColumn, a: unknown, b: unknown): number {
  if (a === null || a === undefined) return NaN;
  switch (col.type.kind) {
    case 'string':
      return compareCodePoints(a as string, b as string);
    case 'bool':
      return a === b ? 0 : a ? 1 : -1;
    case 'int64':
      if (typeof a === 'bigint' || typeof b === 'bigint') {
        const x = BigInt(a as number), y = BigInt(b as number);
        return x < y ? -1 : x > y ? 1 : 0;
      }
      return (a as number) - (b as number);
    default:
      return Math.sign((a as number) - (b as number));
  }
}

/** Orders strings by code point (UTF-8 byte order), not UTF-16 unit. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate (0xD800-0xDFFF) stands for a code point above 0xFFFF, which sorts after every BMP unit.
    const sx = x >= 0xd800 && x <= 0xdfff, sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
