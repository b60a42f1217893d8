/**
 * File import: a CSV, NDJSON or Parquet file into a table, through the same
 * validation and write path as `POST /tables/{table}/rows`.
 *
 * Two passes over the file: the first validates every row (nothing is written
 * if any row is bad: the answer names up to 20 of them), the second writes in
 * batches of at most `maxBatchRows` rows, each one durable group commit. A
 * failure during the second pass (a failed fdatasync, say) leaves the batches
 * before it written: one commit per batch is what keeps an import of any size
 * within the write path's limits, so an import is not atomic. The error then
 * says which rows and offsets were written (`details.written`) and from which
 * row the rest was not. With an Idempotency-Key the key itself is recorded
 * before the first batch (so it answers one request: this import), and each
 * batch is written under a key of its own derived from it, so a retry of the
 * same import with the same key finds the batches already committed and writes
 * only the rest.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { AsofError, type FieldIssue } from '../errors.js';
import type { Engine, Token } from '../engine/engine.js';
import { checkOp } from '../engine/table.js';
import { numberFromText, parseTimestamp, type ColumnDef, type Row, type TableSchema } from '../engine/schema.js';
import { parseRfc3339 } from '../engine/time.js';
import { formatType, type ColumnType } from '../engine/types.js';
import type { TableKind } from '../engine/schema.js';
import { bentNumbers, mayBend, type BentNumber } from '../engine/json-safety.js';
import { bentIssue, countsIn, holdsExactNumbers, holdsExactPart } from '../ingest/bent-columns.js';
import { hashOf, keyConflict, MAX_IDEMPOTENCY_KEY, type IngestResult, type IngestService } from '../ingest/ingest.js';
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
  /** NDJSON: the longest line (one row), bytes: ASOF_MAX_BODY_BYTES, the largest row a write request takes. */
  maxLineBytes?: number;
  /** The request's Idempotency-Key: each batch is written under a key derived from it (see the top of this file). */
  idempotencyKey?: string;
  onProgress?: (p: { rows: number; total: number }) => void;
}

const MAX_ISSUES = 20;

