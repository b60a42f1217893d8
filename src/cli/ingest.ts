/**
 * `asof ingest <table> <file>`: import a CSV, NDJSON or Parquet file into a
 * table. Against a running server through `POST /tables/{table}/import`
 * (`--url`, default http://127.0.0.1:8080), or straight into a data folder
 * with `--data-dir` when no server runs on it.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { loadConfig } from '../config.js';
import { withServices } from '../app.js';
import type { TableKind } from '../engine/schema.js';
import { silentLogger } from '../logger.js';
import { formatOfPath, openFile, FILE_FORMATS, type FileFormat } from '../offline/files.js';
import { importFile, tableDefinitionFor } from '../offline/import.js';
import { parseArgs, UsageError } from './args.js';
import { ApiError, Client, DEFAULT_URL } from './client.js';
import { Progress } from './progress.js';
import { readableDataDir } from './data-dir.js';

export const INGEST_USAGE = `usage: asof ingest <table> <file> [options]

Imports a CSV (with a header row), NDJSON or Parquet file into a table. Every
row is validated first; one bad row imports nothing.

options:
  --url U              a running server's REST API (default ${DEFAULT_URL})
  --data-dir D         write straight into this data folder instead (no server may run on it)
  --format F           csv | ndjson | parquet (default: from the file's extension)
  --op O               upsert (default) | delete
  --create             create the table from the file's columns when it does not exist
  --kind K             with --create: log (default) | pk
  --event-time C       with --create: the event-time column
  --primary-key A,B    with --create: the key columns
  --api-key K          API key (or ASOF_API_KEY)
`;

const CONTENT_TYPES: Record<FileFormat, string> = { csv: 'text/csv', ndjson: 'application/x-ndjson', parquet: 'application/vnd.apache.parquet' };

export async function ingest(argv: string[]): Promise<void> {
  const a = parseArgs(argv, { values: ['url', 'data-dir', 'format', 'op', 'kind', 'event-time', 'primary-key', 'api-key'], bools: ['create'] });
  const [table, file] = a.positionals;
  if (!table || !file || a.positionals.length > 2) throw new UsageError('give a table and a file');
  const format = (a.flags.get('format') ?? formatOfPath(file)) as FileFormat | undefined;
  if (!format || !FILE_FORMATS.includes(format)) throw new UsageError(`cannot tell the format of "${file}": pass --format csv|ndjson|parquet`);
  const op = a.flags.get('op') ?? 'upsert';
  if (op !== 'upsert' && op !== 'delete') throw new UsageError('--op must be upsert or delete');
  const create = a.bools.has('create')
    ? { kind: (a.flags.get('kind') ?? 'log') as TableKind, eventTime: a.flags.get('event-time'), primaryKey: a.flags.get('primary-key')?.split(',').map((s) => s.trim()).filter(Boolean) }
    : undefined;
  if (create && create.kind !== 'log' && create.kind !== 'pk') throw new UsageError('--kind must be log or pk');
  const progress = new Progress(`ingest ${table}`, 'rows');
  // `maxLineBytes`: the data folder's configured body limit; over REST, the default (the server applies its own to the upload).
  const definition = async (maxLineBytes?: number) => {
    // Types as the file states them (CSV: as DuckDB infers them).
    const f = await openFile(file, format, { maxLineBytes });
    try {
      return tableDefinitionFor(f.columns, create!);
    } finally {
      await f.close();
    }
  };

  const dataDir = a.flags.get('data-dir');
  if (dataDir) {
    // Without --create the table must exist already: a mistyped folder is an error, not a new empty store.
    if (!create) await readableDataDir(dataDir);
    const config = loadConfig({ ...process.env, ASOF_DATA_DIR: dataDir });
    // The server's own services (app.ts), so the CLI writes by the same rules; the folder's lock keeps a running server out.
    await withServices(config, silentLogger, async ({ engine, ingest }) => {
      if (create && !engine.has(table)) await engine.defineTable(table, await definition(config.maxBodyBytes));
      const r = await importFile(engine, ingest, table, file, format, { op, maxBatchRows: config.maxBatchRows, maxLineBytes: config.maxBodyBytes, onProgress: (p) => progress.update(p.rows, p.total) });
      progress.done(`imported ${r.rows} rows into ${table} (${r.count} changelog records, offsets ${r.firstOffset ?? '-'}..${r.lastOffset ?? '-'})`);
      process.stdout.write(JSON.stringify(r) + '\n');
    });
    return;
  }

  const client = new Client(a.flags.get('url') ?? DEFAULT_URL, a.flags.get('api-key') ?? process.env.ASOF_API_KEY);
  if (create) {
    try {
      await client.json('GET', `/tables/${encodeURIComponent(table)}`);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      await client.json('PUT', `/tables/${encodeURIComponent(table)}`, { json: await definition() });
    }
  }
  // Progress over REST is the upload's: the server validates and writes once it has the whole file.
  const size = (await stat(file)).size;
  const upload = new Progress(`upload ${file}`, 'bytes');
  let sent = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sent += chunk.length;
      upload.update(sent, size);
      cb(null, chunk);
    },
  });
  const { body } = await client.json<{ rows: number; count: number; firstOffset: number | null; lastOffset: number | null }>('POST', `/tables/${encodeURIComponent(table)}/import?op=${op}`, {
    stream: createReadStream(file).pipe(counter),
    contentType: CONTENT_TYPES[format],
  });
  upload.done(`imported ${body.rows} rows into ${table} (${body.count} changelog records, offsets ${body.firstOffset ?? '-'}..${body.lastOffset ?? '-'})`);
  process.stdout.write(JSON.stringify(body) + '\n');
}
