/**
 * Routes for tables: define, describe, write rows, read rows, read and follow
 * the changelog. Thin: parsing and shaping only; the engine and the ingest
 * service do the work.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AsofError, isAsofError } from '../errors.js';
import type { Engine } from '../engine/engine.js';
import type { ChangeRecord } from '../engine/table.js';
import { CHANGE_NAMES } from '../engine/arrow-codec.js';
import { followChangelog as follow } from '../engine/follow.js';
import { formatTimestamp } from '../engine/schema.js';
import { hashOf, type IngestService } from '../ingest/ingest.js';
import { parseArrowStream, parseNdjson } from '../ingest/formats.js';
import { idempotencyKeyOf, parsePart, rawJsonOf, route } from './route.js';
import { decodeUtf8 } from '../engine/json-safety.js';
import type { Admission } from '../admission.js';
import { requestObserver } from './metrics.js';
import { callerOf } from './server.js';

const Name = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be a name: letters, digits, _; not starting with a digit');
export const TokenSchema = z.record(z.string(), z.number().int()).meta({ id: 'Token', description: '{table: offset}: the changelog positions a write produced or a read reflects.' });

const ColumnSchema = z.strictObject({
  name: z.string(),
  type: z.string().describe('bool, int32, int64, float32, float64, string, timestamp, json, list<T>, struct<name:T,...>, vector<D>'),
  nullable: z.boolean().default(true),
  metric: z.enum(['cosine', 'l2', 'dot']).optional().describe('vector<D> columns only: the distance vector searches rank by and the index is built for (default cosine). Cannot change once set.'),
});

export const TableDefinitionBody = z
  .strictObject({
    kind: z.enum(['log', 'pk']),
    columns: z.array(ColumnSchema).min(1),
    primaryKey: z.array(z.string()).optional().describe('pk tables: the unique key. Log tables: optional key columns for ?key= lookups (not unique).'),
    eventTime: z.string().optional().describe('The timestamp column saying when a row happened. Required on log tables; on pk tables absent means commit time.'),
  })
  .meta({ id: 'TableDefinition' });

const TableInfoSchema = z
  .object({
    name: z.string(),
    kind: z.enum(['log', 'pk']),
    columns: z.array(z.object({ name: z.string(), type: z.string(), nullable: z.boolean(), metric: z.enum(['cosine', 'l2', 'dot']).optional().describe('vector<D> columns: the search metric.') })),
    primaryKey: z.array(z.string()),
    eventTime: z.string().nullable(),
    schemaVersion: z.number().int(),
    schemaVersions: z.array(z.object({ version: z.number().int(), columnCount: z.number().int(), createdAt: z.string() })),
    rowCount: z.number().int(),
    latestOffset: z.number().int().describe('Offset of the newest record; -1 when empty.'),
    tieredOffset: z.number().int().describe('Highest offset moved to the cold tier; -1 while nothing is tiered.'),
    createdAt: z.string(),
  })
  .meta({ id: 'TableInfo' });

const WriteBody = z
  .strictObject({
    rows: z.array(z.record(z.string(), z.unknown())),
    op: z.enum(['upsert', 'delete']).optional().describe('upsert (the default) or delete; or `?op=` in the query (the two must agree)'),
  })
  .meta({ id: 'WriteRows' });

/**
 * `WriteBody`'s check without zod: zod copies each of up to 100k rows into a new
 * object, which cost more CPU than validating them. Anything unusual goes to zod
 * so the 400 names the field exactly as before.
 */
function checkWriteBody(v: unknown): z.infer<typeof WriteBody> {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const { rows, op } = v as { rows?: unknown; op?: unknown };
    if (Array.isArray(rows) && (op === undefined || op === 'upsert' || op === 'delete') && onlyWriteKeys(v)) {
      let ok = true;
      for (let i = 0; i < rows.length && ok; i++) ok = rows[i] !== null && typeof rows[i] === 'object' && !Array.isArray(rows[i]);
      if (ok) return { rows: rows as Record<string, unknown>[], op };
    }
  }
  return parsePart(WriteBody, v, 'body');
}

/** Whether a write body has no key but `rows` and `op` (another, such as a misspelled `Op`, is zod's 400 to name). */
function onlyWriteKeys(v: object): boolean {
  for (const k in v) if (k !== 'rows' && k !== 'op') return false;
  return true;
}

