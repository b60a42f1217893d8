/**
 * Training-set output: batches of rows written to a file as JSON
 * (`{"rows": [...], "token": {...}}`), NDJSON, CSV, an Arrow IPC stream or
 * Parquet. Values arrive canonical (timestamps epoch ms); text formats write
 * timestamps as RFC 3339 UTC with milliseconds, binary ones as UTC timestamps.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
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

class TextWriter implements OutputWriter {
  private readonly out: WriteStream;
  private rows = 0;
  constructor(
    private readonly format: 'json' | 'ndjson' | 'csv',
    path: string,
    private readonly columns: FileColumn[],
    private readonly token: Token,
  ) {
    this.out = createWriteStream(path);
    if (format === 'json') this.out.write('{"rows":[');
    if (format === 'csv') this.out.write(columns.map((c) => csvText(c.name)).join(',') + '\n');
  }

  async write(b: OutBatch): Promise<void> {
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
    if (!this.out.write(text)) await once(this.out, 'drain');
  }

  async close(): Promise<void> {
    if (this.format === 'json') this.out.write(`],"token":${JSON.stringify(this.token)}}`);
    this.out.end();
    await finished(this.out);
  }

  async abort(): Promise<void> {
    this.out.destroy();
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
  for await (const chunk of from) if (!out.write(chunk)) await once(out, 'drain');
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
    this.out = createWriteStream(path);
    this.done = pump(this.writer, this.out);
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

  async abort(): Promise<void> {
    this.writer.abort();
    this.out.destroy();
    await this.done.catch(() => undefined);
  }
}
