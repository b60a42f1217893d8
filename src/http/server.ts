/**
 * The REST adapter: Fastify with the OpenAPI document generated from the
 * routes' zod schemas, one error shape, auth, health and metrics.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { AsofError, isAsofError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import { componentSchemas, route } from './route.js';
import { tableRoutes } from './tables.js';
import { metricsText, observeRequest } from './metrics.js';

export interface HttpOptions {
  logger: Logger;
  maxBodyBytes: number;
  apiKeys: string[];
  /** Called by /readyz. */
  ready: () => boolean;
  version: string;
}

/** Route plugins registered by later modules (features, training sets...) hook in here. */
export type RoutePlugin = (app: FastifyInstance, services: Services) => void;

const PUBLIC_PATHS = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);

/**
 * A fast lane answers some requests of a hot route before Fastify routes
 * them, or returns false to leave the request to Fastify untouched (it then
 * answers as it always would, errors included). Fastify's routing, request
 * and reply objects and hooks cost several µs a request on the benchmark
 * machine (up to 17 µs under load), more than a whole cached lookup. A lane
 * that has taken a request and must wait (a Redis read) may still hand it on
 * by calling `toFastify`, as long as it has written nothing. Lanes run only
 * when nothing needs Fastify's per-request machinery: no per-request logs,
 * and the request authenticated by the same check as the auth hook.
 */
export type FastLane = (req: IncomingMessage, res: ServerResponse, toFastify: () => void) => boolean;
const fastLanes = new WeakMap<FastifyInstance, { prefix: string; lane: FastLane }[]>();

/**
 * Adds a fast lane for request paths starting with `prefix` to a server built
 * by buildHttpServer (a no-op for other instances). Other requests never
 * reach it, nor pay for its API-key check.
 */
export function addFastLane(app: FastifyInstance, prefix: string, lane: FastLane): void {
  fastLanes.get(app)?.push({ prefix, lane });
}

export async function buildHttpServer(services: Services, opts: HttpOptions, plugins: RoutePlugin[] = []): Promise<FastifyInstance> {
  // A child logger per request costs more than a lookup; below info nothing would use it, so requests share the root logger then.
  const perRequestLogs = (opts.logger as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info') ?? true;
  const keys = opts.apiKeys.map((k) => Buffer.from(k));
  const lanes: { prefix: string; lane: FastLane }[] = [];
  let closing = false;
  const app = Fastify({
    serverFactory: (handler, options) => {
      const o = options as { keepAliveTimeout?: number; requestTimeout?: number; connectionTimeout?: number };
      const server = createServer((req, res) => {
        if (!perRequestLogs && !closing) {
          const url = req.url ?? '';
          for (const { prefix, lane } of lanes) {
            if (!url.startsWith(prefix) || (keys.length !== 0 && authFailure(keys, req.headers) !== undefined)) continue;
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
      components: opts.apiKeys.length ? { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } } : undefined,
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

  if (keys.length) {
    app.addHook('onRequest', async (req) => {
      const path = req.url.split('?')[0];
      if (PUBLIC_PATHS.has(path) || path.startsWith('/docs')) return;
      const failure = authFailure(keys, req.headers);
      if (failure) throw new AsofError('ASOF_UNAUTHENTICATED', failure);
    });
  }
  // Callback style: no promise per request on the hot paths.
  app.addHook('onResponse', (req, reply, done) => {
    observeRequest(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode, reply.elapsedTime);
    done();
  });

  route(app, { method: 'GET', url: '/healthz', summary: 'Liveness: the process serves', tags: ['operations'], responses: { 200: z.object({ status: z.literal('ok') }) } }, async () => ({ status: 'ok' as const }));
  route(
    app,
    { method: 'GET', url: '/readyz', summary: 'Readiness: recovery is done and backends answer', tags: ['operations'], responses: { 200: z.object({ status: z.literal('ready') }), 503: 'error' } },
    async () => {
      if (!opts.ready()) throw new AsofError('ASOF_NOT_READY', 'not ready');
      return { status: 'ready' as const };
    },
  );
  route(
    app,
    { method: 'GET', url: '/metrics', summary: 'Prometheus metrics', tags: ['operations'], responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain' } } },
    async (_req, reply) => {
      void reply.type('text/plain; version=0.0.4');
      return metricsText(services);
    },
  );
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  tableRoutes(app, services);
  for (const p of plugins) p(app, services);
  await app.ready();
  return app;
}

/** Why a request's API key is not accepted, or undefined when it is. */
function authFailure(keys: Buffer[], headers: IncomingMessage['headers']): string | undefined {
  const auth = headers.authorization;
  const given = auth?.startsWith('Bearer ') ? auth.slice(7) : (headers['x-api-key'] as string | undefined);
  if (!given) return 'an API key is required: send "Authorization: Bearer <key>"';
  const g = Buffer.from(given);
  if (!keys.some((k) => k.length === g.length && timingSafeEqual(k, g))) return 'the API key is not valid';
  return undefined;
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