const WriteResultSchema = z
  .object({
    count: z.number().int().describe('Changelog records written (an update writes two: -U and +U).'),
    firstOffset: z.number().int().nullable(),
    lastOffset: z.number().int().nullable(),
    token: TokenSchema,
  })
  .meta({ id: 'WriteResult' });

const ChangeRecordSchema = z
  .object({
    offset: z.number().int(),
    changeType: z.enum(CHANGE_NAMES),
    commitTime: z.string(),
    row: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'ChangeRecord' });

const TableParams = z.object({ table: Name });
const ARROW = 'application/vnd.apache.arrow.stream';
const NDJSON = 'application/x-ndjson';

function tableInfoJson(info: ReturnType<Engine['describe']>) {
  return {
    ...info,
    createdAt: formatTimestamp(info.createdAt),
    schemaVersions: info.schemaVersions.map((v) => ({ ...v, createdAt: formatTimestamp(v.createdAt) })),
  };
}

export function tableRoutes(app: FastifyInstance, deps: { engine: Engine; ingest: IngestService }, admission: Admission): void {
  const { engine, ingest } = deps;
  // Live SSE follows, each ended with an error event when the server starts closing: a follow lasts as long as its
  // client wants, so waiting for it would hold the shutdown for the whole grace, then cut it without a word.
  const follows: FollowRegistry = new Set();
  app.addHook('preClose', (done) => {
    const shuttingDown = new AsofError('ASOF_NOT_READY', 'the server is shutting down');
    for (const end of [...follows]) end(shuttingDown);
    done();
  });

  // NDJSON is decoded here, not by Fastify, so bytes that are not UTF-8 are refused rather than replaced by U+FFFD.
  app.addContentTypeParser(NDJSON, { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, decodeUtf8(body as Buffer, 'the body'));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser(ARROW, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  route(
    app,
    {
      method: 'PUT',
      url: '/tables/:table',
      operationId: 'putTable',
      scope: 'admin',
      summary: 'Create a table, or evolve its schema',
      description: 'Creating answers 201. Re-sending the same definition, or one that only appends nullable columns, answers 200. Any other change is refused with 409 and the reason.',
      tags: ['tables'],
      params: TableParams,
      body: TableDefinitionBody,
      responses: { 200: TableInfoSchema, 201: TableInfoSchema, 400: 'error', 409: 'error', 503: 'error' },
    },
    async (_req, reply, { params, body }) => {
      const { info, created } = await engine.defineTable(params.table, body);
      reply.code(created ? 201 : 200);
      return tableInfoJson(info);
    },
  );

  route(
    app,
    {
      method: 'GET',
      url: '/tables',
      operationId: 'listTables',
      scope: 'read',
      summary: 'List tables',
      description: "asof's internal tables (names starting `_asof`: the decision log) are listed, and read by any route, only with the audit scope.",
      tags: ['tables'],
      responses: { 200: z.object({ tables: z.array(TableInfoSchema) }) },
    },
    async (req) => ({ tables: engine.list(callerOf(req)).map(tableInfoJson) }),
  );

  route(
    app,
    { method: 'GET', url: '/tables/:table', operationId: 'getTable', scope: 'read', summary: 'Describe a table', tags: ['tables'], params: TableParams, responses: { 200: TableInfoSchema, 404: 'error', 503: 'error' } },
    async (req, _reply, { params }) => tableInfoJson(engine.describe(params.table, callerOf(req))),
  );

  route(
    app,
    {
      method: 'POST',
      url: '/tables/:table/rows',
      operationId: 'writeRows',
      work: 'writes',
      scope: 'write',
      summary: 'Write rows (upsert, delete or append)',
      description:
        'JSON `{rows, op}`, NDJSON (one row per line; `?op=` sets the op) or an Arrow IPC stream. Every row is validated before any is written: one bad row answers 400 naming the row, the column and why, and nothing is written. Answers once the records are fsync\'d. An `Idempotency-Key` header makes a retry return the first answer without writing again.',
      tags: ['tables'],
      params: TableParams,
      query: z.strictObject({ op: z.enum(['upsert', 'delete']).optional() }),
      body: WriteBody,
      checkBody: checkWriteBody,
      rowsOffThread: true,
      consumes: [NDJSON, ARROW],
      responses: { 200: WriteResultSchema, 400: 'error', 404: 'error', 409: 'error', 413: 'error', 415: 'error', 503: 'error' },
    },
    async (req, _reply, { params, query, body }) => {
      const ct = (req.headers['content-type'] ?? 'application/json').split(';')[0].trim();
      let rows: unknown[];
      let op = query.op ?? 'upsert';
      // The fingerprint is only needed with an Idempotency-Key; hashing 100 KiB per write otherwise is waste.
      let fingerprint: () => string;
      if (ct === NDJSON) {
        rows = parseNdjson(body as unknown as string);
        fingerprint = () => hashOf(`${op}\n${body as unknown as string}`);
      } else if (ct === ARROW) {
        rows = parseArrowStream(body as unknown as Buffer);
        fingerprint = () => hashOf(Buffer.concat([Buffer.from(op + '\n'), body as unknown as Buffer]));
      } else {
        const b = body as z.infer<typeof WriteBody>;
        rows = b.rows;
        // `op` in the query and in the body must agree: a delete sent as an upsert would blank the rows it names.
        if (query.op !== undefined && b.op !== undefined && query.op !== b.op) {
          throw new AsofError('ASOF_INVALID_ARGUMENT', `op is "${query.op}" in the query and "${b.op}" in the body; send it once, or the same in both`, [{ field: 'op', reason: `query "${query.op}", body "${b.op}"` }]);
        }
        op = query.op ?? b.op ?? 'upsert';
        // The text as sent (kept by the body parser for keyed requests): re-serialising the rows would run before validation, on values of any depth.
        const raw = rawJsonOf(req) ?? '';
        fingerprint = () => hashOf(`${op}\n${raw}`);
      }
      // The rows are validated into new objects before anything waits; the request need not hold the parsed body
      // until the fsync, where each young-generation collection would copy it.
      req.body = undefined;
      return ingest.write(params.table, rows, op, idempotencyKeyOf(req), fingerprint);
    },
  );

  route(
    app,
    {
      method: 'GET',
      url: '/tables/:table/rows/:key',
      operationId: 'getRow',
      scope: 'read',
      summary: 'The latest row of a pk table',
      tags: ['tables'],
      params: z.object({ table: Name, key: z.string() }),
      responses: { 200: z.object({ row: z.record(z.string(), z.unknown()), token: TokenSchema }), 400: 'error', 404: 'error', 503: 'error' },
    },
    async (req, _reply, { params }) => {
      const t = engine.readable(params.table, callerOf(req));
      if (t.schema.kind !== 'pk') throw new AsofError('ASOF_INVALID_ARGUMENT', `table "${t.name}" is a log table; read it with /changelog`, [{ field: 'table', reason: 'not a pk table' }]);
      const token = { [t.name]: t.endOffset - 1 };
      const row = t.get(t.schema.parseKey(params.key));
      if (!row) throw new AsofError('ASOF_ROW_NOT_FOUND', `table "${t.name}" has no row with key ${JSON.stringify(params.key)}`, { key: params.key, token });
      return { row: t.schema.rowToJson(row), token };
    },
  );

  route(
    app,
    {
      method: 'GET',
      url: '/tables/:table/changelog',
      operationId: 'getChangelog',
      scope: 'read',
      summary: 'Read the changelog, or follow it live',
      description:
        'Records in offset order from `from`. `key` limits them to one key (a single-column key, or a JSON object for a composite key). With `Accept: text/event-stream` the answer is a live stream: one `record` event per record (`id:` its offset), the existing ones first, then new ones as they are committed. A `Last-Event-ID` header (what an EventSource sends when it reconnects: the id of the last record it received) resumes after that offset, whatever `from` says; one that is not an offset is a 400.',
      tags: ['tables'],
      params: TableParams,
      query: z.strictObject({
        from: z.coerce.number().int().min(0).default(0),
        limit: z.coerce.number().int().min(1).max(10_000).default(1000),
        key: z.string().optional(),
      }),
      responses: {
        200: z.object({ records: z.array(ChangeRecordSchema), nextOffset: z.number().int() }),
        400: 'error',
        404: 'error',
        503: 'error',
      },
    },
    async (req, reply, { params, query }) => {
      const t = engine.readable(params.table, callerOf(req));
      const key = query.key === undefined ? undefined : t.schema.parseKey(parseKeyParam(query.key));
      if ((req.headers.accept ?? '').includes('text/event-stream')) {
        const from = resumeAfter(req.headers['last-event-id']) ?? query.from;
        // A place among the follows (429 when all are taken), before the answer's head is written.
        followChangelog(req, reply, t, from, key, admission.enterFollow(), follows);
        return reply;
      }
      const records: ReturnType<typeof recordJson>[] = [];
      let next = query.from;
      for await (const r of t.scan({ fromOffset: query.from, key, limit: query.limit })) {
        records.push(recordJson(t, r));
        next = r.offset + 1;
      }
      return { records, nextOffset: next };
    },
  );
}

function parseKeyParam(text: string): unknown {
  if (text.startsWith('{')) {
    try {
      return JSON.parse(text);
    } catch {
      throw new AsofError('ASOF_INVALID_ARGUMENT', 'key looks like a JSON object but does not parse', [{ field: 'query.key', reason: 'invalid JSON' }]);
    }
  }
  return text;
}

/**
 * Where a reconnecting EventSource resumes: the offset after its
 * `Last-Event-ID` (the `id:` of the last record it received; it repeats the
 * first URL, so this wins over `from`). Undefined when the header is absent or
 * empty (an EventSource sends none then); 400 when it is not an offset.
 */
function resumeAfter(header: string | string[] | undefined): number | undefined {
  if (header === undefined || header === '') return undefined;
  const offset = typeof header === 'string' && /^\d{1,16}$/.test(header) ? Number(header) : NaN;
  if (!Number.isSafeInteger(offset + 1)) {
    const shown = JSON.stringify(String(header).slice(0, 64));
    throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid Last-Event-ID ${shown}: it must be the offset of a changelog record (the id: of an event this stream sent)`, [{ field: 'headers.last-event-id', reason: 'not a changelog offset' }]);
  }
  return offset + 1;
}

type TableT = ReturnType<Engine['table']>;

/** Ends a live SSE follow with an error event (shutdown). */
type FollowRegistry = Set<(err: AsofError) => void>;

function recordJson(t: TableT, r: ChangeRecord) {
  return { offset: r.offset, changeType: r.changeType, commitTime: formatTimestamp(r.commitTime), row: t.schema.rowToJson(r.row) };
}

/**
 * Streams the changelog as server-sent events: catch up from `from`, then
 * follow commits, each record once, in offset order (engine/follow.ts). Writes
 * wait for the client ('drain'): a client that reads slowly or not at all
 * holds no records on the server, and one that goes away stops the read.
 *
 * The answer is written here, not by Fastify (hijacked), so what Fastify's
 * hooks would do is done here: the headers set so far (x-request-id) go with
 * the head, the request is counted in the HTTP metrics when it ends (onResponse
 * never runs for a hijacked reply), and a failure is sent in the catalogue's
 * shape, logged when it is not one the catalogue names.
 */
function followChangelog(req: FastifyRequest, reply: FastifyReply, t: TableT, from: number, key: string | undefined, release: () => void, follows: FollowRegistry): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { ...(reply.getHeaders() as OutgoingHttpHeaders), 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  // A client whose buffer is full gets no heartbeat: it is not reading, and nothing is queued for it.
  const heartbeat = setInterval(() => {
    if (!res.writableNeedDrain) res.write(': keep-alive\n\n');
  }, 15_000);
  /** Ends the stream with `e` as an `error` event (once; nothing is sent after it). */
  const endWith = (e: AsofError): void => {
    clearInterval(heartbeat);
    follows.delete(shut);
    if (!res.writableEnded) res.end(`event: error\ndata: ${JSON.stringify(e.toJSON())}\n\n`);
  };
  const stop = follow(t, { from, key }, {
    send: (r) => res.write(`id: ${r.offset}\nevent: record\ndata: ${JSON.stringify(recordJson(t, r))}\n\n`),
    drained: () => new Promise((resolve) => res.once('drain', resolve)),
    fail: (err) => {
      const e = isAsofError(err) ? err : new AsofError('ASOF_INTERNAL', 'internal error');
      if (e.httpStatus >= 500) req.log.error({ err }, `changelog follow failed: ${e.message}`);
      endWith(e);
    },
  });
  // The server is closing: stop reading and end the stream with ASOF_NOT_READY.
  const shut = (e: AsofError): void => {
    stop();
    endWith(e);
  };
  follows.add(shut);
  // The connection closed (the client went away, the follow failed, or the server is shutting down): stop reading for it.
  res.on('close', () => {
    clearInterval(heartbeat);
    follows.delete(shut);
    stop();
    release();
    requestObserver(req.routeOptions.url ?? req.url, req.method)(res.statusCode, reply.elapsedTime);
  });
}
