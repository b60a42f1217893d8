/**
 * File import route: `POST /tables/{table}/import` with a CSV, NDJSON or
 * Parquet file as the body. The file is streamed to disk, validated whole,
 * then written (offline/import.ts).
 */
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { importFile } from '../offline/import.js';
import type { Services } from '../services.js';
import type { RoutePlugin } from './server.js';
import { idempotencyKeyOf, route } from './route.js';
import { TokenSchema } from './tables.js';
import { acceptFileBodies, FILE_CONTENT_TYPES, fileFormatOf, saveBody } from './uploads.js';

const ImportResultSchema = z
  .object({
    table: z.string(),
    rows: z.number().int().describe('Rows read from the file.'),
    count: z.number().int().describe('Changelog records written (an update writes two: -U and +U).'),
    firstOffset: z.number().int().nullable(),
    lastOffset: z.number().int().nullable(),
    token: TokenSchema,
  })
  .meta({ id: 'ImportResult' });

export interface ImportRouteOptions {
  maxUploadBytes: number;
  /** Rows per write (one durable commit each). */
  maxBatchRows: number;
  /** ASOF_MAX_BODY_BYTES: an NDJSON file's longest line (a row no larger than a write request may be). */
  maxLineBytes: number;
}

export const importRoutes =
  (opts: ImportRouteOptions): RoutePlugin =>
  (app: FastifyInstance, services: Services): void => {
    void app.register(async (scope) => {
      acceptFileBodies(scope);
      route(
        scope,
        {
          method: 'POST',
          url: '/tables/:table/import',
          operationId: 'importRows',
          work: 'writes',
          scope: 'write',
          summary: 'Import a CSV, NDJSON or Parquet file into a table',
          description:
            'The body is the file (Content-Type text/csv, application/x-ndjson or application/vnd.apache.parquet; or application/octet-stream with ?fileFormat=). Columns are matched to the table\'s by name. Every row is validated before any is written: one bad row answers 400 naming up to 20 bad rows, and nothing is written. Rows are then written in batches, one durable commit each: a failure after some batches were committed says which rows and offsets stay written (`details.written`, `details.resumeAtRow`). With an `Idempotency-Key` header a retry of the same file writes only the batches not yet written; the key used for another request (another file or op, another table, or `POST /tables/{table}/rows`) is 409 ASOF_CONFLICT. CSV cells are converted to the column types (empty is null; a timestamp without a zone is UTC).',
          tags: ['tables'],
          params: z.object({ table: z.string() }),
          query: z.strictObject({ op: z.enum(['upsert', 'delete']).default('upsert'), fileFormat: z.enum(['csv', 'ndjson', 'parquet']).optional() }),
          consumes: Object.values(FILE_CONTENT_TYPES),
          responses: { 200: ImportResultSchema, 400: 'error', 404: 'error', 409: 'error', 413: 'error', 415: 'error', 503: 'error' },
        },
        async (req, _reply, { params, query }) => {
          services.engine.writable(params.table); // 404 (or a replica's 409) before reading the body
          const format = fileFormatOf(req, query.fileFormat);
          const path = services.trainingSetJobs.scratchPath(`.${format}`);
          try {
            await saveBody(req.body as Readable, path, opts.maxUploadBytes);
            const idempotencyKey = idempotencyKeyOf(req);
            return await importFile(services.engine, services.ingest, params.table, path, format, { op: query.op, maxBatchRows: opts.maxBatchRows, maxLineBytes: opts.maxLineBytes, idempotencyKey });
          } finally {
            await rm(path, { force: true });
          }
        },
      );
    });
  };
