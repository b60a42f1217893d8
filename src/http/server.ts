/**
 * The REST adapter: Fastify with the OpenAPI document generated from the
 * routes' zod schemas, one error shape, auth, health and metrics.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { UNRESTRICTED, bearerKey, type Access, type ApiKeys, type Caller } from '../access.js';
import { AsofError, isAsofError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import { componentSchemas, route } from './route.js';
import { tableRoutes } from './tables.js';
import { metricsText, observeRequest } from './metrics.js';

export interface HttpOptions {
  logger: Logger;
  maxBodyBytes: number;
  /** The configured API keys (access.ts); every route declares the access it needs. */
  keys: ApiKeys;
  /** Serve /metrics without a key even when keys are set. */
  metricsOpen?: boolean;
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
  }
}

const callers = new WeakMap<object, Caller>();
const declared = new WeakMap<FastifyInstance, { method: string; url: string; access: Access }[]>();
/** Every route of a server built by buildHttpServer with the access it declared (Swagger UI's /docs routes excepted: public). */
export const declaredRoutes = (app: FastifyInstance): readonly { method: string; url: string; access: Access }[] => declared.get(app) ?? [];
/** The caller authorized for this request (UNRESTRICTED when auth is off), for rules that depend on the request (e.g. a lookup that records a decision needs `decide`). */
export const callerOf = (req: { raw: object }): Caller => callers.get(req.raw) ?? UNRESTRICTED;

/**
 * A fast lane answers some requests of a hot route before Fastify routes
 * them, or returns false to leave the request to Fastify untouched (it then
 * answers as it always would, errors included). Fastify's routing, request
 * and reply objects and hooks cost several µs a request on the benchmark
 * machine (up to 17 µs under load), more than a whole cached lookup. A lane
 * that has taken a request and must wait (a Redis read) may still hand it on
 * by calling `toFastify`, as long as it has written nothing. Lanes run only
 * when nothing needs Fastify's per-request machinery: no per-request logs,
 * and the request authorized for the lane's `access` by the same check as the
 * auth hook (a request that fails it goes to Fastify, which refuses it).
 */
export type FastLane = (req: IncomingMessage, res: ServerResponse, toFastify: () => void) => boolean;
interface Lane {
  prefix: string;
  access: Access;
  lane: FastLane;
}
const fastLanes = new WeakMap<FastifyInstance, Lane[]>();

/**
 * Adds a fast lane for request paths starting with `prefix` to a server built
 * by buildHttpServer (a no-op for other instances), needing the same `access`
 * as the route it stands for. Other requests never reach it, nor pay for its
 * API-key check.
 */
export function addFastLane(app: FastifyInstance, prefix: string, access: Access, lane: FastLane): void {
  fastLanes.get(app)?.push({ prefix, access, lane });
}

/** True when the request's key grants `access` (the lane then may answer; otherwise Fastify answers 401/403). */
function laneAllows(keys: ApiKeys, access: Access, req: IncomingMessage): boolean {
  if (!keys.enabled) return true;
  try {
    callers.set(req, keys.authorize(bearerKey(req.headers.authorization, req.headers['x-api-key']), access));
    return true;
  } catch {
    return false;
  }
}

