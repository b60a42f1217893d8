/**
 * Training-set output: batches of rows written to a file as JSON
 * (`{"rows": [...], "token": {...}}`), NDJSON, CSV, an Arrow IPC stream or
 * Parquet. Values arrive canonical (timestamps epoch ms); text formats write
 * timestamps as RFC 3339 UTC with milliseconds, binary ones as UTC timestamps.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import * as A from 'apache-arrow';
import { arrowType, buildColumn } from '../engine/arrow-codec.js';
import type { Token } from '../engine/engine.js';
import { formatTimestamp, toJsonValue } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { FileColumn } from './files.js';
import { cell, toArray, type OutBatch } from './out-columns.js';

export const OUTPUT_FORMATS = ['json', 'ndjson', 'csv', 'parquet', 'arrow'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const CONTENT_TYPES: Record<OutputFormat, string> = {
  json: 'application/json',
  ndjson: 'application/x-ndjson',
  csv: 'text/csv; charset=utf-8',
  parquet: 'application/vnd.apache.parquet',
  arrow: 'application/vnd.apache.arrow.stream',
};

export const EXTENSIONS: Record<OutputFormat, string> = { json: 'json', ndjson: 'ndjson', csv: 'csv', parquet: 'parquet', arrow: 'arrows' };

export interface OutputWriter {
  write(batch: OutBatch): Promise<void>;
  /** Finishes the file; it is complete once this resolves. */
  close(): Promise<void>;
  /** Stops after a failure; the file is left incomplete (callers write to a temporary name). */
  abort(): Promise<void>;
}

export async function openWriter(format: OutputFormat, path: string, columns: FileColumn[], meta: { token: Token }): Promise<OutputWriter> {
  switch (format) {
    case 'parquet':
      // parquet.ts loads DuckDB (about 30 MB of RSS): only when Parquet is written.
      return (await import('./parquet.js')).openParquetWriter(path, columns);
    case 'arrow':
      return new ArrowWriter(path, columns);
    default:
      return new TextWriter(format, path, columns, meta.token);
  }
}

/**
 * A file stream whose failure is kept rather than thrown: destroying one while
 * a write is under way (an abort) emits ERR_STREAM_DESTROYED as an 'error'
 * event, which with no listener would be an uncaught exception, ending the
 * process. `write` and `close` answer the failure instead.
 */
function fileStream(path: string): { out: WriteStream; failure: () => Error | undefined } {
  const out = createWriteStream(path);
  let failure: Error | undefined;
  out.on('error', (e) => (failure ??= e));
  return { out, failure: () => failure };
}

/** Room in `out` again, or its end (destroyed, failed): a destroyed stream never drains. */
const drained = (out: WriteStream): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      out.off('drain', done).off('close', done);
      resolve();
    };
    out.on('drain', done).on('close', done);
  });

/** Destroys `out` and waits until its file is closed (an abort's caller removes the file next). */
async function discard(out: WriteStream): Promise<void> {
  out.destroy();
  await finished(out).catch(() => undefined);
}

class TextWriter implements OutputWriter {
  private readonly out: WriteStream;
  private readonly failure: () => Error | undefined;
  private rows = 0;
  constructor(
    private readonly format: 'json' | 'ndjson' | 'csv',
    path: string,
    private readonly columns: FileColumn[],
    private readonly token: Token,
  ) {
    ({ out: this.out, failure: this.failure } = fileStream(path));
    if (format === 'json') this.out.write('{"rows":[');
    if (format === 'csv') this.out.write(columns.map((c) => csvText(c.name)).join(',') + '\n');
  }

  /** Throws the stream's failure, if it failed. */
  private check(): void {
    const failed = this.failure();
    if (failed) throw failed;
  }

