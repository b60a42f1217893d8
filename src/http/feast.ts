/**
 * `POST /get-online-features`: Feast's feature-server request and response, so
 * existing Feast clients (the Python SDK's remote online store, plain HTTP
 * callers) work unchanged against asof. The answer is the JSON Feast's server
 * produces from its `GetOnlineFeaturesResponse`: `metadata.feature_names`, then
 * one `{values, statuses, event_timestamps}` per name, entity key columns first.
 */
import { decodeUtf8, MAX_JSON_BODY_DEPTH, parseJsonText } from '../engine/json-safety.js';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { decisionIdsOf, getFeastOnlineFeatures } from '../feast/online.js';
import { feastValueJson, protoJsonTimestamp, toFeastValue } from '../feast/values.js';
import type { Services } from '../services.js';
import { parsePart, route } from './route.js';
import { callerOf } from './server.js';

const FeastRequest = z
  .strictObject({
    features: z.array(z.string()).optional().describe('"view:feature" references. Exactly one of features and feature_service.'),
    feature_service: z.string().optional(),
    entities: z
      .record(z.string(), z.array(z.unknown()))
      .describe('Entity key column → one value per entity row; every list the same length. The column must be the entity key of the requested views.'),
    full_feature_names: z.boolean().default(false).describe('Answer "view__feature" instead of "feature".'),
    request_context: z
      .record(z.string(), z.array(z.unknown()))
      .optional()
      .describe("Feast's request data for on-demand transformations: accepted, as Feast's servers and asof's Feast gRPC accept it, and ignored (asof has none)."),
  })
  .meta({ id: 'FeastGetOnlineFeaturesRequest' });

const FeastResponse = z
  .object({
    metadata: z.object({ feature_names: z.array(z.string()) }),
    results: z.array(
      z.object({
        values: z.array(z.unknown()).describe('One per entity row, typed as Feast renders them (timestamps as epoch seconds; null unless PRESENT).'),
        statuses: z.array(z.enum(['PRESENT', 'NULL_VALUE', 'NOT_FOUND', 'OUTSIDE_MAX_AGE'])),
        event_timestamps: z.array(z.string()).describe('RFC 3339 UTC; 1970-01-01T00:00:00Z where there is none (entity key columns, NOT_FOUND).'),
      }),
    ),
  })
  .meta({ id: 'FeastGetOnlineFeaturesResponse' });

type Body = z.infer<typeof FeastRequest>;

const EPOCH = protoJsonTimestamp(0);

export function feastRoutes(app: FastifyInstance, services: Services): void {
  // Feast's Python client posts its JSON without a Content-Type (and some callers send text/plain):
  // inside this plugin every body is read as JSON.
  void app.register(async (scope) => {
    scope.removeContentTypeParser(['text/plain']);
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => {
      try {
        const text = decodeUtf8(body as Buffer, 'the body');
        done(null, text === '' ? undefined : parseJsonText(text, { maxDepth: MAX_JSON_BODY_DEPTH }));
      } catch (e) {
        done(e as Error, undefined);
      }
    });
    route(
      scope,
      {
        method: 'POST',
        url: '/get-online-features',
        operationId: 'feastGetOnlineFeatures',
        work: 'lookups',
        scope: 'read',
        hot: true,
        summary: 'Online features, in the Feast feature-server format',
        description:
          'Feast\'s `/get-online-features`: `{features | feature_service, entities: {key_column: [values]}, full_feature_names}` → `{metadata: {feature_names}, results: [{values, statuses, event_timestamps}]}`, column-oriented: entity key columns first, then each feature in request order. Features are named `feature`, or `view__feature` with `full_feature_names`. The body is read as JSON whatever its Content-Type. A key Feast\'s request does not have is a 400 (Feast\'s Python server ignores it; its clients send none). The `asof-token` response header carries the read\'s token.',
        tags: ['feast'],
        body: FeastRequest,
        responses: { 200: FeastResponse, 400: 'error', 404: 'error', 503: 'error' },
      },
      async (req, reply, parsed) => {
        const ct = req.headers['content-type'];
        const body: Body = ct === undefined || ct.startsWith('application/json') ? parsed.body : parsePart(FeastRequest, req.body, 'body');
        const answer = await getFeastOnlineFeatures(services, {
          features: body.features,
          featureService: body.feature_service,
          entities: Object.entries(body.entities),
          fullFeatureNames: body.full_feature_names,
          decisionIds: decisionIdsOf(req.headers['asof-decision-id']),
          caller: callerOf(req),
        });
        void reply.header('asof-token', JSON.stringify(answer.token));
        return {
          metadata: { feature_names: answer.columns.map((c) => c.name) },
          results: answer.columns.map((c) => ({
            values: c.values.map((v) => feastValueJson(toFeastValue(c.type, v))),
            statuses: c.statuses,
            event_timestamps: c.eventTimes.map((t) => (t === null ? EPOCH : protoJsonTimestamp(t))),
          })),
        };
      },
    );
  });
}