export async function buildHttpServer(services: Services, opts: HttpOptions, plugins: RoutePlugin[] = []): Promise<FastifyInstance> {
  // A child logger per request costs more than a lookup; below info nothing would use it, so requests share the root logger then.
  const perRequestLogs = (opts.logger as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info') ?? true;
  const keys = opts.keys;
  const lanes: Lane[] = [];
  let closing = false;
  const app = Fastify({
    serverFactory: (handler, options) => {
      const o = options as { keepAliveTimeout?: number; requestTimeout?: number; connectionTimeout?: number };
      const server = createServer((req, res) => {
        if (!perRequestLogs && !closing) {
          const url = req.url ?? '';
          for (const { prefix, access, lane } of lanes) {
            if (!url.startsWith(prefix) || !laneAllows(keys, access, req)) continue;
            if (lane(req, res, () => handler(req, res))) return;
          }
        }
        handler(req, res);
      });
      // What Fastify sets on the server it makes itself.
      server.keepAliveTimeout = o.keepAliveTimeout ?? 72_000;
      server.requestTimeout = o.requestTimeout ?? 0;
      server.setTimeout(o.connectionTimeout ?? 0);
      return server;
    },
    loggerInstance: opts.logger as unknown as FastifyBaseLogger,
    bodyLimit: opts.maxBodyBytes,
    // Keep-alive connections from load balancers outlive Node's default of 5 s.
    keepAliveTimeout: 65_000,
    logController: new LogController({ disableRequestLogging: !perRequestLogs }),
    childLoggerFactory: (logger, bindings, childOpts) => (perRequestLogs ? logger.child(bindings, childOpts) : logger),
  });

  fastLanes.set(app, lanes);
  app.addHook('preClose', (done) => {
    closing = true;
    done();
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

  app.setErrorHandler((err: FastifyError | AsofError, req, reply) => {
    const e = toAsofError(err);
    if (e.httpStatus >= 500) req.log.error({ err, reqId: req.id }, e.message);
    void reply.code(e.httpStatus).type('application/json').send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new AsofError('ASOF_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`).toJSON());
  });

  // Every route from here on states its access: a route without one fails the server's start (and so every test).
  const routes: { method: string; url: string; access: Access }[] = [];
  declared.set(app, routes);
  app.addHook('onRoute', (r) => {
    if (r.config?.access !== undefined) for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m, url: r.url, access: r.config.access });
    if (r.config?.access === undefined) throw new Error(`route ${String(r.method)} ${r.url} declares no access: give it a scope (read, write, decide, admin, audit), 'authenticated' or 'public' (see src/access.ts)`);
  });
  if (keys.enabled) {
    // Callback style: no promise per request. Swagger UI's own routes (/docs) are public, like /openapi.json; an unmatched path needs a valid key, so 404s reveal nothing to strangers.
    app.addHook('onRequest', (req, _reply, done) => {
      const access = req.routeOptions.config?.access ?? (req.routeOptions.url?.startsWith('/docs') ? 'public' : 'authenticated');
      try {
        callers.set(req.raw, keys.authorize(bearerKey(req.headers.authorization, req.headers['x-api-key']), access));
      } catch (e) {
        return done(e as Error);
      }
      done();
    });
  }
  // Callback style: no promise per request on the hot paths.
  app.addHook('onResponse', (req, reply, done) => {
    observeRequest(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode, reply.elapsedTime);
    done();
  });

  route(app, { method: 'GET', url: '/healthz', operationId: 'getHealth', scope: 'public', summary: 'Liveness: the process serves', tags: ['operations'], responses: { 200: z.object({ status: z.literal('ok') }) } }, async () => ({ status: 'ok' as const }));
  route(
    app,
    { method: 'GET', url: '/readyz', operationId: 'getReadiness', scope: 'public', summary: 'Readiness: recovery is done and backends answer', tags: ['operations'], responses: { 200: z.object({ status: z.literal('ready') }), 503: 'error' } },
    async () => {
      if (!opts.ready()) throw new AsofError('ASOF_NOT_READY', 'not ready');
      return { status: 'ready' as const };
    },
  );
  route(
    app,
    { method: 'GET', url: '/metrics', operationId: 'getMetrics', scope: opts.metricsOpen ? 'public' : 'authenticated', summary: 'Prometheus metrics', tags: ['operations'], responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain' } } },
    async (_req, reply) => {
      void reply.type('text/plain; version=0.0.4');
      return metricsText(services);
    },
  );
  app.get('/openapi.json', { schema: { hide: true }, config: { access: 'public' } }, async () => app.swagger());

  tableRoutes(app, services);
  for (const p of plugins) p(app, services);
  await app.ready();
  return app;
}

const sortedComponents = (): Record<string, unknown> => Object.fromEntries(Object.entries(componentSchemas).sort(([a], [b]) => a.localeCompare(b)));

/** Fastify's own errors (body limits, bad JSON, media types) mapped into the catalogue. */
export function toAsofError(err: unknown): AsofError {
  if (isAsofError(err)) return err;
  const e = err as FastifyError;
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AsofError('ASOF_PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${e.message.match(/\d+/)?.[0] ?? 'the configured'} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AsofError('ASOF_UNSUPPORTED_MEDIA_TYPE', e.message);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AsofError('ASOF_INVALID_ARGUMENT', 'the body is empty; send a JSON object', [{ field: 'body', reason: 'empty' }]);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AsofError('ASOF_INVALID_ARGUMENT', e.message, [{ field: 'body', reason: e.message }]);
  }
  if (err instanceof SyntaxError || e.statusCode === 400) return new AsofError('ASOF_INVALID_ARGUMENT', `malformed request: ${e.message}`, [{ field: 'body', reason: e.message }]);
  if (e.statusCode === 413) return new AsofError('ASOF_PAYLOAD_TOO_LARGE', e.message);
  if (e.statusCode === 415) return new AsofError('ASOF_UNSUPPORTED_MEDIA_TYPE', e.message);
  return new AsofError('ASOF_INTERNAL', 'internal error');
}
