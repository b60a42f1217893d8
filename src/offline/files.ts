/**
 * Tabular files in: CSV and Parquet through DuckDB (its readers are robust and
 * need no network), NDJSON line by line (ndjson.ts). Each is read as a stream of columnar
 * batches of plain values: timestamps as epoch ms (UTC; a timestamp without a
 * zone is taken as UTC), integers as numbers (bigint beyond 2^53), nested
 * values as JSON values. Checking values against a table is the caller's job.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { AsofError } from '../errors.js';
import { parseJsonText } from '../engine/json-safety.js';
import type { ColumnType } from '../engine/types.js';
import { csvReadError, csvSource, readCsvHeader, withoutPaths } from './csv.js';
import { ndjsonObjects, ndjsonRows } from './ndjson.js';

export const FILE_FORMATS = ['csv', 'ndjson', 'parquet'] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];

export interface FileColumn {
  name: string;
  type: ColumnType;
}

/** Columnar values of up to a few thousand rows. */
export interface ColumnBatch {
  n: number;
  columns: unknown[][];
  /**
   * With `jsonTexts`, the JSON text values were parsed from, for the check of
   * numbers a float64 bends (ingest/bent-columns.ts: JSON.parse reads
   * 12345678901234567890 as 12345678901234567000 and 1.0000000000000000001
   * as 1, and only the text shows it).
   * NDJSON: each row's line. Parquet: per column read as JSON (nested types,
   * JSON), each value's text; undefined for other columns. CSV cells are text already.
   */
  rowTexts?: string[];
  cellTexts?: ((string | null)[] | undefined)[];
}

export interface TabularFile {
  columns: FileColumn[];
  rows: number;
  /** Batches in file order; may be iterated more than once. */
  batches(): AsyncIterable<ColumnBatch>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** CSV: read these columns as text (keys whose leading zeros matter), or every column ('all'). */
  text?: string[] | 'all';
  /**
   * NDJSON: the only keys a row may have (a table's columns). The first other
   * key is a 400 naming its row, read no further: without it, the reader would
   * keep an entry for every distinct key of the file before anyone checks them.
   */
  columns?: readonly string[];
  /** NDJSON: the longest line (one row), bytes; a longer one is a 413 naming its row (ndjson.ts). */
  maxLineBytes?: number;
  /** Keep the JSON text values were parsed from in each batch (ColumnBatch rowTexts, cellTexts). */
  jsonTexts?: boolean;
}

/**
 * Most distinct keys an NDJSON file (or inline JSON entity rows) may name when
 * no `columns` are given: each is kept while the file is read and becomes a
 * column of every batch (4,096 cells each), so this bounds what one file can
 * make the reader hold. Far more than the label columns of any training set.
 */
export const MAX_INFERRED_COLUMNS = 1000;

/** `x.parquet` → parquet, `x.csv` → csv, `x.ndjson` / `x.jsonl` → ndjson. */
export function formatOfPath(path: string): FileFormat | undefined {
  const ext = path.toLowerCase().split('.').pop();
  if (ext === 'parquet' || ext === 'pq') return 'parquet';
  if (ext === 'csv') return 'csv';
  if (ext === 'ndjson' || ext === 'jsonl') return 'ndjson';
  return undefined;
}

export async function openFile(path: string, format: FileFormat, opts: OpenOptions = {}): Promise<TabularFile> {
  return format === 'ndjson' ? openNdjson(path, opts.columns, opts.maxLineBytes, opts.jsonTexts) : openWithDuckDb(path, format, opts);
}

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`;
export const sqlIdent = (s: string): string => `"${s.replaceAll('"', '""')}"`;

/** A DuckDB type name → how we read it (a SQL expression over the column) and the column type it becomes. */
function readAs(name: string, duckType: string): { expr: string; type: ColumnType; json?: boolean } {
  const c = sqlIdent(name);
  const t = duckType.toUpperCase();
  if (t === 'BOOLEAN') return { expr: c, type: { kind: 'bool' } };
  if (['TINYINT', 'SMALLINT', 'INTEGER', 'UTINYINT', 'USMALLINT'].includes(t)) return { expr: c, type: { kind: 'int32' } };
  if (['BIGINT', 'UINTEGER', 'UBIGINT', 'HUGEINT', 'UHUGEINT'].includes(t)) return { expr: t === 'BIGINT' ? c : `${c}::VARCHAR`, type: { kind: 'int64' } };
  if (t === 'FLOAT') return { expr: c, type: { kind: 'float32' } };
  if (t === 'DOUBLE' || t.startsWith('DECIMAL')) return { expr: `${c}::DOUBLE`, type: { kind: 'float64' } };
  if (t === 'VARCHAR') return { expr: c, type: { kind: 'string' } };
  if (t === 'DATE' || t.startsWith('TIMESTAMP')) return { expr: epochMs(c, t), type: { kind: 'timestamp' } };
  if (t.endsWith(']') || t.startsWith('STRUCT') || t.startsWith('MAP') || t === 'JSON') return { expr: `to_json(${c})::VARCHAR`, type: { kind: 'json' }, json: true };
  return { expr: `${c}::VARCHAR`, type: { kind: 'string' } };
}

