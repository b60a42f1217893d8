/**
 * `feast.serving.ServingService`: Feast's online serving interface, answered
 * from asof's online service (see src/feast/ for the request rules and the
 * value typing). Column-oriented: entity key columns first, then each
 * requested feature in request order; entity columns are PRESENT with the
 * epoch as event timestamp, as Feast answers them. The read's token is sent as
 * initial metadata `asof-token` (JSON).
 */
import * as grpc from '@grpc/grpc-js';
import { decisionIdsOf, getFeastOnlineFeatures } from '../feast/online.js';
import { fromFeastValue, protoTimestamp, toFeastValue, type FeastValue } from '../feast/values.js';
import type { Services } from '../services.js';
import { callerOfCall, unary, type CallContext } from './calls.js';

interface FeastRequest {
  kind?: 'feature_service' | 'features';
  feature_service?: string;
  features?: { val?: string[] };
  entities?: Record<string, { val?: FeastValue[] }>;
  full_feature_names?: boolean;
}

export function feastService(ctx: CallContext, services: Pick<Services, 'online' | 'audit'>, version: string): grpc.UntypedServiceImplementation {
  return {
    GetFeastServingInfo: unary(ctx, 'read', async () => ({ version })),
    GetOnlineFeatures: unary(ctx, 'read', async (req: FeastRequest, call) => {
      const answer = await getFeastOnlineFeatures(services, {
        features: req.kind === 'features' ? (req.features?.val ?? []) : undefined,
        featureService: req.kind === 'feature_service' ? req.feature_service : undefined,
        entities: Object.entries(req.entities ?? {}).map(([column, rv]) => [column, (rv.val ?? []).map((v, i) => fromFeastValue(v, `entities.${column}[${i}]`))]),
        fullFeatureNames: req.full_feature_names === true,
        decisionIds: decisionIdsOf(call.metadata.get('asof-decision-id')[0]),
        caller: callerOfCall(call),
      });
      const md = new grpc.Metadata();
      md.set('asof-token', JSON.stringify(answer.token));
      call.sendMetadata(md);
      // Encoded by the generated codec (codecs.ts); entity and NOT_FOUND columns carry the epoch as event timestamp.
      return {
        metadata: { feature_names: { val: answer.columns.map((c) => c.name) } },
        results: answer.columns.map((c) => ({
          values: c.values.map((v) => toFeastValue(c.type, v)),
          statuses: c.statuses,
          event_timestamps: c.eventTimes.map((t) => protoTimestamp(t ?? 0)),
        })),
      };
    }, 'lookups'),
  };
}
