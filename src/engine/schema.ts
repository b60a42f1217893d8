/**
 * Table definitions and the row validator compiled from them (a definition is
 * checked in table-def.ts).
 *
 * A row crosses into the engine once, here: every value is checked against its
 * column and turned into its canonical in-memory form:
 *   bool → boolean; int32, float32, float64 → number; int64 → number when it is
 *   a safe integer, else bigint; string → string; timestamp → epoch milliseconds
 *   (number, UTC); json → the parsed JSON value; list → array; struct → object;
 *   vector<D> → number[] of length D.
 */
import { AsofError, type FieldIssue } from '../errors.js';
import { parseColumnType, type ColumnType } from './types.js';
import { formatTimestamp, parseTimestamp, timestampProblem } from './time.js';
import { BadValue, coercer, describe, type Coerce } from './coerce.js';
import { rowCodeFor, type RowCode } from './row-code.js';
import { numericIndexKey, type IndexKey } from './indexes.js';

export { formatTimestamp, parseTimestamp, timestampProblem };

/** A time a request gives (RFC 3339 or epoch ms) → epoch ms; a 400 naming `field` and why when it is none, or outside the years 0001-9999 (engine/time.ts). */
export function checkedTime(field: string, v: unknown): number {
  const t = parseTimestamp(v);
  if (t !== undefined) return t;
  const why = timestampProblem(v, describe(v));
  throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid ${field}: ${why}`, [{ field, reason: why }]);
}

export type TableKind = 'log' | 'pk';

export interface ColumnDef {
  name: string;
  /** The type's text form, as the user wrote it (normalised). */
  type: string;
  nullable: boolean;
  /** vector<D> columns: the distance searches rank by and the index is built for (cosine when absent). */
  metric?: 'cosine' | 'l2' | 'dot';
}

export interface SchemaVersion {
  version: number;
  /** Columns 0..columnCount-1 of the table's column list. Versions only ever append nullable columns. */
  columnCount: number;
  /** Epoch ms. */
  createdAt: number;
}

/** What the catalog persists for a table. */
export interface TableDef {
  name: string;
  kind: TableKind;
  columns: ColumnDef[];
  /** pk tables: the unique key, in order. Log tables: optional key columns used for `?key=` lookups (not unique). */
  primaryKey: string[];
  /** Column saying when a row happened. Required on log tables; on pk tables absent means commit time. */
  eventTime?: string;
  schemaVersions: SchemaVersion[];
  createdAt: number;
}

export type Row = Record<string, unknown>;

export const KEY_TYPES = new Set(['bool', 'int32', 'int64', 'string', 'timestamp']);
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const NAME_PATTERN = NAME_RE.source;

/** Internal tables (the audit's decisions) start with this: users can neither create nor write them. */
export const RESERVED_PREFIX = '_asof';
export const isReservedName = (name: string): boolean => name.startsWith(RESERVED_PREFIX);

/** Whether `name` is one a table, column or view may have. */
export const isValidName = (name: string): boolean => NAME_RE.test(name);

export function checkName(what: string, name: string): void {
  if (!NAME_RE.test(name)) {
    throw new AsofError('ASOF_INVALID_ARGUMENT', `${what} name "${name}" must match ${NAME_RE.source}`, [{ field: 'name', reason: 'bad name' }]);
  }
}

export interface CompiledColumn {
  name: string;
  type: ColumnType;
  nullable: boolean;
  coerce: Coerce;
}

/**
 * A table definition compiled for validation. Immutable; a schema change
 * produces a new one.
 */
export class TableSchema {
  readonly columns: CompiledColumn[];
  readonly byName: Map<string, CompiledColumn>;
  readonly keyColumns: CompiledColumn[];
  readonly eventTimeColumn?: CompiledColumn;
  /** Compiled row functions; undefined when a column name cannot be compiled (then generic loops are used). */
  readonly rowCode?: RowCode;
  /**
   * Whether the key index (and a pk table's state) keys by number: a table with
   * one int32, int64 or timestamp key column. Values beyond 2^53 stay strings.
   */
  readonly numericKey: boolean;

  constructor(readonly def: TableDef) {
    this.columns = def.columns.map((c, i) => {
      const type = parseColumnType(c.name, c.type, i);
      return { name: c.name, type, nullable: c.nullable, coerce: coercer(type, c.name) };
    });
    this.byName = new Map(this.columns.map((c) => [c.name, c]));
    this.keyColumns = def.primaryKey.map((k) => this.byName.get(k)!);
    this.eventTimeColumn = def.eventTime ? this.byName.get(def.eventTime) : undefined;
    this.rowCode = rowCodeFor(this.columns);
    this.numericKey = this.keyColumns.length === 1 && ['int32', 'int64', 'timestamp'].includes(this.keyColumns[0].type.kind);
  }

  get name(): string {
    return this.def.name;
  }
  get kind(): TableKind {
    return this.def.kind;
  }
  get version(): number {
    return this.def.schemaVersions[this.def.schemaVersions.length - 1].version;
  }

  /**
   * Validates and canonicalises rows. `keysOnly` (deletes, keys) requires the key
   * columns and refuses any other name, as a row refuses a name that is no column. Returns every problem found, up to `maxIssues`;
   * the caller rejects the whole batch when there is any.
   */
  validate(rows: unknown[], opts: { keysOnly?: boolean; maxIssues?: number } = {}): { rows: Row[]; issues: FieldIssue[] } {
    const issues: FieldIssue[] = [];
    const max = opts.maxIssues ?? 20;
    const out: Row[] = new Array(rows.length);
    const cols = opts.keysOnly ? this.keyColumns : this.columns;
    const fast = opts.keysOnly ? undefined : this.rowCode?.validate;
    for (let r = 0; r < rows.length && issues.length < max; r++) {
      const input = rows[r];
      if (input === null || typeof input !== 'object' || Array.isArray(input)) {
        issues.push({ row: r, field: '', reason: `a row must be a JSON object, got ${describe(input)}` });
        continue;
      }
      const src = input as Record<string, unknown>;
      if (fast) {
        // The compiled check accepts only valid rows; any doubt falls through to the loop below, which names the problem.
        let row: Row | undefined;
        try {
          row = fast(src);
        } catch {
          row = undefined;
        }
        if (row) {
          out[r] = row;
          continue;
        }
      }
      const row: Row = {};
      let seen = 0;
      for (const c of cols) {
        const v = src[c.name];
        if (v === undefined || v === null) {
          if (v === null || v === undefined) {
            if (!c.nullable) issues.push({ row: r, field: c.name, reason: v === undefined ? 'missing value for a non-nullable column' : 'null in a non-nullable column' });
            else row[c.name] = null;
          }
          if (v !== undefined) seen++;
          continue;
        }
        seen++;
        try {
          row[c.name] = c.coerce(v);
        } catch (e) {
          if (e instanceof BadValue) issues.push({ row: r, field: e.path, reason: e.reason });
          else throw e;
        }
      }
      // Every name the row gives must be a column (of the key, for a delete or a key): one that is not is refused, never ignored.
      let n = 0;
      for (const k in src) if (src[k] !== undefined) n++;
      if (n > seen) {
        for (const k of Object.keys(src)) {
          if (src[k] === undefined) continue;
          if (!this.byName.has(k)) issues.push({ row: r, field: k, reason: `unknown column (table "${this.name}" has ${this.columns.map((c) => c.name).join(', ')})` });
          else if (opts.keysOnly && !this.def.primaryKey.includes(k)) issues.push({ row: r, field: k, reason: `not a key column: a delete (or a key) names only the key columns (${this.def.primaryKey.join(', ')})` });
        }
      }
      out[r] = row;
    }
    return { rows: out, issues };
  }

  /**
   * The canonical key string of a (canonical) row: the value itself for one key
   * column, a JSON array of the values' text for several. Null when a key column
   * holds null (only a log table's key columns may be nullable): such a record
   * has no key, as it has no entity (ViewEvaluator.entityOf). It is in no key's
   * records: not in the key index, so no `?key=` read, follow, audit replay or
   * cold-tier key read finds it. String(null) would file it under the key of the
   * string "null" (and `["1","null"]` under that of ["1", "null"]).
   */
  keyOf(row: Row): string | null {
    const kc = this.keyColumns;
    if (kc.length === 1) return keyPart(row[kc[0].name]);
    const parts: string[] = new Array(kc.length);
    for (let i = 0; i < kc.length; i++) {
      const p = keyPart(row[kc[i].name]);
      if (p === null) return null;
      parts[i] = p;
    }
    return JSON.stringify(parts);
  }

  /** The key index's key of a row: its number in a numeric index (see numericKey), else keyOf; null when it has no key (see keyOf). */
  indexKeyOf(row: Row): IndexKey | null {
    if (this.numericKey) {
      const v = row[this.keyColumns[0].name];
      return typeof v === 'number' ? v : keyPart(v);
    }
    return this.keyOf(row);
  }

  /** A canonical key string (keyOf, parseKey) → the key index's and pk state's key of it (see indexKeyOf). */
  indexKeyOfText(key: string): string | number {
    return this.numericKey ? numericIndexKey(key) : key;
  }

  /** `keyOf` from decoded columns: `keyValues` holds the key columns' values, in key order; null when it has no key (see keyOf). */
  keyAt(keyValues: unknown[][], i: number): string | null {
    if (keyValues.length === 1) return keyPart(keyValues[0][i]);
    const parts: string[] = new Array(keyValues.length);
    for (let j = 0; j < keyValues.length; j++) {
      const p = keyPart(keyValues[j][i]);
      if (p === null) return null;
      parts[j] = p;
    }
    return JSON.stringify(parts);
  }

  /**
   * A key as it arrives from outside (URL path segment, or an object naming the
   * key columns) → canonical key string. Throws 400 naming what is wrong.
   */
  parseKey(input: unknown): string {
    if (this.keyColumns.length === 0) throw new AsofError('ASOF_INVALID_ARGUMENT', `table "${this.name}" has no key columns`);
    let obj: Record<string, unknown>;
    if (typeof input === 'string' || typeof input === 'number') {
      if (this.keyColumns.length !== 1) {
        throw new AsofError('ASOF_INVALID_ARGUMENT', `table "${this.name}" has a composite key (${this.def.primaryKey.join(', ')}); pass it as an object`, [{ field: 'key', reason: 'composite key' }]);
      }
      const c = this.keyColumns[0];
      obj = { [c.name]: fromText(c.type, input) };
    } else if (input && typeof input === 'object' && !Array.isArray(input)) {
      obj = input as Record<string, unknown>;
    } else {
      throw new AsofError('ASOF_INVALID_ARGUMENT', 'a key must be a value or an object of key columns', [{ field: 'key', reason: 'bad key' }]);
    }
    const { rows, issues } = this.validate([obj], { keysOnly: true });
    if (issues.length) throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid key: ${issues[0].field}: ${issues[0].reason}`, issues.map(({ field, reason }) => ({ field: `key.${field}`, reason })));
    const key = this.keyOf(rows[0]);
    if (key === null) {
      // A record whose key is null is in no key's records (keyOf): a key with a null part would name none, silently.
      const nulls = this.keyColumns.filter((c) => rows[0][c.name] === null || rows[0][c.name] === undefined).map((c) => ({ field: `key.${c.name}`, reason: 'null: a record whose key is null belongs to no key' }));
      throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid key: ${nulls.map((n) => n.field.slice(4)).join(', ')} is null; a record whose key is null belongs to no key`, nulls);
    }
    return key;
  }

  /** Canonical row → its JSON form (timestamps RFC 3339, big int64 as strings). */
  rowToJson(row: Row): Row {
    const out: Row = {};
    for (const c of this.columns) {
      const v = row[c.name];
      out[c.name] = v === undefined || v === null ? null : toJsonValue(c.type, v);
    }
    return out;
  }
}

/** One key column's value as key text; null for null (no key: see TableSchema.keyOf). */
function keyPart(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'bigint' ? v.toString() : String(v);
}

/** Integer text: decimal digits, optionally negative. */
const INTEGER_TEXT = /^-?\d+$/;
/** Decimal number text: digits with an optional fraction and exponent. */
const DECIMAL_TEXT = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * Number text → the number, for an int32 (integer text only) or float column;
 * anything else stays text for the column's check to refuse. Not `Number(s)`,
 * which also reads `0x10`, `0b11`, `Infinity`, and `1e1` for an integer: a
 * value would be stored other than as it was written.
 */
export function numberFromText(kind: 'int32' | 'float32' | 'float64', text: string): number | string {
  return (kind === 'int32' ? INTEGER_TEXT : DECIMAL_TEXT).test(text) ? Number(text) : text;
}

/** Text (a URL path segment, a query value) → a value of the column's type, before coercion. */
export function fromText(type: ColumnType, text: string | number): unknown {
  if (typeof text === 'number') return text;
  switch (type.kind) {
    case 'int32':
    case 'float32':
    case 'float64':
      return numberFromText(type.kind, text);
    case 'int64':
      return text; // the int64 check reads decimal text exactly, beyond 2^53 too (coerce.ts)
    case 'bool':
      return text === 'true' ? true : text === 'false' ? false : text;
    default:
      return text;
  }
}

/**
 * toJsonValue's inverse: a value's JSON form, as an answer gave it, back to a
 * canonical value (timestamps epoch ms; int64 beyond 2^53 stays decimal text,
 * one of its canonical forms). Only for values asof itself rendered: nothing is checked.
 */
export function fromJsonValue(type: ColumnType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (type.kind) {
    case 'timestamp':
      // Date.parse, not parseTimestamp: toISOString writes years past 9999 as +YYYYYY, which RFC 3339 has no room for.
      return Date.parse(v as string);
    case 'list':
      return (v as unknown[]).map((x) => fromJsonValue(type.item, x));
    case 'struct': {
      const o = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const f of type.fields) out[f.name] = fromJsonValue(f.type, o[f.name]);
      return out;
    }
    default:
      return v;
  }
}

export function toJsonValue(type: ColumnType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (type.kind) {
    case 'timestamp':
      return formatTimestamp(v as number);
    case 'int64':
      return typeof v === 'bigint' ? (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v;
    case 'list':
      return (v as unknown[]).map((x) => toJsonValue(type.item, x));
    case 'struct': {
      const o = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const f of type.fields) out[f.name] = toJsonValue(f.type, o[f.name]);
      return out;
    }
    case 'vector':
      return Array.from(v as ArrayLike<number>);
    default:
      return v;
  }
}
