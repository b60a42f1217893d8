/**
 * The REST adapter: Fastify with the OpenAPI document generated from the
 * routes' zod schemas, one error shape, auth, health and metrics.
 */
import Fastify, { type preParsingHookHandler, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { parse as parseQuery } from 'fast-querystring';
import { z } from 'zod';
import { UNRESTRICTED, bearerKey, type Access, type ApiKeys, type Caller } from '../access.js';
import { retryAfterOf, type Admission, type Gate, type WorkKind } from '../admission.js';
import { requestIdOf } from '../request-id.js';
import { AsofError, isAsofError } from '../errors.js';
import { onlineStoreErrors } from '../metrics.js';
import { decodeUtf8, MAX_JSON_BODY_DEPTH, noteRowsText, parseJsonText } from '../engine/json-safety.js';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import { componentSchemas, RAW_JSON, route, unsupportedMediaType } from './route.js';
import { tableRoutes } from './tables.js';
import { metricsText, requestObserver } from './metrics.js';
import { requestLoggers } from './request-logger.js';
import { bodyDeadline } from './body-deadline.js';
import { meterUnknownLength, unknownLength, UNKNOWN_LENGTH_START } from './body-budget.js';

export interface HttpOptions {
  logger: Logger;
  maxBodyBytes: number;
  /** The configured API keys (access.ts); every route declares the access it needs. */
  keys: ApiKeys;
  /** Serve /metrics without a key even when keys are set. */
  metricsOpen?: boolean;
  /** Bounds on work in flight, shared with the gRPC server. */
  admission: Admission;
  /** Called by /readyz. */
  ready: () => boolean;
  version: string;
}

/** Route plugins registered by later modules (features, training sets...) hook in here. */
export type RoutePlugin = (app: FastifyInstance, services: Services) => void;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route needs (access.ts); route() sets it from the spec, and buildHttpServer refuses a route without it. */
    access?: Access;
    /** A hot lookup route (below). */
    hot?: boolean;
    /** The route's kind of bounded work (admission.ts), if any. */
    work?: WorkKind;
    /** The body is parsed into memory before the handler runs (its declared size counts against the byte budget). */
    bodyInMemory?: boolean;
    /** The route's checkBody hands every row to the row validator, so the JSON body parser skips its depth walk. */
    rowsChecked?: boolean;
    /** The route's JSON body is rows for its `:table`, offered to the ingest threads first (route.ts). */
    rowsOffThread?: boolean;
    /** The route's handler reads its JSON body's text (rawJsonOf), kept by the body parser. */
    keepText?: boolean;
    /** The body media types the route takes (route.ts), named in its 415. */
    accepts?: string[];
  }
}

const callers = new WeakMap<object, Caller>();
const declared = new WeakMap<FastifyInstance, { method: string; url: string; access: Access }[]>();
/** Every route of a server built by buildHttpServer with the access it declared (Swagger UI's /docs routes excepted: public). */
export const declaredRoutes = (app: FastifyInstance): readonly { method: string; url: string; access: Access }[] => declared.get(app) ?? [];
/** The caller authorized for this request (UNRESTRICTED when auth is off), for rules that depend on the request (e.g. a lookup that records a decision needs `decide`). */
export const callerOf = (req: { raw: object }): Caller => callers.get(req.raw) ?? UNRESTRICTED;

/** Longest path parameter, characters: table names are at most 128; a key in a path may be longer. */
export const MAX_PATH_PARAM = 4096;

/**
 * The hot lookup routes (`GET /features/{entity}`, `POST /features`, Feast's
 * lookup) declare `config: { hot: true }`: at the default `LOG_LEVEL=info`
 * they log at warn, so their requests are not logged one by one (two lines
 * per request cost about as much as a cached lookup); errors still are, with
 * the request id, and the request's logger is only made when a line is
 * written (request-logger.ts). At `debug` or `trace` they are logged like
 * every other route. Everything else (routing, every hook, serializers) is
 * the same for them.
 */

