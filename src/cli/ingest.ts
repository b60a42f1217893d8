/**
 * `asof ingest <table> <file>`: import a CSV, NDJSON or Parquet file into a
 * table. Against a running server through `POST /tables/{table}/import`
 * (`--url`, default http://127.0.0.1:8080), or straight into a data folder
 * with `--data-dir` when no server runs on it. Either way under an
 * Idempotency-Key (by default one derived from the table, op, format and the
 * file's bytes), so running the same command again after a failure part way
 * writes only the rows not written yet (offline/import.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { loadConfig } from '../config.js';
import { withServices } from '../app.js';
import type { TableKind } from '../engine/schema.js';
import { silentLogger } from '../logger.js';
import { formatOfPath, openFile, FILE_FORMATS, type FileFormat } from '../offline/files.js';
import { fileHash, importFile, tableDefinitionFor } from '../offline/import.js';
import { AsofError } from '../errors.js';
import { parseArgs, UsageError } from './args.js';
import { ApiError, Client, ConnectionError, DEFAULT_URL } from './client.js';
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
  --idempotency-key K  the import's Idempotency-Key (at most 256 characters); default: one
                       derived from the table, --op, the format and the file's content

Retrying: an import is written in batches, and one that fails part way (the
connection dropped, the server stopped, the disk filled, this command was
killed) leaves the batches before the failure written. Run the same command
again: it runs under the same Idempotency-Key, so the rows already written are
not written again, only the rest are, and the answer is the whole import's
(with your own --idempotency-key, pass the same one). The same holds with
--data-dir. Running it again after it succeeded writes nothing and prints the
first answer while the key is remembered (24 h after the import, among the
table's newest 100,000 keys); to import the same file into the same table once
more, pass a new --idempotency-key.
`;

/**
 * The Idempotency-Key of an import when none is given: a hash of what makes
 * two runs the same import (table, op, format, the file's bytes), so running
 * the same command again is a retry of the first. The server adds its batch
 * size to what the key must match (offline/import.ts): a retry after
 * ASOF_MAX_BATCH_ROWS changed is a 409.
 */
export async function defaultIdempotencyKey(table: string, op: string, format: FileFormat, file: string): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(['asof ingest', table, op, format, await fileHash(file)]));
  return `asof-ingest-${hash.digest('base64url')}`;
}

const CONTENT_TYPES: Record<FileFormat, string> = { csv: 'text/csv', ndjson: 'application/x-ndjson', parquet: 'application/vnd.apache.parquet' };

export async function ingest(argv: string[]): Promise<void> {
  const a = parseArgs(argv, { values: ['url', 'data-dir', 'format', 'op', 'kind', 'event-time', 'primary-key', 'api-key', 'idempotency-key'], bools: ['create'] });
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
  const givenKey = a.flags.get('idempotency-key');
  if (givenKey !== undefined && givenKey === '') throw new UsageError('--idempotency-key must not be empty');
  const key = givenKey ?? (await defaultIdempotencyKey(table, op, format, file));
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
      let r;
      try {
        r = await importFile(engine, ingest, table, file, format, { op, maxBatchRows: config.maxBatchRows, maxLineBytes: config.maxBodyBytes, idempotencyKey: key, onProgress: (p) => progress.update(p.rows, p.total) });
      } catch (e) {
        throw withRetryAdvice(e, key, givenKey !== undefined);
      }
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
  let body;
  try {
    ({ body } = await client.json<{ rows: number; count: number; firstOffset: number | null; lastOffset: number | null }>('POST', `/tables/${encodeURIComponent(table)}/import?op=${op}`, {
      stream: createReadStream(file).pipe(counter),
      contentType: CONTENT_TYPES[format],
      headers: { 'idempotency-key': key },
    }));
  } catch (e) {
    throw withRetryAdvice(e, key, givenKey !== undefined);
  }
  upload.done(`imported ${body.rows} rows into ${table} (${body.count} changelog records, offsets ${body.firstOffset ?? '-'}..${body.lastOffset ?? '-'})`);
  process.stdout.write(JSON.stringify(body) + '\n');
}

/**
 * A failed import's error, with what the user needs to finish it: the key it
 * ran under and that running the same command again writes only the rest,
 * and how much stayed written when the answer says (`details.written`). An
 * error that wrote nothing and would fail again (a bad row, an unknown table)
 * is left as it is.
 */
export function withRetryAdvice(e: unknown, key: string, given: boolean): unknown {
  const again = `run the same command again${given ? ` (with --idempotency-key ${JSON.stringify(key)})` : ''}: it writes only the rows not written yet and answers once for the whole file`;
  const ran = `The import ran under Idempotency-Key "${key}"${given ? '' : ' (derived from the table, --op, the format and the file\'s content)'}`;
  let details: unknown;
  let status: number;
  if (e instanceof ApiError) ({ details, status } = e);
  else if (e instanceof AsofError) ({ details, status } = { details: e.details, status: e.httpStatus });
  else if (e instanceof ConnectionError) {
    // Not reached: nothing was sent, so nothing was written; the key changes nothing.
    if (!e.reached) return e;
    return new Error(`${e.message}. Rows of the file may have been written before that (the answer that would say how many did not come). ${ran}: once asof is up, ${again}.`);
  } else return e;
  const code = (e as ApiError | AsofError).code;
  if (code === 'ASOF_CONFLICT' && (details as { idempotencyKey?: string } | undefined)?.idempotencyKey === key) {
    return new Error(
      `${e.message}: the key was used for a different request${given ? '' : ' (for this file: the server\'s ASOF_MAX_BATCH_ROWS or the table\'s columns changed since, which change its batches)'}. ` +
        `To import anyway, pass a new --idempotency-key: rows an earlier run wrote under "${key}" are then written again.`,
    );
  }
  if (status < 500 && status !== 429) return e;
  const w = (details as { written?: { rows: number; firstOffset: number | null; lastOffset: number | null }; resumeAtRow?: number } | undefined)?.written;
  const written = w ? `${w.rows} rows (rows 0-${w.rows - 1} of the file, offsets ${w.firstOffset ?? '-'}..${w.lastOffset ?? '-'}) were written and stay written. ` : '';
  return new Error(`${e.message}\n${written}${ran}: ${again}.`);
}