/** What `epochMs` reads ±infinity as (epoch_ms gives null): int64's ends, far beyond any finite DuckDB time; `plain` turns them into text. */
const INFINITE_MS = 9223372036854775807n;

/**
 * A DuckDB DATE or TIMESTAMP* column (SQL, type name upper-cased) → epoch ms
 * as BIGINT, rounded down as every other path rounds a finer time (RFC 3339
 * fractions, Arrow µs and ns): epoch_ms alone rounds toward 1970, so
 * 1969-12-31 23:59:59.9995 would be 0, a later instant than the one sent.
 * ±infinity become ±INFINITE_MS, which the validator refuses (epoch_ms alone
 * gives null: a value that is not there, or a non-null column's refusal
 * naming the wrong cause).
 */
function epochMs(c: string, t: string): string {
  const ts = t === 'DATE' ? `${c}::TIMESTAMP` : c;
  // Below a millisecond: µs for TIMESTAMP (and WITH TIME ZONE), ns for TIMESTAMP_NS; the others have none.
  const below = t === 'TIMESTAMP_NS' ? `(epoch_ns(${ts}) % 1000000 < 0)` : t === 'TIMESTAMP' || t === 'TIMESTAMP WITH TIME ZONE' ? `(epoch_us(${ts}) % 1000 < 0)` : undefined;
  const finite = below ? `epoch_ms(${ts}) - ${below}::BIGINT` : `epoch_ms(${ts})`;
  return `CASE WHEN isinf(${c}) THEN (CASE WHEN ${c} > '1970-01-01' THEN ${INFINITE_MS} ELSE ${-INFINITE_MS - 1n} END) ELSE ${finite} END`;
}

async function openWithDuckDb(path: string, format: 'csv' | 'parquet', opts: OpenOptions): Promise<TabularFile> {
  // Loaded on first use: DuckDB's native library adds about 30 MB to the RSS of every process that imports it, and serving never needs it.
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:', { threads: '2', memory_limit: '512MB' });
  let conn: DuckDBConnection | undefined;
  try {
    conn = await db.connect();
    let source: string;
    let header: string[] | undefined;
    if (format === 'parquet') source = `read_parquet(${sqlString(path)})`;
    else {
      header = await readCsvHeader(path);
      const strict = csvSource(path, header, 'all');
      if (opts.text === 'all') source = strict;
      else {
        // The whole file is checked against the stated dialect first: DuckDB's type sniffing runs only on a well-formed file.
        await conn.runAndReadAll(`SELECT count(*) FROM ${strict}`);
        source = csvSource(path, header, opts.text ?? []);
      }
    }
    const described = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)).getRowObjectsJS();
    const cols = described.map((r) => ({ name: String(r.column_name), ...readAs(String(r.column_name), String(r.column_type)) }));
    if (header && cols.map((c) => c.name).join('\0') !== header.join('\0')) throw new AsofError('ASOF_INVALID_ARGUMENT', 'cannot read the csv file as its header names the columns', [{ field: 'file', reason: 'header mismatch' }]);
    const rows = Number((await conn.runAndReadAll(`SELECT count(*) AS n FROM ${source}`)).getRowObjectsJS()[0].n);
    const sql = `SELECT ${cols.map((c) => c.expr).join(', ')} FROM ${source}`;
    const c = conn;
    return {
      columns: cols.map(({ name, type }) => ({ name, type })),
      rows,
      async *batches() {
        let result;
        try {
          result = await c.stream(sql);
        } catch (e) {
          throw readError(e, path, format);
        }
        let ended = false;
        try {
          for (;;) {
            let chunk;
            try {
              chunk = await result.fetchChunk();
            } catch (e) {
              throw readError(e, path, format);
            }
            if (!chunk || chunk.rowCount === 0) break;
            const cellTexts = opts.jsonTexts ? cols.map(() => undefined as (string | null)[] | undefined) : undefined;
            const columns = cols.map((col, i) => {
              const vals = chunk.getColumnValues(i) as unknown[];
              if (cellTexts && col.json) cellTexts[i] = vals.slice() as (string | null)[];
              for (let k = 0; k < vals.length; k++) vals[k] = plain(vals[k], col.type.kind, col.json);
              return vals;
            });
            yield { n: chunk.rowCount, columns, ...(cellTexts ? { cellTexts } : {}) };
          }
          ended = true;
        } finally {
          // Stopped before the end (a bad row, a failed write, a client gone): the scan still holds the file open.
          if (!ended) await endQuery(c);
        }
      },
      async close() {
        await endQuery(c);
        c.closeSync();
        db.closeSync();
      },
    };
  } catch (e) {
    conn?.closeSync();
    db.closeSync();
    throw readError(e, path, format);
  }
}

/**
 * Ends the query a stream result of `c` is still reading, releasing its scan
 * and so the file (an upload deleted from the scratch folder keeps its disk
 * space while open). Neither closing the connection nor the database does:
 * the unfinished result holds both until it is garbage collected, and the
 * bindings have no close for a result. The next query on the connection does.
 */
