/**
 * File import: a CSV, NDJSON or Parquet file into a table, through the same
 * validation and write path as `POST /tables/{table}/rows`.
 *
 * Two passes over the file: the first validates every row (nothing is written
 * if any row is bad: the answer names up to 20 of them), the second writes in
 * batches of at most `maxBatchRows` rows, each one durable group commit. A
 * storage failure during the second pass can leave the batches before it
 * written; the answer's offsets say what was.
 */
import { AsofError, type FieldIssue } from '../errors.js';
import type { Engine, Token } from '../engine/engine.js';
import { parseTimestamp, type ColumnDef, type Row, type TableSchema } from '../engine/schema.js';
import { formatType, type ColumnType } from '../engine/types.js';
import type { TableKind } from '../engine/schema.js';
import type { IngestService } from '../ingest/ingest.js';
import { openFile, type ColumnBatch, type FileColumn, type FileFormat } from './files.js';

export interface ImportResult {
  table: string;
  /** Rows read from the file. */
  rows: number;
  /** Changelog records written (an update writes two). */
  count: number;
  firstOffset: number | null;
  lastOffset: number | null;
  token: Token;
}

export interface ImportOptions {
  op?: 'upsert' | 'delete';
  maxBatchRows: number;
  onProgress?: (p: { rows: number; total: number }) => void;
}

const MAX_ISSUES = 20;

export async function importFile(engine: Engine, ingest: IngestService, tableName: string, path: string, format: FileFormat, opts: ImportOptions): Promise<ImportResult> {
  const table = engine.table(tableName);
  // CSV is text: each cell is read as text and turned into the column's type here, not guessed by the reader.
  const file = await openFile(path, format, { text: format === 'csv' ? 'all' : undefined });
  try {
    const schema = table.schema;
    const op = opts.op ?? 'upsert';
    const unknown = file.columns.filter((c) => !schema.byName.has(c.name));
    if (unknown.length) {
      const reason = `unknown column (table "${tableName}" has ${schema.columns.map((c) => c.name).join(', ')})`;
      throw new AsofError('ASOF_INVALID_ROW', `the file names column "${unknown[0].name}": ${reason}; nothing was imported`, unknown.map((c) => ({ field: c.name, reason })));
    }
    const issues: FieldIssue[] = [];
    let row = 0;
    for await (const b of file.batches()) {
      const rows = toRows(b, file.columns, schema, format === 'csv');
      const r = schema.validate(rows, { keysOnly: op === 'delete', maxIssues: MAX_ISSUES - issues.length });
      for (const i of r.issues) issues.push({ ...i, row: (i.row ?? 0) + row });
      row += b.n;
      if (issues.length >= MAX_ISSUES) break;
    }
    if (issues.length) {
      const first = issues[0];
      throw new AsofError('ASOF_INVALID_ROW', `row ${first.row}: ${first.field ? `column "${first.field}": ` : ''}${first.reason}; nothing was imported`, issues);
    }
    let pending: Row[] = [];
    let written = 0;
    const out: ImportResult = { table: tableName, rows: file.rows, count: 0, firstOffset: null, lastOffset: null, token: { [tableName]: table.endOffset - 1 } };
    const flush = async (): Promise<void> => {
      if (!pending.length) return;
      const r = await ingest.write(tableName, pending, op);
      out.count += r.count;
      out.firstOffset ??= r.firstOffset;
      out.lastOffset = r.lastOffset ?? out.lastOffset;
      out.token = r.token;
      written += pending.length;
      pending = [];
      opts.onProgress?.({ rows: written, total: file.rows });
    };
    for await (const b of file.batches()) {
      for (const r of toRows(b, file.columns, schema, format === 'csv')) pending.push(r);
      if (pending.length >= opts.maxBatchRows) {
        const rest = pending.splice(opts.maxBatchRows);
        await flush();
        pending = rest;
      }
    }
    await flush();
    return out;
  } finally {
    await file.close();
  }
}

function toRows(b: ColumnBatch, columns: FileColumn[], schema: TableSchema, text: boolean): Row[] {
  const rows: Row[] = new Array(b.n);
  const types = columns.map((c) => schema.byName.get(c.name)?.type);
  for (let i = 0; i < b.n; i++) {
    const row: Row = {};
    for (let k = 0; k < columns.length; k++) {
      const v = b.columns[k][i];
      const t = types[k];
      row[columns[k].name] = text && t && typeof v === 'string' ? fromCsvText(t, v) : v;
    }
    rows[i] = row;
  }
  return rows;
}

/**
 * A CSV cell → a value for a column of type `t`, before validation: empty is
 * null; numbers and booleans parsed; timestamps as RFC 3339, epoch ms, or
 * `YYYY-MM-DD[ HH:MM:SS[.fff]]` without a zone, taken as UTC; nested types as
 * JSON. Text that does not parse is passed on for validation to reject.
 */
export function fromCsvText(t: ColumnType, s: string): unknown {
  if (s === '' && t.kind !== 'string') return null;
  switch (t.kind) {
    case 'bool': {
      const l = s.trim().toLowerCase();
      return l === 'true' || l === '1' ? true : l === 'false' || l === '0' ? false : s;
    }
    case 'int32':
    case 'float32':
    case 'float64':
      return s.trim() !== '' && !Number.isNaN(Number(s)) ? Number(s) : s;
    case 'int64':
      return s.trim();
    case 'timestamp': {
      const naive = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}:\d{2}(?:\.\d+)?))?$/.exec(s.trim());
      if (naive) return Date.parse(`${naive[1]}T${naive[2] ?? '00:00:00'}Z`);
      return parseTimestamp(s.trim()) ?? s;
    }
    case 'string':
      return s;
    default:
      try {
        return JSON.parse(s);
      } catch {
        return s;
      }
  }
}

/**
 * A table definition for a file's columns (`asof ingest --create`): types as
 * the file states them (CSV: as DuckDB infers them), nullable except the key
 * and event-time columns.
 */
export function tableDefinitionFor(columns: FileColumn[], opts: { kind: TableKind; eventTime?: string; primaryKey?: string[] }): { kind: TableKind; columns: ColumnDef[]; eventTime?: string; primaryKey?: string[] } {
  const required = new Set([...(opts.primaryKey ?? []), ...(opts.eventTime ? [opts.eventTime] : [])]);
  return {
    kind: opts.kind,
    columns: columns.map((c) => ({ name: c.name, type: formatType(c.type), nullable: !required.has(c.name) })),
    ...(opts.eventTime ? { eventTime: opts.eventTime } : {}),
    ...(opts.primaryKey?.length ? { primaryKey: opts.primaryKey } : {}),
  };
}
