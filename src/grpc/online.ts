/**
 * `asof.v1.OnlineService`: the online service's answer with typed values. One
 * call, many entities, exactly what `POST /features` answers over REST.
 */
import type * as grpc from '@grpc/grpc-js';
import { formatType } from '../engine/types.js';
import { protoTimestamp } from '../feast/values.js';
import type { FeatureSelection } from '../online/service.js';
import type { Services } from '../services.js';
import { unary, type CallContext } from './calls.js';
import { fromPbValue, toPbValue, type PbValue } from './values.js';

interface Request {
  entities?: PbValue[];
  selection?: 'features' | 'view' | 'service';
  features?: { refs?: string[] };
  view?: string;
  service?: string;
}

function selectionOf(req: Request): FeatureSelection {
  switch (req.selection) {
    case 'features':
      return { features: req.features?.refs ?? [] };
    case 'view':
      return { view: req.view };
    case 'service':
      return { service: req.service };
    default:
      return {};
  }
}

export function onlineService(ctx: CallContext, services: Pick<Services, 'online'>): grpc.UntypedServiceImplementation {
  return {
    GetOnlineFeatures: unary(ctx, async (req: Request) => {
      const entities = req.entities ?? [];
      const answer = await services.online.get(entities.map(fromPbValue), selectionOf(req));
      const features = answer.features;
      return {
        features: features.map((f) => ({ ref: f.ref, view: f.view, name: f.feature, type: formatType(f.type) })),
        results: answer.results.map((r, i) => ({
          entity: entities[i],
          features: features.map((f) => {
            const et = r.eventTimes[f.ref];
            return { value: toPbValue(f.type, r.features[f.ref]), status: r.statuses[f.ref], event_time: et === null ? undefined : protoTimestamp(Date.parse(et)) };
          }),
          token: r.token,
        })),
      };
    }),
  };
}