  async write(b: OutBatch): Promise<void> {
    this.check();
    const parts: string[] = [];
    const cols = this.columns;
    for (let i = 0; i < b.n; i++) {
      if (this.format === 'csv') {
        parts.push(cols.map((c, k) => csvValue(c.type, cell(b.columns[k], i))).join(','));
        continue;
      }
      const obj: Record<string, unknown> = {};
      for (let k = 0; k < cols.length; k++) obj[cols[k].name] = jsonValue(cols[k].type, cell(b.columns[k], i));
      parts.push(JSON.stringify(obj));
    }
    if (!parts.length) return;
    const sep = this.format === 'json' ? ',' : '\n';
    const text = (this.format === 'json' && this.rows > 0 ? ',' : '') + parts.join(sep) + (this.format === 'json' ? '' : '\n');
    this.rows += b.n;
    if (!this.out.write(text)) await drained(this.out);
    this.check();
  }

  async close(): Promise<void> {
    if (this.format === 'json') this.out.write(`],"token":${JSON.stringify(this.token)}}`);
    this.out.end();
    await finished(this.out);
  }

  async abort(): Promise<void> {
    await discard(this.out);
  }
}

function jsonValue(type: ColumnType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  return type.kind === 'json' ? v : toJsonValue(type, v);
}

const CSV_SPECIAL = /[",\n\r]|^\s|\s$/;
const csvText = (s: string): string => (CSV_SPECIAL.test(s) ? `"${s.replaceAll('"', '""')}"` : s);

/** CSV cell: empty for null, RFC 3339 for timestamps, JSON text for nested values. */
function csvValue(type: ColumnType, v: unknown): string {
  if (v === null || v === undefined) return '';
  switch (type.kind) {
    case 'timestamp':
      return formatTimestamp(v as number);
    case 'string':
      return csvText(v as string);
    case 'bool':
    case 'int32':
    case 'int64':
    case 'float32':
    case 'float64':
      return String(v);
    default:
      return csvText(JSON.stringify(jsonValue(type, v)));
  }
}

async function pump(from: AsyncIterable<Uint8Array>, out: WriteStream): Promise<void> {
  for await (const chunk of from) {
    if (out.destroyed) return;
    if (!out.write(chunk)) await drained(out);
  }
  out.end();
  await finished(out);
}

class ArrowWriter implements OutputWriter {
  private readonly writer = new A.RecordBatchStreamWriter();
  private readonly out: WriteStream;
  private readonly schema: A.Schema;
  private readonly done: Promise<void>;
  private wrote = false;

  constructor(path: string, private readonly columns: FileColumn[]) {
    this.schema = new A.Schema(columns.map((c) => new A.Field(c.name, arrowType(c.type), true)));
    this.out = fileStream(path).out;
    this.done = pump(this.writer, this.out);
    // Answered by close (its await); after an abort nobody awaits it.
    this.done.catch(() => undefined);
  }

  async write(b: OutBatch): Promise<void> {
    if (b.n === 0) return;
    this.wrote = true;
    this.writer.write(this.batch(b));
    // Let the pump drain what this batch produced before the next one.
    await new Promise((r) => setImmediate(r));
  }

  private batch(b: OutBatch): A.RecordBatch {
    const children = this.columns.map((c, k) => buildColumn(c.type, toArray(b.columns[k], b.n)));
    const data = A.makeData({ type: new A.Struct(this.schema.fields), length: b.n, nullCount: 0, children });
    return new A.RecordBatch(this.schema, data);
  }

  async close(): Promise<void> {
    // An empty training set is still a valid stream: its schema, no rows.
    if (!this.wrote) this.writer.write(this.batch({ n: 0, columns: this.columns.map(() => []) }));
    this.writer.finish();
    await this.done;
  }

  /**
   * The pump is not awaited: after the stream writer's abort its batches may
   * never end (it parks, holding nothing), and waiting on it hung the abort, so
   * the training set's error was never answered.
   */
  async abort(): Promise<void> {
    this.writer.abort();
    await discard(this.out);
  }
}
