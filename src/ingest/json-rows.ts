/**
 * A JSON write body parsed and validated off the main thread (parse-pool.ts),
 * and its rows handed back as columns.
 *
 * Why: `JSON.parse` of a 1,000-row body is a third of the main thread's time
 * under bench:ingest's load, and it is the same work the reference does; the
 * rows it makes cannot cross threads cheaply (structured clone of the row
 * objects cost more than parsing them again). Columns can: one Float64Array
 * per numeric column, one string and its ends per text column. Rebuilding
 * the rows from them on the main thread takes about a sixth of parsing them
 * there (0.06-0.08 against 0.44 ms per 1,000 rows of bench:ingest's 5-column
 * rows, in one process, 2026-12-07).
 *
 * The thread only ever answers for a body the main thread would accept as it
 * is: anything else (not UTF-8, not JSON, a rule of json-safety.ts the text
 * might break, a bad row, a number literal a float64 bends where an int32,
 * int64 or timestamp goes, a delete, a value with no column form) answers
 * `undefined`, and the main thread parses that body itself, so every error
 * keeps its exact wording and shape. The rows rebuilt are the validator's
 * canonical rows, value for value (one object literal per table, as the
 * validator builds them).
 */
import { isUtf8 } from 'node:buffer';
import { TableSchema, type Row, type TableDef } from '../engine/schema.js';
import { ownString } from '../util/strings.js';
import { mayBendBytes, noteRowsText } from '../engine/json-safety.js';
import { checkBentNumbers, holdsExactNumbers } from './bent-columns.js';

/** One column's values, in the form that crosses threads. */
export type ColumnData =
  /** Numbers (int32, safe int64, float32, float64, timestamp): NaN is null (validated numbers are never NaN). */
  | { kind: 'number'; values: Float64Array }
  /** Booleans: 0 false, 1 true, 2 null. */
  | { kind: 'bool'; values: Uint8Array }
  /** Strings, joined; `ends[i]` is where row i's ends; `nulls` marks nulls (absent when there are none). */
  | { kind: 'string'; text: string; ends: Uint32Array; nulls?: Uint8Array };

export interface ParsedRows {
  /** Rows in the body. */
  count: number;
  columns: ColumnData[];
  /** The body's own `op`, when it named one (only "upsert" is parsed here): the route checks it against the query's. */
  op?: 'upsert';
}

const NUMBER_KINDS = new Set(['int32', 'int64', 'float32', 'float64', 'timestamp']);

/** Whether a table's rows can cross as columns: every column a scalar this module carries, and compiled row code to rebuild them. */
export function columnar(schema: TableSchema): boolean {
  return schema.rowCode !== undefined && schema.columns.every((c) => NUMBER_KINDS.has(c.type.kind) || c.type.kind === 'bool' || c.type.kind === 'string');
}

/**
 * The thread's work for one body: its rows validated against `def` and cut
 * into columns, or undefined when the main thread must parse it (see the
 * header). `maxRows` bounds the rows a body may carry (the main thread answers 413).
 */
export function parseWriteBody(bytes: Uint8Array, schema: TableSchema, maxRows: number): ParsedRows | undefined {
  if (!columnar(schema) || !isUtf8(bytes)) return undefined;
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  // json-safety.ts's rules the row validator does not check itself (a `__proto__` key, an escaped surrogate): left to the main thread.
  if (text.includes('__proto__') || text.includes('\\ud') || text.includes('\\uD')) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  // A key a write body does not take (a misspelled `Op`) is the main thread's 400 to name.
  for (const k in body) if (k !== 'rows' && k !== 'op') return undefined;
  const { rows, op } = body as { rows?: unknown; op?: unknown };
  // Deletes validate only the key columns: the main thread's path.
  if (!Array.isArray(rows) || rows.length > maxRows || (op !== undefined && op !== 'upsert')) return undefined;
  for (let i = 0; i < rows.length; i++) if (rows[i] === null || typeof rows[i] !== 'object' || Array.isArray(rows[i])) return undefined;
  const { rows: valid, issues } = schema.validate(rows, { maxIssues: 1 });
  if (issues.length > 0) return undefined;
  // A number a float64 bent where an int32, int64 or timestamp goes (`1.0000000000000000001`): the main thread refuses it.
  if (holdsExactNumbers(schema) && mayBendBytes(bytes)) {
    noteRowsText(rows, { text });
    try {
      checkBentNumbers(schema, rows);
    } catch {
      return undefined;
    }
  }
  const parsed = toColumns(schema, valid);
  if (parsed && op === 'upsert') parsed.op = op;
  return parsed;
}