async function endQuery(c: DuckDBConnection): Promise<void> {
  try {
    await c.run('SELECT 1');
  } catch {
    /* the connection is gone already: so is its query */
  }
}

/** A reader's error → 400; the server's path never appears in it. */
function readError(e: unknown, path: string, format: 'csv' | 'parquet'): AsofError {
  if (e instanceof AsofError) return e;
  if (format === 'csv') return csvReadError(e, path);
  const first = (e as Error).message.split('\n')[0];
  const reason = /magic bytes/i.test(first) ? 'it is not a Parquet file' : withoutPaths(first, path).replace(/^Invalid Input Error: /, '');
  return new AsofError('ASOF_INVALID_ARGUMENT', `cannot read the ${format} file: ${reason}`, [{ field: 'file', reason }]);
}

function plain(v: unknown, kind: ColumnType['kind'], json?: boolean): unknown {
  if (v === null || v === undefined) return null;
  if (kind === 'timestamp' && typeof v === 'bigint' && (v === INFINITE_MS || v === -INFINITE_MS - 1n)) return v > 0n ? 'infinity' : '-infinity';
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (kind === 'int64' && typeof v === 'string') {
    const b = BigInt(v);
    return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
  }
  if (json && typeof v === 'string') return parseJsonText(v, { what: 'a nested value' });
  return v;
}

/** NDJSON: a first pass counts rows and infers column types, the second yields batches. */
async function openNdjson(path: string, allowed?: readonly string[], maxLineBytes?: number, jsonTexts?: boolean): Promise<TabularFile> {
  const inference = new TypeInference(allowed);
  let rows = 0;
  for await (const obj of ndjsonObjects(path, maxLineBytes)) inference.add(obj, rows++);
  const columns = inference.columns();
  return {
    columns,
    rows,
    async *batches() {
      let batch: unknown[][] = columns.map(() => []);
      let texts: string[] = [];
      let n = 0;
      const done = (): ColumnBatch => (jsonTexts ? { n, columns: batch, rowTexts: texts } : { n, columns: batch });
      for await (const { row: obj, text } of ndjsonRows(path, maxLineBytes)) {
        for (let c = 0; c < columns.length; c++) batch[c].push(obj[columns[c].name] ?? null);
        if (jsonTexts) texts.push(text);
        if (++n === 4096) {
          yield done();
          batch = columns.map(() => []);
          texts = [];
          n = 0;
        }
      }
      if (n) yield done();
    },
    async close() {},
  };
}

/**
 * Column types of JSON rows: columns in order of first appearance; all
 * booleans → bool, all safe integers → int64, any other numbers → float64,
 * all strings → string, anything mixed or nested → json, only nulls → string.
 * With `allowed`, a key not in it is a 400 at the row that names it; without,
 * a key beyond the first MAX_INFERRED_COLUMNS distinct ones is.
 */
export class TypeInference {
  private readonly seen = new Map<string, Set<string>>();
  private readonly allowed?: ReadonlySet<string>;

  constructor(allowed?: readonly string[]) {
    if (allowed) this.allowed = new Set(allowed);
  }

  /** `index`: the row's position in the input, for the error naming it. */
  add(row: Record<string, unknown>, index: number): void {
    for (const k in row) {
      const v = row[k];
      let kinds = this.seen.get(k);
      if (!kinds) {
        this.admit(k, index);
        this.seen.set(k, (kinds = new Set()));
      }
      if (v === null || v === undefined) continue;
      if (typeof v === 'number') kinds.add(Number.isSafeInteger(v) ? 'int' : 'float');
      else if (typeof v === 'bigint') kinds.add('int');
      else if (typeof v === 'boolean') kinds.add('bool');
      else if (typeof v === 'string') kinds.add('string');
      else kinds.add('json');
    }
  }

  private admit(key: string, row: number): void {
    let reason: string | undefined;
    if (this.allowed) {
      if (!this.allowed.has(key)) reason = `unknown column (the columns are ${[...this.allowed].join(', ')})`;
    } else if (this.seen.size >= MAX_INFERRED_COLUMNS) {
      reason = `a column beyond the first ${MAX_INFERRED_COLUMNS} distinct ones: the rows may name at most ${MAX_INFERRED_COLUMNS} columns`;
    }
    if (reason) throw new AsofError('ASOF_INVALID_ROW', `row ${row}: column "${key}": ${reason}`, [{ row, field: key, reason }]);
  }

  columns(): FileColumn[] {
    return [...this.seen].map(([name, kinds]) => ({ name, type: inferred(kinds) }));
  }
}

function inferred(kinds: Set<string>): ColumnType {
  if (kinds.size === 0) return { kind: 'string' };
  if (kinds.size === 1) {
    const [k] = kinds;
    if (k === 'int') return { kind: 'int64' };
    if (k === 'float') return { kind: 'float64' };
    if (k === 'bool') return { kind: 'bool' };
    if (k === 'string') return { kind: 'string' };
  }
  if (kinds.size === 2 && kinds.has('int') && kinds.has('float')) return { kind: 'float64' };
  return { kind: 'json' };
}