/** Pino's levels, quietest last. */
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export async function buildHttpServer(services: Services, opts: HttpOptions, plugins: RoutePlugin[] = []): Promise<FastifyInstance> {
  const rootLevel = (opts.logger as { level?: string }).level ?? 'info';
  // The level of hot routes: warn, unless the configured level is quieter, or asks for debug output.
  const hotLevel = LEVELS.indexOf(rootLevel) < LEVELS.indexOf('info') ? rootLevel : LEVELS[Math.max(LEVELS.indexOf(rootLevel), LEVELS.indexOf('warn'))];
  const keys = opts.keys;
  const app = Fastify({
    loggerInstance: requestLoggers(opts.logger as unknown as FastifyBaseLogger),
    bodyLimit: opts.maxBodyBytes,
    // Table names may be 128 characters (Fastify's default allows 100); keys in paths somewhat more.
    routerOptions: { maxParamLength: MAX_PATH_PARAM, querystringParser: rememberedQueries() },
    // Errors Fastify answers before any route runs (a bad %-escape, an over-long parameter) take asof's shape too.
    frameworkErrors: (err, _req, reply) => {
      const e = toAsofError(err, opts.maxBodyBytes);
      void (reply as FastifyReply).code(e.httpStatus).type('application/json').send(e.toJSON());
    },
    // Keep-alive connections from load balancers outlive Node's default of 5 s.
    keepAliveTimeout: 65_000,
    // While closing, requests on open connections get asof's 503 (the onRequest hook below), not Fastify's own body.
    return503OnClosing: false,
    // A caller's own x-request-id (a sane one) names the request in logs and in the answer's header; otherwise one is made.
    genReqId: (req) => requestIdOf(req.headers['x-request-id']),
  });
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  // Every route gets its own onRequest and onResponse hooks, made for it when it is added (routeHooks below):
  // what they need of the route (its access, kind of work, metrics series) is resolved once, not per request.
  const hooksFor = routeHooks({ keys, admission: opts.admission, maxBodyBytes: opts.maxBodyBytes, closing: () => closing });
  app.addHook('onRoute', (r) => {
    if (r.config?.hot && !r.logLevel) (r as { logLevel?: string }).logLevel = hotLevel;
    // Swagger UI's own routes (/docs) are public, like /openapi.json; a route that declares nothing needs a valid key.
    const access = r.config?.access ?? (r.url.startsWith('/docs') ? 'public' : 'authenticated');
    const hooks = hooksFor({ access, work: r.config?.work, bodyInMemory: r.config?.bodyInMemory === true, url: r.url, method: r.method });
    r.onRequest = [...withoutOwn(r.onRequest), hooks.onRequest];
    r.onResponse = [...withoutOwn(r.onResponse), hooks.onResponse];
    if (hooks.preParsing) r.preParsing = [...(withoutOwn(r.preParsing) as unknown as PayloadHook[]), hooks.preParsing];
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'asof',
        version: opts.version,
        description: 'Real-time feature and context store. Errors: `{"error": {"code": "ASOF_...", "message": "...", "details": ...}}`.',
      },
      components: keys.enabled ? { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } } : undefined,
    },
    transformObject: (obj) => {
      const doc = ('openapiObject' in obj ? obj.openapiObject : obj.swaggerObject) as { components?: { schemas?: Record<string, unknown> } };
      doc.components = { ...doc.components, schemas: { ...doc.components?.schemas, ...sortedComponents() } };
      return doc as never;
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // Our serializer: plain JSON.stringify, so answers are exactly what handlers return.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  // JSON bodies: valid UTF-8, reserved names and surrogates checked (json-safety.ts). Routes
  // with a row validator (`checkBody`) skip the depth walk, as it checks every value itself.
  app.removeContentTypeParser(['application/json', 'text/plain']);
  const parseJson = (req: FastifyRequest, buf: Buffer, done: (err: Error | null, body?: unknown) => void): void => {
    try {
      if (buf.length === 0) throw new AsofError('ASOF_INVALID_ARGUMENT', 'the body is empty; send a JSON object', [{ field: 'body', reason: 'empty' }]);
      const text = decodeUtf8(buf, 'the body');
      // Kept only for a keyed write's fingerprint: held by every request, 100 kB of text per 1,000-row write was copied by each young-generation collection while it waited for its fsync.
      if (req.headers['idempotency-key'] || req.routeOptions.config?.keepText === true) (req as { [RAW_JSON]?: string })[RAW_JSON] = text;
      const rowsChecked = req.routeOptions.config?.rowsChecked === true;
      const body = parseJsonText(text, rowsChecked ? {} : { maxDepth: MAX_JSON_BODY_DEPTH }) as { rows?: unknown } | null;
      // Rows that may hold a number a float64 bends keep their text: only it shows one (ingest/bent-columns.ts).
      if (rowsChecked && Array.isArray(body?.rows) && services.ingest.keepsBodyText((req.params as { table?: string }).table ?? '', buf)) noteRowsText(body.rows, { text });
      done(null, body);
    } catch (e) {
      done(e as Error, undefined);
    }
  };
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const buf = body as Buffer;
    // Rows for a table: an ingest thread may parse and validate them (IngestService.parseJsonBody). Keyed writes keep the text here, for their fingerprint.
    if (req.routeOptions.config?.rowsOffThread && !req.headers['idempotency-key']) {
      const off = services.ingest.parseJsonBody((req.params as { table?: string }).table ?? '', buf);
      if (off) {
        off.then(
          (parsed) => (parsed ? done(null, parsed) : parseJson(req, buf, done)),
          () => parseJson(req, buf, done),
        );
        return;
      }
    }
    parseJson(req, buf, done);
  });

  app.setErrorHandler((err: FastifyError | AsofError, req, reply) => {
    const e = toAsofError(err, opts.maxBodyBytes, req.headers['content-type'], req.routeOptions.config.accepts);
    if (e.httpStatus >= 500) req.log.error({ err }, e.message);
    const retryAfter = retryAfterOf(e);
    if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
    if (e.code === 'ASOF_BACKEND_UNAVAILABLE') onlineStoreErrors.count++;
    void reply.code(e.httpStatus).type('application/json').send(e.toJSON());
  });
  // Requests that match no route (404s) get the same request id, shutdown answer and key check
  // ('authenticated': an unmatched path reveals nothing to strangers) as routes (onRoute above), from hooks
  // of the not-found handler's own context: hooks added to the server would run on every route too.
  const unmatched = hooksFor({ access: 'authenticated', bodyInMemory: false, url: 'unmatched', method: [] });
  await app.register(async (notFound) => {
    notFound.addHook('onRequest', unmatched.onRequest);
    notFound.addHook('onResponse', unmatched.onResponse);
    notFound.setNotFoundHandler((req, reply) => {
      void reply.code(404).send(new AsofError('ASOF_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON());
    });
  });

  // Every route from here on states its access: a route without one fails the server's start (and so every test).
  const routes: { method: string; url: string; access: Access }[] = [];
  declared.set(app, routes);
  app.addHook('onRoute', (r) => {
    if (r.config?.access !== undefined) for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m, url: r.url, access: r.config.access });
    if (r.config?.access === undefined) throw new Error(`route ${String(r.method)} ${r.url} declares no access: give it a scope (read, write, decide, admin, audit), 'authenticated' or 'public' (see src/access.ts)`);
  });

  route(app, { method: 'GET', url: '/healthz', operationId: 'getHealth', scope: 'public', summary: 'Liveness: the process serves', tags: ['operations'], responses: { 200: z.object({ status: z.literal('ok') }) } }, async () => ({ status: 'ok' as const }));
  route(
    app,
    { method: 'GET', url: '/readyz', operationId: 'getReadiness', scope: 'public', summary: 'Readiness: recovery is done and backends answer', tags: ['operations'], responses: { 200: z.object({ status: z.literal('ready') }), 503: 'error' } },
    async () => {
      if (!opts.ready()) throw new AsofError('ASOF_NOT_READY', 'not ready');
      // A load balancer should stop sending lookups here while Redis is away: they would all answer 503.
      if (services.onlineStore.healthy?.() === false) throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (${services.onlineStore.kind}) is unreachable`, { store: services.onlineStore.kind });
      // Another primary took one of this primary's names in the shared store: the views it covers answer 503.
      const lost = services.materializer.lostName();
      if (lost) throw lost;
      return { status: 'ready' as const };
    },
  );
  route(
    app,
    {
      method: 'GET',
      url: '/metrics',
      operationId: 'getMetrics',
      scope: opts.metricsOpen ? 'public' : 'authenticated',
      summary: 'Prometheus metrics',
      description: "Per-table series name only the tables the key may read, as GET /tables lists them: asof's internal tables (the decision log) only to a key with the audit scope (also when ASOF_METRICS_OPEN serves /metrics without a key).",
      tags: ['operations'],
      responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain' } },
    },
    async (req, reply) => {
      void reply.type('text/plain; version=0.0.4');
      return metricsText(services, callerOf(req), opts.admission);
    },
  );
  app.get('/openapi.json', { schema: { hide: true }, config: { access: 'public' } }, async () => app.swagger());

  tableRoutes(app, services, opts.admission);
  for (const p of plugins) p(app, services);
  await app.ready();
  return app;
}

/** What a route's hooks need to know of it, resolved when it is added. */
interface RoutePolicy {
  access: Access;
  work?: WorkKind;
  bodyInMemory: boolean;
  /** The route's URL pattern, the metrics label (`unmatched` for 404s). */
  url: string;
  method: string | string[];
}

type Hook = (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void;
type PayloadHook = preParsingHookHandler;
const OWN = Symbol('asof.routeHook');
const own = <H extends Hook | PayloadHook>(h: H): H => Object.assign(h, { [OWN]: true });
/** A route's hooks without the ones routeHooks made (a route's options may be added again, e.g. as its HEAD twin). */
const withoutOwn = (hooks: unknown): Hook[] => [hooks ?? []].flat().filter((h) => !(h as { [OWN]?: boolean })[OWN]) as Hook[];

/**
 * The onRequest and onResponse hooks of one route. onRequest: the request id
 * on every answer (errors included); asof's 503 while closing; the API key for
 * the route's access; then bounded work (admission.ts), before the body is
 * read: a request that waits here waits unread in the socket. preParsing
 * (write routes that read their body into memory): a body of unknown length
 * takes its share of the write byte budget as it arrives (body-budget.ts).
 * onResponse: the request's metrics. Callback style: no promise per request.
 */
function routeHooks(ctx: { keys: ApiKeys; admission: Admission; maxBodyBytes: number; closing: () => boolean }) {
  const { keys, admission, maxBodyBytes } = ctx;
  const gates = admission.gates;
  const startOfUnknown = Math.min(UNKNOWN_LENGTH_START, maxBodyBytes);
  return (policy: RoutePolicy): { onRequest: Hook; onResponse: Hook; preParsing?: PayloadHook } => {
    const { access, bodyInMemory } = policy;
    const gate = policy.work === undefined ? undefined : gates[policy.work];
    const onRequest: Hook = (req, reply, done) => {
      void reply.header('x-request-id', req.id);
      if (ctx.closing()) {
        void reply.header('connection', 'close');
        return done(new AsofError('ASOF_NOT_READY', 'the server is shutting down; retry on another instance or after the restart'));
      }
      let slot: ReturnType<Gate['enter']> | undefined;
      try {
        if (keys.enabled) callers.set(req.raw, keys.authorize(bearerKey(req.headers.authorization, req.headers['x-api-key']), access));
        // A body without a declared length (chunked) is counted at what it holds when it starts; it takes more as it arrives (preParsing).
        if (gate !== undefined) slot = gate.enter(!bodyInMemory ? 0 : unknownLength(req) ? startOfUnknown : Number(req.headers['content-length']) || 0);
      } catch (e) {
        return done(e as Error);
      }
      if (slot === undefined) return done();
      if (typeof slot === 'function') {
        hold(req, reply, slot);
        bodyDeadline(req, reply, admission, bodyInMemory);
        return done();
      }
      slot.then(
        (release) => {
          hold(req, reply, release);
          bodyDeadline(req, reply, admission, bodyInMemory);
          done();
        },
        (e: Error) => done(e),
      );
    };
    const methods = [policy.method].flat();
    const observers = new Map(methods.map((m) => [m, requestObserver(policy.url, m)]));
    const only = methods.length === 1 ? observers.get(methods[0]) : undefined;
    const onResponse: Hook = (req, reply, done) => {
      let observe = only;
      if (observe === undefined && (observe = observers.get(req.method)) === undefined) observers.set(req.method, (observe = requestObserver(policy.url, req.method)));
      observe(reply.statusCode, reply.elapsedTime);
      done();
    };
    const budgeted = gate !== undefined && bodyInMemory && gate.limits.bytes !== undefined && gate.limits.bytes !== Infinity;
    const preParsing: PayloadHook = (req, reply, payload, done) => done(null, unknownLength(req) && !reply.sent ? meterUnknownLength(reply, gate!, maxBodyBytes, payload) : payload);
    return { onRequest: own(onRequest), onResponse: own(onResponse), preParsing: budgeted ? own(preParsing) : undefined };
  };
}

/**
 * A work slot is held until the answer is written or the connection goes away:
 * 'close' comes in both cases, once. (Releases are idempotent, so the listener
 * is never removed; `on` rather than `once` saves a wrapper per request.)
 */
function hold(req: FastifyRequest, reply: FastifyReply, release: () => void): void {
  if (reply.raw.writableFinished || req.raw.destroyed) return release();
  reply.raw.on('close', release);
}

/**
 * Fastify's query-string parser (fast-querystring, as Fastify uses it) with
 * the answers of recent query strings remembered: lookups repeat the same
 * `?features=...` list, whose parse cost more than the rest of asof's work on
 * a `GET /features/{entity}` (bench/RESULTS.md). The parsed objects are
 * shared by the requests that send the same text, so they are frozen; at most
 * `max` are kept, strings longer than `maxLength` never. The last few texts
 * are compared before the map is asked: comparing a few hundred characters
 * costs less than hashing them.
 */
export function rememberedQueries(max = 1000, maxLength = 4096): (text: string) => Record<string, unknown> {
  let seen = new Map<string, Record<string, unknown>>();
  const recentText: string[] = [];
  const recentParsed: Record<string, unknown>[] = [];
  let next = 0;
  return (text) => {
    for (let i = 0; i < recentText.length; i++) if (recentText[i].length === text.length && recentText[i] === text) return recentParsed[i];
    let parsed = seen.get(text);
    if (parsed === undefined) {
      parsed = parseQuery(text);
      for (const v of Object.values(parsed)) if (Array.isArray(v)) Object.freeze(v);
      Object.freeze(parsed);
      if (text.length > maxLength) return parsed;
      if (seen.size >= max) seen = new Map();
      seen.set(text, parsed);
    }
    recentText[next] = text;
    recentParsed[next] = parsed;
    next = (next + 1) % RECENT_QUERIES;
    return parsed;
  };
}
const RECENT_QUERIES = 4;

const sortedComponents = (): Record<string, unknown> => Object.fromEntries(Object.entries(componentSchemas).sort(([a], [b]) => a.localeCompare(b)));

/**
 * Fastify's own errors (body limits, bad JSON, media types, bad URLs, over-long
 * parameters) mapped into the catalogue. `maxBodyBytes` is named in the 413;
 * `accepts` (the route's body media types) in the 415.
 */
export function toAsofError(err: unknown, maxBodyBytes?: number, contentType?: string, accepts: readonly string[] = ['application/json']): AsofError {
  if (isAsofError(err)) return err;
  const e = err as FastifyError;
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AsofError('ASOF_PAYLOAD_TOO_LARGE', `the request body exceeds the limit of ${maxBodyBytes ?? 'the configured'} bytes (ASOF_MAX_BODY_BYTES)`, maxBodyBytes === undefined ? undefined : { maxBytes: maxBodyBytes });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return unsupportedMediaType(contentType, accepts);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AsofError('ASOF_INVALID_ARGUMENT', 'the body is empty; send a JSON object', [{ field: 'body', reason: 'empty' }]);
    case 'FST_ERR_BAD_URL':
      return new AsofError('ASOF_INVALID_ARGUMENT', 'the URL is not valid: a %-escape in its path does not decode to UTF-8 text', [{ field: 'url', reason: 'bad %-escape' }]);
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new AsofError('ASOF_INVALID_ARGUMENT', `a path parameter is longer than ${MAX_PATH_PARAM} characters`, [{ field: 'params', reason: `longer than ${MAX_PATH_PARAM} characters` }]);
  }
  if (err instanceof SyntaxError || e.statusCode === 400) return new AsofError('ASOF_INVALID_ARGUMENT', `malformed request: ${e.message}`, [{ field: 'body', reason: e.message }]);
  if (e.statusCode === 404) return new AsofError('ASOF_NOT_FOUND', e.message);
  if (e.statusCode === 413) return new AsofError('ASOF_PAYLOAD_TOO_LARGE', e.message);
  if (e.statusCode === 415) return new AsofError('ASOF_UNSUPPORTED_MEDIA_TYPE', e.message);
  if (typeof e.statusCode === 'number' && e.statusCode > 400 && e.statusCode < 500) return new AsofError('ASOF_INVALID_ARGUMENT', `malformed request: ${e.message}`);
  return new AsofError('ASOF_INTERNAL', 'internal error');
}
