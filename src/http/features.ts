/**
 * Routes for feature definitions and online serving. Thin: parsing and
 * shaping only; the registry, the materializer and the online service do the
 * work.
 *
 * The lookup routes answer with JSON text written from precomputed fragments
 * (features-json.ts): lookups are the hot path.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { formatTimestamp } from '../engine/schema.js';
import { formatType, type ColumnType } from '../engine/types.js';
import { AGG_FNS, type FeatureDef, type FeatureServiceDef, type FeatureViewDef } from '../features/definitions.js';
import { MAX_LOOKUP_ENTITIES, type FeatureSelection, type Plan } from '../online/service.js';
import type { Services } from '../services.js';
import { renderMany, renderOne } from './features-json.js';
import { parsePart, route } from './route.js';
import { callerOf } from './server.js';
import type { Caller } from '../access.js';
import { TokenSchema } from './tables.js';

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const Name = z.string().regex(NAME, 'must be a name: letters, digits, _; not starting with a digit');
const Duration = z.string().describe('A duration: a whole number and a unit, ms, s, m, h, d or w (`30s`, `10m`, `1h`, `7d`).');

const FeatureBody = z
  .strictObject({
    name: z.string().describe('The feature name; referenced as `view:name`.'),
    column: z.string().optional().describe("A column feature: the column's latest value."),
    agg: z
      .strictObject({
        fn: z.enum(AGG_FNS),
        column: z.string().optional().describe('The column aggregated; `count` without a column counts records.'),
        window: Duration.describe('The event-time window (t - window, t], from `1s` to `90d`.'),
      })
      .optional()
      .describe('A windowed aggregate over a log table.'),
  })
  .superRefine((f, ctx) => {
    if ((f.column === undefined) === (f.agg === undefined)) ctx.addIssue({ code: 'custom', message: 'give exactly one of "column" or "agg"' });
  })
  .meta({ id: 'FeatureDefinition', description: 'Either `{name, column}` or `{name, agg: {fn, column?, window}}`.' });

const ViewBody = z
  .object({
    source: z.string().describe('The source table.'),
    entity: z.string().describe('The entity key: one column of the source (the primary key of a pk table).'),
    features: z.array(FeatureBody).min(1),
    ttl: Duration.optional().describe('Values whose event time is older than now - ttl are OUTSIDE_MAX_AGE online and null in training sets. Column features only.'),
  })
  .strict()
  .meta({ id: 'FeatureViewDefinition' });

const FeatureInfo = z.object({
  name: z.string(),
  column: z.string().optional(),
  agg: z.object({ fn: z.enum(AGG_FNS), column: z.string().optional(), window: z.string() }).optional(),
  type: z.string().describe("The type of the feature's values."),
});

const ViewInfo = z
  .object({
    name: z.string(),
    source: z.string(),
    entity: z.string(),
    features: z.array(FeatureInfo),
    ttl: z.string().nullable(),
    version: z.number().int().describe('Bumped on every redefinition.'),
    createdAt: z.string(),
    updatedAt: z.string(),
    online: z.object({
      store: z.string().describe('embedded or redis.'),
      status: z.enum(['serving', 'unavailable', 'replica']).describe('replica: served from the shared store, materialized by the primary that holds the source table.'),
      watermark: z.number().int().nullable().describe('Newest source offset the online values reflect; null when unknown.'),
    }),
  })
  .meta({ id: 'FeatureView' });

const ServiceBody = z.object({ features: z.array(z.string()).min(1).describe('`view:feature` references.') }).strict().meta({ id: 'FeatureServiceDefinition' });
const ServiceInfo = z.object({ name: z.string(), features: z.array(z.string()), createdAt: z.string() }).meta({ id: 'FeatureService' });

const Status = z.enum(['PRESENT', 'NOT_FOUND', 'NULL_VALUE', 'OUTSIDE_MAX_AGE']);
const EntityFeaturesSchema = z
  .object({
    entity: z.unknown().describe('The entity key as given.'),
    features: z.record(z.string(), z.unknown()).describe('`view:feature` → value; null unless PRESENT (count aggregates are 0 when nothing is in the window).'),
    statuses: z.record(z.string(), Status),
    eventTimes: z.record(z.string(), z.string().nullable()).describe('When the value happened (RFC 3339); for aggregates, the newest event in the window.'),
    token: TokenSchema,
  })
  .meta({ id: 'EntityFeatures' });

const SelectionQuery = z
  .strictObject({
    features: z.string().optional().describe('Comma-separated `view:feature` references.'),
    view: Name.optional().describe('Every feature of this view.'),
    service: Name.optional().describe("The features of this feature service."),
    decision: z.string().optional().describe('Records this lookup as the decision with this id (see POST /decisions), durably, before answering. An id a lookup of the same entity and selection recorded before answers what that lookup answered (values, statuses, event times, token) and records nothing; an id recorded otherwise is 409.'),
  })
  .describe('Exactly one of features, view or service.');

const BatchBody = z
  .strictObject({
    // The online service holds every adapter to these bounds; here they document the body (OpenAPI).
    entities: z.array(z.unknown()).min(1).max(MAX_LOOKUP_ENTITIES).describe('Entity keys (single-column keys).'),
    features: z.array(z.string()).min(1).optional(),
    view: Name.optional(),
    service: Name.optional(),
    decisions: z.array(z.string().nullable()).optional().describe('One decision id (or null) per entity: records those lookups as decisions, durably, before answering. An entity whose id a lookup of it with the same selection recorded before answers what it answered then (its own token included); an id recorded otherwise is 409.'),
  })
  .meta({ id: 'FeatureLookup', description: 'Entities, and exactly one of features, view or service.' });

function featureInfo(f: FeatureDef, type: ColumnType) {
  return { ...f, type: formatType(type) };
}

export function featureRoutes(app: FastifyInstance, services: Services): void {
  const { registry, online, materializer, audit } = services;

  const viewJson = async (def: FeatureViewDef): Promise<z.infer<typeof ViewInfo>> => {
    const ev = registry.evaluator(def);
    return {
      name: def.name,
      source: def.source,
      entity: def.entity,
      features: def.features.map((f, i) => featureInfo(f, ev.features[i].type)),
      ttl: def.ttl ?? null,
      version: def.version,
      createdAt: formatTimestamp(def.createdAt),
      updatedAt: formatTimestamp(def.updatedAt),
      online: await materializer.onlineStatus(def),
    };
  };
  const serviceJson = (s: FeatureServiceDef) => ({ name: s.name, features: s.features, createdAt: formatTimestamp(s.createdAt) });

  route(
    app,
    {
      method: 'PUT',
      url: '/feature-views/:view',
      operationId: 'putFeatureView',
      scope: 'admin',
      summary: 'Create or redefine a feature view',
      description:
        'Creating answers 201 once the view is backfilled from the existing changelog; redefining answers 200 once the new definition is materialized (the old one serves until then); an identical definition answers 200 and changes nothing. Unknown tables or columns are 400 naming the bad reference.',
      tags: ['features'],
      params: z.object({ view: Name }),
      body: ViewBody,
      responses: { 200: ViewInfo, 201: ViewInfo, 400: 'error', 409: 'error', 503: 'error' },
    },
    async (req, reply, { params, body }) => {
      const { view, created } = await registry.defineView(params.view, body as { source: string; entity: string; features: FeatureDef[]; ttl?: string }, callerOf(req));
      reply.code(created ? 201 : 200);
      return viewJson(view);
    },
  );

  route(app, { method: 'GET', url: '/feature-views', operationId: 'listFeatureViews', scope: 'read', summary: 'List feature views', tags: ['features'], responses: { 200: z.object({ views: z.array(ViewInfo) }) } }, async () => {
    await registry.refresh().catch(() => false);
    return { views: await Promise.all(registry.listViews().map(viewJson)) };
  });

  route(
    app,
    { method: 'GET', url: '/feature-views/:view', operationId: 'getFeatureView', scope: 'read', summary: 'Describe a feature view', tags: ['features'], params: z.object({ view: Name }), responses: { 200: ViewInfo, 404: 'error' } },
    async (_req, _reply, { params }) => viewJson(await registry.findView(params.view)),
  );

  route(
    app,
    {
      method: 'PUT',
      url: '/feature-services/:service',
      operationId: 'putFeatureService',
      scope: 'admin',
      summary: 'Create or redefine a feature service',
      description: 'A named list of `view:feature` references. 201 created, 200 changed or unchanged; unknown references are 400.',
      tags: ['features'],
      params: z.object({ service: Name }),
      body: ServiceBody,
      responses: { 200: ServiceInfo, 201: ServiceInfo, 400: 'error', 409: 'error' },
    },
    async (_req, reply, { params, body }) => {
      const { service, created } = await registry.defineService(params.service, body);
      reply.code(created ? 201 : 200);
      return serviceJson(service);
    },
  );

  route(app, { method: 'GET', url: '/feature-services', operationId: 'listFeatureServices', scope: 'read', summary: 'List feature services', tags: ['features'], responses: { 200: z.object({ services: z.array(ServiceInfo) }) } }, async () => {
    await registry.refresh().catch(() => false);
    return { services: registry.listServices().map(serviceJson) };
  });

  route(
    app,
    { method: 'GET', url: '/feature-services/:service', operationId: 'getFeatureService', scope: 'read', summary: 'Describe a feature service', tags: ['features'], params: z.object({ service: Name }), responses: { 200: ServiceInfo, 404: 'error' } },
    async (_req, _reply, { params }) => serviceJson(await registry.findService(params.service)),
  );

  // Query strings seen before skip zod: the server's query parser hands requests that send the same query
  // text one shared (frozen) object (server.ts, rememberedQueries), and its validated form and selection are kept by it.
  interface Selected {
    query: z.infer<typeof SelectionQuery>;
    selection: FeatureSelection;
  }
  const selected = new WeakMap<object, Selected>();
  // The selection of each validated query, so the handler finds it without another lookup by the raw query.
  const selections = new WeakMap<object, FeatureSelection>();
  const selectedOf = (req: FastifyRequest): Selected => {
    const raw = req.query as object;
    let hit = selected.get(raw);
    if (!hit) {
      const query = parsePart(SelectionQuery, raw, 'query');
      hit = { query, selection: { features: query.features?.split(','), view: query.view, service: query.service } };
      selections.set(query, hit.selection);
      selected.set(raw, hit);
    }
    return hit;
  };

  /** The answer bytes of `GET /features/{entity}` (in-process lookups are gathered per event-loop turn: evaluateSoon). */
  const answerOne = (entity: string, plan: Plan): Promise<Buffer> => online.evaluateSoon([entity], plan).then((e) => renderOne(entity, e).bytes);

  /** `GET /features/{entity}?decision=`: the lookup is recorded as a decision (durable) before the answer is written. */
  const answerRecorded = async (caller: Caller, entity: string, sel: FeatureSelection, id: string): Promise<Buffer> => {
    const plan = await online.plan(sel);
    const e = await online.evaluate([entity], plan);
    // A lookup recorded before under this id answers what it answered then.
    return renderOne(entity, await audit.recordLookups(caller, [id], [entity], e, () => 'query.decision')).bytes;
  };

  route(
    app,
    {
      method: 'GET',
      url: '/features/:entity',
      operationId: 'getOnlineFeatures',
      work: 'lookups',
      scope: 'read',
      hot: true,
      summary: 'Latest feature values of one entity',
      description:
        'Evaluated at now from the online store. Statuses: PRESENT, NOT_FOUND (no row for the entity), NULL_VALUE (the value is null), OUTSIDE_MAX_AGE (older than the view\'s ttl). A row acknowledged by ingest is visible to the next read; `token` names the changelog positions the values reflect. 503 while the online store is unreachable or a view is being rebuilt.',
      tags: ['online'],
      params: z.object({ entity: z.string() }),
      query: SelectionQuery,
      responses: { 200: EntityFeaturesSchema, 400: 'error', 404: 'error', 503: 'error' },
      parse: (req) => ({ params: req.params as { entity: string }, query: selectedOf(req).query, body: undefined }),
    },
    (req, reply, { params, query }) => {
      const sel = selections.get(query)!;
      void reply.type('application/json; charset=utf-8');
      if (query.decision !== undefined) return answerRecorded(callerOf(req), params.entity, sel, query.decision);
      const plan = online.plan(sel);
      if (plan instanceof Promise) return plan.then((p) => answerOne(params.entity, p));
      return answerOne(params.entity, plan);
    },
  );

  route(
    app,
    {
      method: 'POST',
      url: '/features',
      operationId: 'getOnlineFeaturesBatch',
      work: 'lookups',
      scope: 'read',
      hot: true,
      summary: 'Latest feature values of many entities',
      description: 'The same answer as `GET /features/{entity}` for each entity, in request order, read with one store round trip per view.',
      tags: ['online'],
      body: BatchBody,
      responses: { 200: z.object({ results: z.array(EntityFeaturesSchema) }), 400: 'error', 404: 'error', 503: 'error' },
    },
    async (req, reply, { body }) => {
      const plan = await online.plan({ features: body.features, view: body.view, service: body.service });
      let e = await online.evaluate(body.entities, plan);
      if (body.decisions) e = await audit.recordLookups(callerOf(req), body.decisions.map((d) => d ?? undefined), body.entities, e);
      reply.type('application/json; charset=utf-8');
      const answer = renderMany(body.entities, e);
      // The bytes may live in a reused buffer: hand it back once the answer is sent (or the client went away).
      if (answer.release) reply.raw.once('close', answer.release);
      return answer.bytes;
    },
  );

}