/** Canonical rows → their columns; undefined when a value has no column form here (an int64 beyond 2^53, held as a bigint). */
export function toColumns(schema: TableSchema, rows: Row[]): ParsedRows | undefined {
  const n = rows.length;
  const gathered = schema.rowCode!.gather(rows);
  const columns: ColumnData[] = [];
  for (let c = 0; c < schema.columns.length; c++) {
    const kind = schema.columns[c].type.kind;
    const vs = gathered[c];
    if (kind === 'bool') {
      const values = new Uint8Array(n);
      for (let i = 0; i < n; i++) values[i] = vs[i] === null ? 2 : vs[i] ? 1 : 0;
      columns.push({ kind: 'bool', values });
    } else if (kind === 'string') {
      const ends = new Uint32Array(n);
      let nulls: Uint8Array | undefined;
      let end = 0;
      for (let i = 0; i < n; i++) {
        const v = vs[i] as string | null;
        if (v === null) {
          nulls ??= new Uint8Array(n);
          nulls[i] = 1;
          vs[i] = '';
        } else end += v.length;
        ends[i] = end;
      }
      columns.push({ kind: 'string', text: (vs as string[]).join(''), ends, nulls });
    } else {
      const values = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = vs[i];
        if (v === null) values[i] = NaN;
        else if (typeof v === 'number') values[i] = v;
        else return undefined;
      }
      columns.push({ kind: 'number', values });
    }
  }
  return { count: n, columns };
}

/** The buffers of parsed columns, to transfer rather than copy. */
export function transferList(p: ParsedRows): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const c of p.columns) {
    if (c.kind === 'string') {
      out.push(c.ends.buffer as ArrayBuffer);
      if (c.nulls) out.push(c.nulls.buffer as ArrayBuffer);
    } else out.push(c.values.buffer as ArrayBuffer);
  }
  return out;
}

/** Columns → the canonical rows (the validator's object shape). */
export function fromColumns(schema: TableSchema, p: ParsedRows): Row[] {
  const n = p.count;
  const arrays = p.columns.map((c): unknown[] => {
    const a = new Array<unknown>(n);
    if (c.kind === 'number') {
      const v = c.values;
      for (let i = 0; i < n; i++) a[i] = v[i] === v[i] ? v[i] : null;
    } else if (c.kind === 'bool') {
      const v = c.values;
      for (let i = 0; i < n; i++) a[i] = v[i] === 2 ? null : v[i] === 1;
    } else {
      const { text, ends, nulls } = c;
      let long: LongValues | undefined;
      let start = 0;
      for (let i = 0; i < n; i++) {
        const end = ends[i];
        a[i] = nulls?.[i] ? null : end - start < 13 ? text.slice(start, end) : (long ??= longValues(text))(start, end);
        start = end;
      }
    }
    return a;
  });
  return schema.rowCode!.build(arrays, n);
}

/** Cuts values of 13 characters or more out of a column's text, each a string of its own. */
type LongValues = (start: number, end: number) => string;

/**
 * V8 makes a slice of 13 characters or more a view of the text it was cut
 * from (a sliced string), which keeps the whole text alive as long as the
 * slice lives: the column's text holds every row's value of the body, so a pk
 * table keeping one row of a 1,000-row body kept the others' values too (200
 * bodies of 120-character values, all but one row a body overwritten: 26 MB
 * more heap than the same rows parsed on the main thread). So long values are
 * copied out: decoded from the text's bytes when it is ASCII (as JSON.parse
 * would make them; arrow-decode.ts does the same), else by `ownString`.
 * Shorter slices are copies already.
 */
function longValues(text: string): LongValues {
  if (Buffer.byteLength(text, 'utf8') !== text.length) return (start, end) => ownString(text.slice(start, end));
  const bytes = Buffer.from(text, 'latin1');
  return (start, end) => bytes.toString('latin1', start, end);
}

/** Table schemas a thread has compiled, by table and version: a definition crosses once per thread and version. */
export class SchemaCache {
  private readonly byKey = new Map<string, TableSchema>();

  static keyOf(def: TableDef): string {
    return `${def.name}@${def.createdAt}@${def.schemaVersions[def.schemaVersions.length - 1].version}`;
  }

  get(key: string): TableSchema | undefined {
    return this.byKey.get(key);
  }

  set(key: string, def: TableDef): TableSchema {
    // Old versions are not asked for again once a table changes: keep the cache small.
    if (this.byKey.size >= 256) this.byKey.delete(this.byKey.keys().next().value!);
    const s = new TableSchema(def);
    this.byKey.set(key, s);
    return s;
  }
}