export async function importFile(engine: Engine, ingest: IngestService, tableName: string, path: string, format: FileFormat, opts: ImportOptions): Promise<ImportResult> {
  const table = engine.table(tableName);
  const key = opts.idempotencyKey;
  if (key !== undefined && key.length > MAX_IDEMPOTENCY_KEY) {
    throw new AsofError('ASOF_INVALID_ARGUMENT', `an Idempotency-Key may have at most ${MAX_IDEMPOTENCY_KEY} characters, got ${key.length}`, [{ field: 'Idempotency-Key', reason: `longer than ${MAX_IDEMPOTENCY_KEY} characters` }]);
  }
  // CSV is text: each cell is read as text and turned into the column's type here, not guessed by the reader.
  const schema = table.schema;
  // A table with an int32, int64, timestamp or json part keeps the JSON text of each batch, for the bent-number check (bentIssues).
  const exact = holdsExactNumbers(schema);
  const file = await openFile(path, format, { text: format === 'csv' ? 'all' : undefined, columns: schema.columns.map((c) => c.name), maxLineBytes: opts.maxLineBytes, jsonTexts: exact });
  try {
    const op = opts.op ?? 'upsert';
    checkOp(schema, op);
    const unknown = file.columns.filter((c) => !schema.byName.has(c.name));
    if (unknown.length) {
      const reason = `unknown column (table "${tableName}" has ${schema.columns.map((c) => c.name).join(', ')})`;
      throw new AsofError('ASOF_INVALID_ROW', `the file names column "${unknown[0].name}": ${reason}; nothing was imported`, unknown.map((c) => ({ field: c.name, reason })));
    }
    // A file's rows carry each of its columns (null where a row has none): a delete file names the key columns alone, as a delete row does.
    const notKey = op === 'delete' ? file.columns.filter((c) => !schema.def.primaryKey.includes(c.name)) : [];
    if (notKey.length) {
      const reason = `not a key column: a delete names only the key columns (${schema.def.primaryKey.join(', ')})`;
      throw new AsofError('ASOF_INVALID_ROW', `the file names column "${notKey[0].name}": ${reason}; nothing was imported`, notKey.map((c) => ({ field: c.name, reason })));
    }
    const issues: FieldIssue[] = [];
    let row = 0;
    for await (const b of file.batches()) {
      const rows = toRows(b, file.columns, schema, format === 'csv');
      const r = schema.validate(rows, { keysOnly: op === 'delete', maxIssues: MAX_ISSUES - issues.length });
      const found: FieldIssue[] = r.issues.map((i) => ({ ...i, row: (i.row ?? 0) + row }));
      if (exact) {
        // A number a float64 bent where the column takes no nearest value (ingest/bent-columns.ts), unless the validator named that field of that row already.
        const named = new Set(found.map((i) => `${i.row}\0${i.field}`));
        for (const i of bentIssues(b, file.columns, schema, format === 'csv', row)) if (!named.has(`${i.row}\0${i.field}`)) found.push(i);
      }
      // In row order with the validator's: the answer's first issue is the file's first bad row.
      issues.push(...found.sort((x, y) => (x.row ?? 0) - (y.row ?? 0)).slice(0, MAX_ISSUES - issues.length));
      row += b.n;
      if (issues.length >= MAX_ISSUES) break;
    }
    if (issues.length) {
      const first = issues[0];
      throw new AsofError('ASOF_INVALID_ROW', `row ${first.row}: ${first.field ? `column "${first.field}": ` : ''}${first.reason}; nothing was imported`, issues);
    }
    // A keyed import is identified by its op, format, batch size and the file's bytes: the same key with another file is a 409 (at its first batch).
    // Batches also within the write path's cell limit: a wide table takes fewer rows per commit.
    const batchRows = Math.min(opts.maxBatchRows, ingest.maxRowsFor(schema));
    const fingerprint = key ? hashOf(`${op}\n${format}\n${batchRows}\n${await fileHash(path)}`) : undefined;
    // The client's key itself is recorded first (in a frame of no records), as any keyed request's is: a POST /rows
    // with it, before or after, or another import, is then the 409 naming it; a retry of this import finds it and goes
    // on to the batches, which it writes only if they are not written yet.
    if (key) await ingest.write(tableName, [], op, key, `import:${fingerprint}`);
    let pending: Row[] = [];
    let written = 0;
    let batch = 0;
    const out: ImportResult = { table: tableName, rows: file.rows, count: 0, firstOffset: null, lastOffset: null, token: { [tableName]: table.endOffset - 1 } };
    // `label` names the batch (its number; halves add a and b) for its idempotency key: the same file splits the same way.
    const writeRows = async (rows: Row[], label: string): Promise<void> => {
      let r: IngestResult;
      try {
        r = key ? await ingest.write(tableName, rows, op, batchKey(key, label), `${fingerprint}:${label}`) : await ingest.write(tableName, rows, op);
      } catch (err) {
        // A batch's key taken by another import (the client's key forgotten before it: it is older): named as the client sent it.
        const e = key && err instanceof AsofError && err.code === 'ASOF_CONFLICT' && (err.details as { idempotencyKey?: string } | undefined)?.idempotencyKey === batchKey(key, label) ? keyConflict(key) : err;
        // A batch of large rows can make a changelog frame larger than one may be (1 GiB, engine/frame.ts): written in halves.
        if (rows.length > 1 && e instanceof AsofError && e.code === 'ASOF_PAYLOAD_TOO_LARGE' && (e.details as { maxFrameBytes?: number } | undefined)?.maxFrameBytes !== undefined) {
          const half = rows.length >> 1;
          await writeRows(rows.slice(0, half), `${label}a`);
          await writeRows(rows.slice(half), `${label}b`);
          return;
        }
        throw written ? partlyWritten(e, out, written) : e;
      }
      out.count += r.count;
      out.firstOffset ??= r.firstOffset;
      out.lastOffset = r.lastOffset ?? out.lastOffset;
      out.token = r.token;
      written += rows.length;
      opts.onProgress?.({ rows: written, total: file.rows });
    };
    const flush = async (): Promise<void> => {
      if (!pending.length) return;
      await writeRows(pending, String(batch++));
      pending = [];
    };
    for await (const b of file.batches()) {
      for (const r of toRows(b, file.columns, schema, format === 'csv')) pending.push(r);
      while (pending.length >= batchRows) {
        const rest = pending.splice(batchRows);
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

/**
 * The key batch `label` of a keyed import is written under: a hash of the
 * client's key, so any key of up to 256 characters gives one that fits too,
 * and a prefix no `POST /rows` key of a client would take by chance.
 */
const batchKey = (key: string, label: string): string => `import:${hashOf(key)}:${label}`;

/** The SHA-256 of a file's bytes, base64url. */
export async function fileHash(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('base64url');
}

/**
 * A failure after `written` rows were committed: the caller must learn what
 * stays written (its retry without a key would write those rows again), not
 * the "nothing was written" of the failed batch alone.
 */
function partlyWritten(e: unknown, out: ImportResult, written: number): AsofError {
  const cause = e instanceof AsofError ? e : undefined;
  const reason = (cause?.message ?? String((e as Error)?.message ?? e)).replace('; nothing was written', '; that batch was not written');
  const message =
    `the import stopped at row ${written} of ${out.rows}: ${reason}. Rows 0-${written - 1} of the file were written before that ` +
    `(offsets ${out.firstOffset ?? '-'}..${out.lastOffset ?? '-'}) and stay written; rows from ${written} on were not. ` +
    `A retry with the same Idempotency-Key writes only the rest; without one, import the rows from ${written} on`;
  return new AsofError(cause?.code ?? 'ASOF_INTERNAL', message, {
    written: { rows: written, count: out.count, firstOffset: out.firstOffset, lastOffset: out.lastOffset, token: out.token },
    resumeAtRow: written,
    ...(cause?.details === undefined ? {} : { cause: cause.details }),
  });
}

/**
 * The numbers a float64 bends in a batch whose first row is row `base` of the
 * file, where the column takes no nearest value (an int32, int64, timestamp
 * or json part): the issues `POST /tables/{table}/rows` answers for them
 * (ingest/bent-columns.ts). Read from the text values were parsed from:
 * NDJSON lines, CSV cells of lists, structs and json (scalars are read from
 * their exact text by fromCsvText), Parquet's JSON text of nested and JSON values.
 */
function bentIssues(b: ColumnBatch, columns: FileColumn[], schema: TableSchema, csv: boolean, base: number): FieldIssue[] {
  const counts = countsIn(schema);
  const out: FieldIssue[] = [];
  const add = (bent: BentNumber, path: (string | number)[]): void => {
    const issue = bentIssue(schema, { ...bent, path });
    if (issue) out.push({ ...issue, row: base + (path[0] as number) });
  };
  // NDJSON: paths start at the row's keys.
  b.rowTexts?.forEach((line, i) => {
    for (const bent of bentNumbers(line, (p) => counts([i, ...p]))) add(bent, [i, ...bent.path]);
  });
  columns.forEach((c, k) => {
    const type = schema.byName.get(c.name)?.type;
    const texts = csv ? b.columns[k] : b.cellTexts?.[k];
    if (!type || !texts || !holdsExactPart(type) || (csv && type.kind !== 'list' && type.kind !== 'struct' && type.kind !== 'json')) return;
    for (let i = 0; i < b.n; i++) {
      const t = texts[i];
      // A CSV cell that is not JSON is no value's JSON text (a json column stores it as a string): bentNumbers reads JSON only.
      if (typeof t !== 'string' || !mayBend(t) || (csv && !isJsonText(t))) continue;
      for (const bent of bentNumbers(t, (p) => counts([i, c.name, ...p]))) add(bent, [i, c.name, ...bent.path]);
    }
  });
  return out;
}

const isJsonText = (s: string): boolean => {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
};

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
 * null; decimal numbers (integers for int32; int64 text is read exactly by the
 * validator) and booleans parsed; timestamps as RFC 3339, epoch ms, or
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
      return numberFromText(t.kind, s.trim());
    case 'int64':
      return s.trim();
    case 'timestamp': {
      const naive = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}:\d{2}(?:\.\d+)?))?$/.exec(s.trim());
      // The engine's RFC 3339 parser, not Date.parse: that one rolls dates that do not exist over (Feb 30 → Mar 2, 24:00 → the next day).
      if (naive) return parseRfc3339(`${naive[1]}T${naive[2] ?? '00:00:00'}Z`) ?? s;
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
