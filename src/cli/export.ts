/**
 * `asof export`: write a point-in-time training set to a file. Against a
 * running server (a training-set job: upload, follow, download), or straight
 * from a data folder with `--data-dir` when no server runs on it. The file
 * appears under its name only once complete.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UNRESTRICTED } from '../access.js';
import { loadConfig } from '../config.js';
import { withServices } from '../app.js';
import type { PointInTime } from '../features/evaluator.js';
import { silentLogger } from '../logger.js';
import type { EntitySource } from '../offline/entity-rows.js';
import { FILE_FORMATS, formatOfPath, type FileFormat } from '../offline/files.js';
import { OUTPUT_FORMATS, type OutputFormat } from '../offline/writers.js';
import { parseArgs, UsageError } from './args.js';
import { Client, DEFAULT_URL } from './client.js';
import { Progress } from './progress.js';
import { readableDataDir } from './data-dir.js';

export const EXPORT_USAGE = `usage: asof export (--entities FILE | --entities-table T) (--features V:F,... | --service S) --out FILE [options]

Writes a point-in-time training set: for each entity row, each feature's value
at the row's time.

options:
  --entities FILE        entity rows: CSV, NDJSON or Parquet, with the entity key column(s),
                         timestamp (or event_timestamp) and any label columns
  --entities-format F    csv | ndjson | parquet (default: from the file's extension)
  --entities-table T     or: a table of entity rows
  --features V:F,...     feature references, or
  --service S            a feature service
  --out FILE             where to write; the format follows the extension
                         (.parquet, .csv, .ndjson, .json, .arrow) unless --format says
  --format F             ${OUTPUT_FORMATS.join(' | ')}
  --point-in-time P      event (default) | known
  --full-feature-names   name feature columns view__feature
  --url U                a running server's REST API (default ${DEFAULT_URL})
  --data-dir D           read straight from this data folder instead (no server may run on it)
  --api-key K            API key (or ASOF_API_KEY)
`;

const UPLOAD_TYPES: Record<FileFormat, string> = { csv: 'text/csv', ndjson: 'application/x-ndjson', parquet: 'application/vnd.apache.parquet' };

function outputFormatOf(path: string): OutputFormat | undefined {
  const ext = path.toLowerCase().split('.').pop();
  if (ext === 'pq') return 'parquet';
  if (ext === 'jsonl') return 'ndjson';
  if (ext === 'arrows' || ext === 'ipc') return 'arrow';
  return (OUTPUT_FORMATS as readonly string[]).includes(ext ?? '') ? (ext as OutputFormat) : undefined;
}

interface JobStatus {
  id: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed';
  progress: { rows: number; total: number };
  error?: string;
}

export async function exportTrainingSet(argv: string[]): Promise<void> {
  const a = parseArgs(argv, {
    values: ['entities', 'entities-format', 'entities-table', 'features', 'service', 'out', 'format', 'point-in-time', 'url', 'data-dir', 'api-key'],
    bools: ['full-feature-names'],
  });
  if (a.positionals.length) throw new UsageError(`unexpected argument "${a.positionals[0]}"`);
  const out = a.flags.get('out');
  if (!out) throw new UsageError('--out is required');
  const format = (a.flags.get('format') ?? outputFormatOf(out)) as OutputFormat | undefined;
  if (!format || !OUTPUT_FORMATS.includes(format)) throw new UsageError(`cannot tell the output format of "${out}": pass --format ${OUTPUT_FORMATS.join('|')}`);
  const pointInTime = (a.flags.get('point-in-time') ?? 'event') as PointInTime;
  if (pointInTime !== 'event' && pointInTime !== 'known') throw new UsageError('--point-in-time must be event or known');
  const features = a.flags.get('features')?.split(',').map((s) => s.trim()).filter(Boolean);
  const service = a.flags.get('service');
  if (!features === !service) throw new UsageError('give one of --features or --service');
  const entitiesFile = a.flags.get('entities');
  const entitiesTable = a.flags.get('entities-table');
  if (!entitiesFile === !entitiesTable) throw new UsageError('give one of --entities or --entities-table');
  let entitiesFormat: FileFormat | undefined;
  if (entitiesFile) {
    entitiesFormat = (a.flags.get('entities-format') ?? formatOfPath(entitiesFile)) as FileFormat | undefined;
    if (!entitiesFormat || !FILE_FORMATS.includes(entitiesFormat)) throw new UsageError(`cannot tell the format of "${entitiesFile}": pass --entities-format csv|ndjson|parquet`);
  }
  const fullFeatureNames = a.bools.has('full-feature-names');
  const progress = new Progress(`export ${out}`, 'rows');
  const partial = `${out}.partial`;

  try {
    const dataDir = a.flags.get('data-dir');
    if (dataDir) {
      await readableDataDir(dataDir);
      const config = loadConfig({ ...process.env, ASOF_DATA_DIR: dataDir });
      // The server's own services (app.ts); the folder's lock keeps a running server out.
      await withServices(config, silentLogger, async ({ trainingSets }) => {
        const entities: EntitySource = entitiesFile ? { file: { path: entitiesFile, format: entitiesFormat! } } : { table: entitiesTable! };
        // The data folder's owner reads it all, as with auth off.
        const p = await trainingSets.prepare({ entities, features, service, pointInTime, fullFeatureNames, format }, UNRESTRICTED);
        try {
          await p.write(partial, (x) => progress.update(x.rows, x.total));
        } finally {
          await p.close();
        }
      });
    } else {
      const client = new Client(a.flags.get('url') ?? DEFAULT_URL, a.flags.get('api-key') ?? process.env.ASOF_API_KEY);
      let job: JobStatus;
      if (entitiesFile) {
        const q = new URLSearchParams({ pointInTime, format, async: 'true', fullFeatureNames: String(fullFeatureNames), ...(features ? { features: features.join(',') } : { service: service! }) });
        job = (await client.json<JobStatus>('POST', `/training-sets?${q}`, { stream: createReadStream(entitiesFile), contentType: UPLOAD_TYPES[entitiesFormat!] })).body;
      } else {
        job = (await client.json<JobStatus>('POST', '/training-sets', { json: { entities: { table: entitiesTable }, features, service, pointInTime, fullFeatureNames, format, async: true } })).body;
      }
      while (job.state === 'queued' || job.state === 'running') {
        progress.update(job.progress.rows, job.progress.total);
        await new Promise((r) => setTimeout(r, 250));
        job = (await client.json<JobStatus>('GET', `/training-sets/${job.id}`)).body;
      }
      if (job.state === 'failed') throw new Error(`the training-set job failed: ${job.error}`);
      progress.update(job.progress.rows, job.progress.total);
      const res = await client.raw('GET', `/training-sets/${job.id}/data`);
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(partial));
    }
    await rename(partial, out);
  } catch (e) {
    await rm(partial, { force: true });
    throw e;
  }
  progress.done(`wrote ${out}`);
}
