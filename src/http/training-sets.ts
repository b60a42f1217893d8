/**
 * Training-set routes: build one (inline when small, a background job when
 * large), follow a job, download its file. Thin: the offline services do the
 * work; this file parses, chooses inline or job, and streams files.
 *
 * Entity rows come inline (`entities.rows`), from a table (`entities.table`),
 * or as a file body (CSV, NDJSON, Parquet) with the rest of the request in
 * the query string.
 */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { AsofError } from '../errors.js';
import { formatTimestamp } from '../engine/schema.js';
import type { JobInfo } from '../offline/jobs.js';
import type { EntitySource } from '../offline/entity-rows.js';
import { CONTENT_TYPES, EXTENSIONS, OUTPUT_FORMATS, type OutputFormat } from '../offline/writers.js';
import type { PreparedTrainingSet, TrainingSetRequest } from '../offline/training-set.js';
import type { Services } from '../services.js';
import type { RoutePlugin } from './server.js';
import { rawJsonOf, route } from './route.js';
import { callerOf } from './server.js';
import { TokenSchema } from './tables.js';
import { acceptFileBodies, assertJsonOrFile, FILE_CONTENT_TYPES, fileFormatOf, isFileBody, saveBody } from './uploads.js';

const PointInTime = z.enum(['event', 'known']).describe('"event": everything that had happened by each row\'s time (default). "known": only what had also been committed by then, as online serving saw it.');
const Format = z.enum(OUTPUT_FORMATS).describe('Output format (default json).');

const TrainingSetBody = z
  .strictObject({
    entities: z
      .union([
        z.object({ rows: z.array(z.record(z.string(), z.unknown())).describe('Entity rows: the entity key column(s), `timestamp` (or `event_timestamp`), and any label columns, which pass through.') }).strict(),
        z.object({ table: z.string().describe('A table of entity rows: all records of a log table, the live rows of a pk table. Its time column is `timestamp`, `event_timestamp`, or else its eventTime.') }).strict(),
      ])
      .describe('Where the entity rows come from. (Files go in the body instead: see the description.)'),
    features: z.array(z.string()).min(1).optional().describe('`view:feature` references.'),
    service: z.string().optional().describe('A feature service, instead of features.'),
    pointInTime: PointInTime.default('event'),
    fullFeatureNames: z.boolean().default(false).describe('Name feature columns `view__feature` (required when two features share a name).'),
    format: Format.default('json'),
    async: z.boolean().default(false).describe('Always answer 202 with a job, however small the request.'),
  })
  .meta({ id: 'TrainingSetRequest' });

const FileQuery = z.strictObject({
  features: z.string().optional().describe('File bodies only: comma-separated `view:feature` references.'),
  service: z.string().optional().describe('File bodies only: a feature service.'),
  pointInTime: PointInTime.optional(),
  fullFeatureNames: z.enum(['true', 'false']).optional(),
  format: Format.optional(),
  async: z.enum(['true', 'false']).optional(),
  fileFormat: z.enum(['csv', 'ndjson', 'parquet']).optional().describe('The body\'s format when its Content-Type is application/octet-stream.'),
});

const TrainingSetRows = z
  .object({
    rows: z.array(z.record(z.string(), z.unknown())).describe('One per entity row, in input order: its columns, then each feature (null when it had no value at that time, or it was older than the view\'s ttl).'),
    token: TokenSchema,
  })
  .meta({ id: 'TrainingSetRows' });

