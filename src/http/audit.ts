/**
 * Audit routes: decisions, their replay, entity state at any time, and hash
 * chain verification. Thin: the audit service (audit/service.ts) does the work.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { checkedTime } from '../engine/schema.js';
import type { Services } from '../services.js';
import { rawJsonOf, route } from './route.js';
import { TokenSchema } from './tables.js';

const Status = z.enum(['PRESENT', 'NOT_FOUND', 'NULL_VALUE', 'OUTSIDE_MAX_AGE']);
const Time = z.union([z.string(), z.number()]).describe('RFC 3339, or epoch milliseconds.');
const Name = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be a name');
const DecisionId = z.string().regex(/^[\x21-\x7e]{1,200}$/, 'must be 1 to 200 printable ASCII characters without spaces').describe('Chosen by the caller; unique per decision.');

const Served = z
  .object({
    features: z.record(z.string(), z.unknown()).describe('`view:feature` → value, as the lookup answered it.'),
    statuses: z.record(z.string(), Status),
    eventTimes: z.record(z.string(), z.string().nullable()),
  })
  .meta({ id: 'ServedValues' });

const Head = z.object({ offset: z.number().int(), hash: z.string().describe('SHA-256 chain hash, hex.') }).meta({ id: 'ChainHead' });

const DecisionBody = z
  .strictObject({
    id: DecisionId,
    entity: z.union([z.string(), z.number()]).describe('The entity key.'),
    features: z.array(z.string()).min(1).optional(),
    view: Name.optional(),
    service: Name.optional(),
    outcome: z.string().min(1).max(1000),
    model: z.string().max(1000).optional(),
    decidedAt: Time.optional().describe('When the decision was made; defaults to now, and may not be later than now (400). Without a token, the replay is what the store knew at this time.'),
    token: TokenSchema.optional().describe('The token of the read the decision used: the replay reads exactly these positions. It must name every source table of the features decided on (400 naming those it lacks), each at an offset the table has reached.'),
    served: z
      .strictObject({
        features: z.record(z.string(), z.unknown()).describe('Stored as sent: a number a float64 does not hold as written is a 400, as in `attributes`.'),
        statuses: z.record(z.string(), Status).optional(),
        eventTimes: z.record(z.string(), Time.nullable()).optional().describe('RFC 3339 or epoch ms (another value is a 400); stored and answered as RFC 3339 UTC, compared as instants.'),
      })
      .optional()
      .describe('What the caller was served, to compare with the replay: keyed by the `view:feature` refs of the selection (a key that names no feature of it is a 400). A subset is taken: the audit compares what is reported of each feature (value, status, event time), and a feature not reported is not compared.'),
    attributes: z.record(z.string(), z.unknown()).optional().describe('Stored as sent: a number a float64 does not hold as written (12345678901234567890) is a 400, as in a json column; send it as a string.'),
  })
  .meta({ id: 'DecisionInput', description: 'Exactly one of features, view or service.' });

const DecisionSchema = z
  .object({
    id: z.string(),
    entity: z.string(),
    selection: z.object({ features: z.array(z.string()).optional(), view: z.string().optional(), service: z.string().optional() }),
    features: z.array(z.string()),
    outcome: z.string().nullable().describe('null for a lookup recorded but not yet completed by POST /decisions.'),
    model: z.string().nullable(),
    decidedAt: z.string().describe('RFC 3339 UTC, with milliseconds.'),
    servedAt: z.string().nullable().describe('When the served values were evaluated (recorded lookups), RFC 3339 UTC with milliseconds; null for a posted decision.'),
    token: TokenSchema.nullable(),
    served: Served.nullable(),
    heads: z.record(z.string(), Head).nullable().describe("Each source table's chain head when the decision read it."),
    attributes: z.record(z.string(), z.unknown()).nullable(),
    recordedBy: z.enum(['lookup', 'api', 'lookup+api']),
    signature: z.string().nullable().describe('Ed25519 over the decision (ASOF_AUDIT_SIGNING_KEY), base64.'),
  })
  .meta({ id: 'Decision' });

const TrailRecord = z
  .object({
    table: z.string(),
    offset: z.number().int(),
    changeType: z.enum(['+I', '-U', '+U', '-D']),
    commitTime: z.string(),
    eventTime: z.string(),
    row: z.record(z.string(), z.unknown()),
    changed: z.array(z.string()).describe('Features whose value or status this record changed.'),
  })
  .meta({ id: 'TrailRecord' });
const TrailPage = z.object({ from: z.number().int(), total: z.number().int(), next: z.number().int().nullable() });
const PageQuery = {
  trailFrom: z.coerce.number().int().min(0).optional().describe('Index of the first trail record to return.'),
  trailLimit: z.coerce.number().int().min(1).max(10_000).optional().describe('Trail records per page (default 100, at most 10,000).'),
};

const VerifyResult = z
  .object({
    table: z.string(),
    ok: z.boolean(),
    head: Head,
    checked: z.number().int().describe('Frames walked.'),
    unchained: z.number().int().describe('Frames written before chain hashes (format 1): readable, not chained.'),
    firstBroken: z.object({ offset: z.number().int(), expected: z.string(), actual: z.string(), reason: z.enum(['hash', 'checksum']) }).optional(),
    signature: z.object({ algorithm: z.literal('Ed25519'), publicKey: z.string(), message: z.string(), value: z.string() }).optional(),
  })
  .meta({ id: 'ChainVerification' });

const DecisionAudit = z
  .object({
    decision: DecisionSchema,
    served: Served.nullable(),
    reconstructed: Served.extend({ token: TokenSchema, at: z.string(), pointInTime: z.enum(['event', 'known']) }),
    match: z.boolean().nullable().describe('null when nothing was served to compare with.'),
    compared: z.array(z.string()).describe('The features whose served value, status or event time was reported, and so compared (all of them for a recorded lookup; a posted subset only its own).'),
    differences: z.array(
      z.object({
        feature: z.string(),
        served: z.object({ value: z.unknown().optional(), status: z.string().optional(), eventTime: z.string().nullable().optional() }).describe('What was reported of the feature: a part not reported is absent.'),
        reconstructed: z.object({ value: z.unknown(), status: z.string(), eventTime: z.string().nullable() }),
      }),
    ),
    history: z.object({
      ok: z.boolean(),
      tables: z.record(z.string(), z.object({ offset: z.number().int(), recorded: z.string(), current: z.string().nullable(), ok: z.boolean(), verify: VerifyResult.omit({ table: true, signature: true }).optional() })),
    }),
    signatureValid: z.boolean().nullable(),
    trail: z.array(TrailRecord),
    trailPage: TrailPage,
  })
  .meta({ id: 'DecisionAudit' });

const EntityState = Served.extend({ entity: z.string(), at: z.string(), pointInTime: z.enum(['event', 'known']), token: TokenSchema, trail: z.array(TrailRecord), trailPage: TrailPage }).meta({ id: 'EntityState' });

function time(field: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  return checkedTime(`query.${field}`, v);
}

export function auditRoutes(app: FastifyInstance, services: Services): void {
  const { audit } = services;

  route(
    app,
    {
      method: 'POST',
      url: '/decisions',
      operationId: 'recordDecision',
      scope: 'decide',
      summary: 'Record a decision',
      description:
        'Durable before it answers. 201 created; 200 when an identical body was recorded before (nothing changes) or when it completes a decision its lookup recorded (`?decision=`), which it must agree with; 409 for another body under the same id.',
      tags: ['audit'],
      body: DecisionBody,
      keepText: true,
      responses: { 200: DecisionSchema, 201: DecisionSchema, 400: 'error', 404: 'error', 409: 'error' },
    },
    async (req, reply, { body }) => {
      const { decision, created } = await audit.recordDecision(body, rawJsonOf(req));
      reply.code(created ? 201 : 200);
      return decision;
    },
  );

  route(
    app,
    {
      method: 'GET',
      url: '/audit/decisions/:id',
      operationId: 'getDecisionAudit',
      scope: 'audit',
      summary: 'Replay a decision',
      description:
        "The state reconstructed by the one evaluator at the decision's token and serving time (without a token: what the store knew at decidedAt), whether it matches what was served, the changelog records that led to it (paginated), and whether each source table's chain still hashes to the head the decision recorded (`verify=true` also walks each chain up to it).",
      tags: ['audit'],
      params: z.object({ id: DecisionId }),
      query: z.strictObject({ ...PageQuery, verify: z.enum(['true', 'false']).optional().describe('Also walk each source chain from its start to the recorded head.') }),
      responses: { 200: DecisionAudit, 400: 'error', 404: 'error' },
    },
    async (_req, _reply, { params, query }) => audit.explain(params.id, { trailFrom: query.trailFrom, trailLimit: query.trailLimit, verify: query.verify === 'true' }),
  );

  route(
    app,
    {
      method: 'GET',
      url: '/audit/decisions',
      operationId: 'listDecisions',
      scope: 'audit',
      summary: 'List decisions, newest first',
      tags: ['audit'],
      query: z.strictObject({
        entity: z.string().optional(),
        from: z.string().optional().describe('decidedAt at or after (RFC 3339 or epoch ms).'),
        to: z.string().optional().describe('decidedAt at or before.'),
        outcome: z.string().optional(),
        limit: z.coerce.number().int().min(1).max(10_000).optional().describe('Default 100.'),
      }),
      responses: { 200: z.object({ decisions: z.array(DecisionSchema) }), 400: 'error' },
    },
    async (_req, _reply, { query }) => ({ decisions: audit.list({ entity: query.entity, outcome: query.outcome, from: time('from', query.from), to: time('to', query.to) }, query.limit) }),
  );

  route(
    app,
    {
      method: 'GET',
      url: '/audit/entities/:entity',
      operationId: 'getEntityState',
      scope: 'audit',
      summary: "An entity's state at any time, with its trail",
      description: 'Reconstructed from the changelog by the one evaluator. `pointInTime` "known" (default): what the store knew at `at`; "event": everything that had happened by `at`.',
      tags: ['audit'],
      params: z.object({ entity: z.string() }),
      query: z.strictObject({
        features: z.string().optional().describe('Comma-separated `view:feature` references.'),
        view: Name.optional(),
        service: Name.optional(),
        at: z.string().optional().describe('RFC 3339 or epoch ms; defaults to now.'),
        pointInTime: z.enum(['event', 'known']).optional(),
        ...PageQuery,
      }),
      responses: { 200: EntityState, 400: 'error', 404: 'error' },
    },
    async (_req, _reply, { params, query }) =>
      audit.entityState(params.entity, { features: query.features?.split(','), view: query.view, service: query.service }, time('at', query.at) ?? services.now(), query.pointInTime ?? 'known', query),
  );

  route(
    app,
    {
      method: 'GET',
      url: '/audit/verify',
      operationId: 'verifyChain',
      scope: 'audit',
      summary: "Walk a table's hash chain",
      description:
        "Recomputes every frame's SHA-256 link over offsets [from, to] (default: all) and compares it with the stored one. A `from` or `to` past the table's latest offset is a 400 naming it and the range. A broken link is reported (`firstBroken`), never cut away: later frames stay readable. With ASOF_AUDIT_SIGNING_KEY the head carries an Ed25519 signature.",
      tags: ['audit'],
      query: z.strictObject({ table: z.string().min(1), from: z.coerce.number().int().min(0).optional(), to: z.coerce.number().int().min(0).optional() }),
      responses: { 200: VerifyResult, 400: 'error', 404: 'error' },
    },
    async (_req, _reply, { query }) => audit.verify(query.table, query.from, query.to),
  );
}
