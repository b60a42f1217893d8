/**
 * `asof.v1.OnlineService`: the online service's answer with typed values. One
 * call, many entities, exactly what `POST /features` answers over REST.
 */
import type * as grpc from '@grpc/grpc-js';
import { formatType, type ColumnType } from '../engine/types.js';
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

/** Type text per type object (the evaluator's, stable per view version). */
const typeText = new WeakMap<ColumnType, string>();

export function onlineService(ctx: CallContext, services: Pick<Services, 'online'>): grpc.UntypedServiceImplementation {
  return {
    GetOnlineFeatures: unary(ctx, async (req: Request) => {
      const entities = req.entities ?? [];
      const answer = await services.online.get(entities.map(fromPbValue), selectionOf(req));
      const features = answer.features;
      // Features of one row share their event time: parse each distinct text once.
      let lastText: string | null = null;
      let lastTime: { seconds: number; nanos: number } | undefined;
      const eventTime = (text: string | null) => {
        if (text === null) return undefined;
        if (text !== lastText) {
          lastText = text;
          lastTime = protoTimestamp(Date.parse(text));
        }
        return lastTime;
      };
      return {
        features: features.map((f) => {
          let type = typeText.get(f.type);
          if (type === undefined) typeText.set(f.type, (type = formatType(f.type)));
          return { ref: f.ref, view: f.view, name: f.feature, type };
        }),
        results: answer.results.map((r, i) => ({
          entity: entities[i],
          features: features.map((f) => ({ value: toPbValue(f.type, r.features[f.ref]), status: r.statuses[f.ref], event_time: eventTime(r.eventTimes[f.ref]) })),
          token: r.token,
        })),
      };
    }),
  };
}
