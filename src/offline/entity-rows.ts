/**
 * Where a training set's entity rows come from: inline JSON rows, a table of
 * labels, or an uploaded file (CSV, NDJSON, Parquet). Each is read as batches
 * in input order, and may be read more than once.
 */
import type { Caller } from '../access.js';
import type { Engine, Token } from '../engine/engine.js';
import { AsofError } from '../errors.js';
import { bentNumberReason, bentNumbers, type BentNumber } from '../engine/json-safety.js';
import { readValues } from './columns.js';
import { readAhead } from './scan.js';
import { openFile, TypeInference, type ColumnBatch, type FileColumn, type FileFormat } from './files.js';

/**
 * Inline rows may come with `text`, the JSON body they were parsed from (rows at `entities.rows`): only it shows
 * a number a float64 bent (json-safety.ts bentNumbers), which is refused rather than written altered.
 */
export type EntitySource = { rows: Record<string, unknown>[]; text?: string } | { table: string } | { file: { path: string; format: FileFormat } };

export interface EntityRows {
  /** The entity rows' columns, in order, with the types they were read as. */
  columns: FileColumn[];
  total: number;
  /** For a table: the column its rows say when they happened, used when no `timestamp` column exists. */
  eventTime?: string;
  /** For a table: the changelog position read. */
  token: Token;
  batches(): AsyncIterable<ColumnBatch>;
  close(): Promise<void>;
}

const BATCH = 4096;

/**
 * Opens entity rows. `caller`: who asks, for a table (engine.readable).
 * `textColumns`: columns to read as text from CSV (entity keys: "007" must
 * stay "007"); the caller converts them to the key's type. `maxLineBytes`: an
 * NDJSON file's longest line (files.ts).
 */
export async function openEntityRows(source: EntitySource, engine: Engine, caller: Caller, textColumns: string[], maxLineBytes?: number): Promise<EntityRows> {
  if ('rows' in source) return inlineRows(source.rows, source.text);
  if ('table' in source) return tableRows(engine, source.table, caller);
  // With the JSON text of NDJSON lines and Parquet nested values, for refuseBentInFile.
  const f = await openFile(source.file.path, source.file.format, { text: textColumns, maxLineBytes, jsonTexts: true });
  return { columns: f.columns, total: f.rows, token: {}, batches: () => f.batches(), close: () => f.close() };
}

function inlineRows(rows: Record<string, unknown>[], text?: string): EntityRows {
  if (rows.length === 0) throw new AsofError('ASOF_INVALID_ARGUMENT', 'entities.rows is empty: give at least one entity row', [{ field: 'entities.rows', reason: 'empty' }]);
  if (text !== undefined) refuseBentNumbers(text);
  const inference = new TypeInference();
  rows.forEach((r, i) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new AsofError('ASOF_INVALID_ARGUMENT', `entity row ${i} is not an object`, [{ row: i, field: 'entities.rows', reason: 'not an object' }]);
    inference.add(r, i);
  });
  const columns = inference.columns();
  return {
    columns,
    total: rows.length,
    token: {},
    async *batches() {
      for (let s = 0; s < rows.length; s += BATCH) {
        const part = rows.slice(s, s + BATCH);
        yield { n: part.length, columns: columns.map((c) => part.map((r) => r[c.name] ?? null)) };
      }
    },
    async close() {},
  };
}

/**
 * Refuses inline entity rows in whose JSON text a number literal is not the
 * float64 JSON.parse read (labels pass through to the output, so
 * `9007199254740993` would be written as 9007199254740992 and
 * `0.1000000000000000055511151231257827` as 0.1): 400 naming the row and the
 * column, whatever the column (a key, the time, a label, inside a nested label).
 */
function refuseBentNumbers(text: string): void {
  for (const b of bentNumbers(text)) {
    const [entities, rows, row, column] = b.path;
    if (entities !== 'entities' || rows !== 'rows' || typeof row !== 'number' || typeof column !== 'string') continue;
    const reason = bentNumberReason(b, b.path.slice(4));
    throw new AsofError('ASOF_INVALID_ARGUMENT', `entity row ${row}: column "${column}": ${reason}`, [{ row, field: column, reason }]);
  }
}

/**
 * Refuses a batch of a file's entity rows (its first row is row `base`) in
 * whose JSON text (NDJSON lines, Parquet nested values: files.ts jsonTexts)
 * a number is not the float64 JSON.parse read, as refuseBentNumbers does for
 * inline rows. CSV scalars are typed by DuckDB with no text kept: not checked.
 */
export function refuseBentInFile(b: ColumnBatch, columns: FileColumn[], base: number): void {
  const refuse = (bent: BentNumber, row: number, column: string, inside: (string | number)[]): never => {
    const reason = bentNumberReason(bent, inside);
    throw new AsofError('ASOF_INVALID_ARGUMENT', `entity row ${row}: column "${column}": ${reason}`, [{ row, field: column, reason }]);
  };
  b.rowTexts?.forEach((line, i) => {
    const bent = bentNumbers(line).find((x) => typeof x.path[0] === 'string');
    if (bent) refuse(bent, base + i, bent.path[0] as string, bent.path.slice(1));
  });
  b.cellTexts?.forEach((texts, k) => {
    texts?.forEach((t, i) => {
      const bent = typeof t === 'string' ? bentNumbers(t)[0] : undefined;
      if (bent) refuse(bent, base + i, columns[k].name, bent.path);
    });
  });
}

function tableRows(engine: Engine, name: string, caller: Caller): EntityRows {
  engine.requireReadable(name, caller);
  if (!engine.has(name)) throw new AsofError('ASOF_TABLE_NOT_FOUND', `entities.table: table "${name}" does not exist`, { table: name });
  const table = engine.table(name);
  const schema = table.schema;
  const toOffset = table.endOffset;
  const columns = schema.columns.map((c) => ({ name: c.name, type: c.type }));
  // A pk table's entity rows are its live rows (in no particular order) as they were when the request
  // arrived: copied now, with toOffset, in one synchronous step, not when a queued job first reads them.
  const frozen = schema.kind === 'pk' ? table.frozenRows() : undefined;
  return {
    columns,
    total: frozen ? frozen.size : toOffset,
    eventTime: schema.def.eventTime,
    token: { [name]: toOffset - 1 },
    async *batches() {
      if (frozen) {
        // The copy's columns are the schema's at the copy (a column added since is not among `columns`).
        for (const values of frozen.chunks(BATCH)) yield { n: values[0]?.length ?? 0, columns: columns.map((_, j) => values[j]) };
        return;
      }
      // A log table's entity rows are its records (all +I), in offset order.
      for await (const b of readAhead(table.scanArrow({ toOffset }))) {
        const n = b.count;
        yield { n, columns: schema.columns.map((c) => readValues(b.batch.getChild(c.name), c.type, n)) };
      }
    },
    async close() {},
  };
}