const JobStatus = z
  .object({
    id: z.string(),
    state: z.enum(['queued', 'running', 'succeeded', 'failed']),
    progress: z.object({ rows: z.number().int(), total: z.number().int() }).describe('Entity rows written so far, of all.'),
    format: Format,
    pointInTime: PointInTime,
    token: TokenSchema,
    createdAt: z.string(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    bytes: z.number().int().optional().describe('Size of the finished file.'),
    error: z.string().optional().describe('Why the job failed.'),
  })
  .meta({ id: 'TrainingSetJob' });

const JobParams = z.object({ id: z.string() });

/** Who is answered about a job: said once, in each job route's description. */
const JOB_ACCESS =
  "A job exists only for keys allowed to read the table its request named (entities.table), as building it required: asof's internal tables, such as the decision log, need the audit scope. Any other key gets 404 ASOF_NOT_FOUND, the answer for an id no job has.";

function jobJson(j: JobInfo): z.infer<typeof JobStatus> {
  const { createdAt, startedAt, finishedAt, ...rest } = j;
  return {
    ...rest,
    createdAt: formatTimestamp(createdAt),
    ...(startedAt === undefined ? {} : { startedAt: formatTimestamp(startedAt) }),
    ...(finishedAt === undefined ? {} : { finishedAt: formatTimestamp(finishedAt) }),
  };
}

export interface TrainingSetRouteOptions {
  /** At most this many entity rows are answered inline; more become a job. */
  inlineRows: number;
  maxUploadBytes: number;
}

export const trainingSetRoutes =
  (opts: TrainingSetRouteOptions): RoutePlugin =>
  (app: FastifyInstance, services: Services): void => {
    const { trainingSets, trainingSetJobs: jobs } = services;
    void app.register(async (scope) => {
      acceptFileBodies(scope);
      route(
        scope,
        {
          method: 'POST',
          url: '/training-sets',
          operationId: 'createTrainingSet',
          work: 'trainingSets',
          scope: 'read',
          summary: 'Build a point-in-time training set',
          description: [
            'For each entity row: each feature\'s value at the row\'s time (latest with event time <= t, ties to the highest offset, within the view\'s ttl; windowed aggregates over (t - window, t]); with pointInTime "known", only what was also committed by t. Label columns pass through; output columns are the entity row\'s, then each feature by its name (or view__feature).',
            `Small requests (at most ASOF_TRAINING_SET_INLINE_ROWS entity rows, default 10,000) are answered 200 in the requested format (${OUTPUT_FORMATS.map((f) => `${f}: ${CONTENT_TYPES[f]}`).join('; ')}); larger ones, or \`async: true\`, answer 202 with a job to follow at GET /training-sets/{id}.`,
            `Entity rows may also be uploaded as the body (${Object.values(FILE_CONTENT_TYPES).join(', ')}), with features, service, pointInTime, fullFeatureNames, format and async in the query string (which a JSON body may not have: 400). Unknown keys, in the body or the query, are a 400.`,
          ].join('\n\n'),
          tags: ['training sets'],
          query: FileQuery,
          body: TrainingSetBody,
          consumes: Object.values(FILE_CONTENT_TYPES),
          keepText: true,
          responses: { 200: TrainingSetRows, 202: JobStatus, 400: 'error', 404: 'error', 413: 'error', 415: 'error' },
        },
        async (req, reply, { query, body }) => {
          let request: TrainingSetRequest;
          let upload: string | undefined;
          let forceJob: boolean;
          assertJsonOrFile(req);
          if (isFileBody(req)) {
            const fileFormat = fileFormatOf(req, query.fileFormat);
            upload = jobs.scratchPath(`.${fileFormat}`);
            await saveBody(req.body as Readable, upload, opts.maxUploadBytes);
            request = {
              entities: { file: { path: upload, format: fileFormat } },
              features: query.features ? query.features.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
              service: query.service,
              pointInTime: query.pointInTime,
              fullFeatureNames: query.fullFeatureNames === 'true',
              format: query.format,
            };
            forceJob = query.async === 'true';
          } else {
            // The query string carries the request of a file body only: beside a JSON body it would be ignored, so it is refused.
            const given = Object.keys(query);
            if (given.length) {
              const details = given.map((k) => ({ field: `query.${k}`, reason: 'query parameters apply to file bodies only; with a JSON body, put the field in the body' }));
              throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid query: ${details[0].field}: ${details[0].reason}`, details);
            }
            const b = body as z.infer<typeof TrainingSetBody>;
            // Inline rows with the body's text, which alone shows a number a float64 bent (entity-rows.ts).
            const entities = (('rows' in b.entities ? { rows: b.entities.rows, text: rawJsonOf(req) } : b.entities) as EntitySource);
            request = { entities, features: b.features, service: b.service, pointInTime: b.pointInTime, fullFeatureNames: b.fullFeatureNames, format: b.format };
            forceJob = b.async;
          }
          const removeUpload = async (): Promise<void> => {
            if (upload) await rm(upload, { force: true });
          };
          let prepared: PreparedTrainingSet;
          try {
            prepared = await trainingSets.prepare(request, callerOf(req));
          } catch (e) {
            await removeUpload();
            throw e;
          }
          if (forceJob || prepared.total > opts.inlineRows) {
            const info = await jobs.submit(prepared, removeUpload);
            reply.code(202).header('location', `/training-sets/${info.id}`);
            return jobJson(info);
          }
          const out = jobs.scratchPath(`.${EXTENSIONS[prepared.format]}`);
          try {
            await prepared.write(out);
          } catch (e) {
            await rm(out, { force: true });
            throw e;
          } finally {
            await prepared.close();
            await removeUpload();
          }
          return sendFile(reply, out, prepared.format, { remove: true });
        },
      );
    });

    route(
      app,
      { method: 'GET', url: '/training-sets/:id', operationId: 'getTrainingSetJob', scope: 'read', summary: 'A training-set job: state and progress', description: JOB_ACCESS, tags: ['training sets'], params: JobParams, responses: { 200: JobStatus, 404: 'error' } },
      async (req, _reply, { params }) => jobJson(jobs.get(params.id, callerOf(req))),
    );

    route(
      app,
      {
        method: 'GET',
        url: '/training-sets/:id/data',
        operationId: 'getTrainingSetData',
        scope: 'read',
        summary: 'Download a finished training set',
        description: `The file, in the format the job was asked for (json is \`{rows, token}\`). 409 while the job runs or when it failed.\n\n${JOB_ACCESS}`,
        tags: ['training sets'],
        params: JobParams,
        responses: { 200: { description: 'The training set file', contentType: 'application/octet-stream' }, 404: 'error', 409: 'error' },
      },
      async (req, reply, { params }) => {
        const { path, format } = jobs.data(params.id, callerOf(req));
        reply.header('content-disposition', `attachment; filename="${params.id}.${EXTENSIONS[format]}"`);
        return sendFile(reply, path, format, { remove: false });
      },
    );

    route(
      app,
      { method: 'DELETE', url: '/training-sets/:id', operationId: 'deleteTrainingSetJob', scope: 'admin', summary: 'Delete a finished job and its file', description: JOB_ACCESS, tags: ['training sets'], params: JobParams, responses: { 200: z.object({ id: z.string(), deleted: z.literal(true) }), 404: 'error', 409: 'error' } },
      async (req, _reply, { params }) => {
        await jobs.delete(params.id, callerOf(req));
        return { id: params.id, deleted: true as const };
      },
    );
  };

function sendFile(reply: FastifyReply, path: string, format: OutputFormat, opts: { remove: boolean }): FastifyReply {
  const stream = createReadStream(path);
  if (opts.remove) stream.on('close', () => void rm(path, { force: true }));
  return reply.type(CONTENT_TYPES[format]).send(stream);
}
