/**
 * `asof.v1.AuditService`: the audit service's answers (GET /audit/decisions/{id},
 * GET /audit/entities/{entity}) in protobuf form; values and rows as the JSON
 * text the REST answer holds.
 */
import type * as grpc from '@grpc/grpc-js';
import { AsofError } from '../errors.js';
import { parseTimestamp } from '../engine/schema.js';
import type { ServedValues } from '../audit/decisions.js';
import type { TrailPage } from '../audit/service.js';
import { protoTimestamp } from '../feast/values.js';
import type { Services } from '../services.js';
import { unary, type CallContext } from './calls.js';
import { timestampMs, type PbTimestamp } from './values.js';

interface GetDecisionRequest {
  id?: string;
  trail_from?: number;
  trail_limit?: number;
  verify?: boolean;
}

interface GetEntityStateRequest {
  entity?: string;
  selection?: 'features' | 'view' | 'service';
  features?: { refs?: string[] };
  view?: string;
  service?: string;
  at?: PbTimestamp;
  point_in_time?: string;
  trail_from?: number;
  trail_limit?: number;
}

/** RFC 3339 → a Timestamp; unset for null, and for text that is no time (a served event time posted before they were checked), not 1970. */
const ts = (iso: string | null | undefined): { seconds: number; nanos: number } | undefined => {
  const ms = iso ? parseTimestamp(iso) : undefined;
  return ms === undefined ? undefined : protoTimestamp(ms);
};

function features(v: ServedValues): unknown[] {
  return Object.keys(v.features).map((ref) => ({ ref, value_json: JSON.stringify(v.features[ref] ?? null), status: v.statuses[ref] ?? 'FEATURE_STATUS_UNSPECIFIED', event_time: ts(v.eventTimes[ref]) }));
}

function trail(p: TrailPage): { trail: unknown[]; trail_page: unknown } {
  return {
    trail: p.trail.map((r) => ({ table: r.table, offset: String(r.offset), change_type: r.changeType, commit_time: ts(r.commitTime), event_time: ts(r.eventTime), row_json: JSON.stringify(r.row), changed: r.changed })),
    trail_page: { from: p.trailPage.from, total: p.trailPage.total, next: p.trailPage.next ?? -1 },
  };
}

/** proto3 has no unset number: 0 asks for the default (the first record, the default page size); the service checks the rest. */
const page = (from?: number, limit?: number): { trailFrom?: number; trailLimit?: number } => ({ trailFrom: from || undefined, trailLimit: limit || undefined });

export function auditService(ctx: CallContext, services: Pick<Services, 'audit' | 'now'>): grpc.UntypedServiceImplementation {
  const { audit } = services;
  return {
    GetDecision: unary(ctx, 'audit', async (req: GetDecisionRequest) => {
      const a = await audit.explain(req.id ?? '', { ...page(req.trail_from, req.trail_limit), verify: req.verify === true });
      return {
        decision_json: JSON.stringify(a.decision),
        served: a.served ? features(a.served) : [],
        reconstructed: features(a.reconstructed),
        token: Object.fromEntries(Object.entries(a.reconstructed.token).map(([t, o]) => [t, String(o)])),
        at: ts(a.reconstructed.at),
        ...(a.match === null ? {} : { match: a.match }),
        compared: a.compared,
        differences: a.differences.map((d) => d.feature),
        ...trail(a),
        history_ok: a.history.ok,
        history: Object.fromEntries(Object.entries(a.history.tables).map(([t, h]) => [t, { offset: String(h.offset), recorded: h.recorded, current: h.current ?? '', ok: h.ok }])),
      };
    }),
    GetEntityState: unary(ctx, 'audit', async (req: GetEntityStateRequest) => {
      const pit = req.point_in_time || 'known';
      if (pit !== 'known' && pit !== 'event') throw new AsofError('ASOF_INVALID_ARGUMENT', `point_in_time must be "known" or "event", got ${JSON.stringify(pit)}`, [{ field: 'point_in_time', reason: 'unknown mode' }]);
      const at = req.at ? timestampMs(req.at, 'at') : services.now();
      const selection = req.selection === 'features' ? { features: req.features?.refs ?? [] } : req.selection === 'view' ? { view: req.view } : req.selection === 'service' ? { service: req.service } : {};
      const s = await audit.entityState(req.entity ?? '', selection, at, pit, page(req.trail_from, req.trail_limit));
      return { entity: s.entity, at: ts(s.at), point_in_time: s.pointInTime, features: features(s), token: Object.fromEntries(Object.entries(s.token).map(([t, o]) => [t, String(o)])), ...trail(s) };
    }),
  };
}
