/**
 * `asof.v1.OnlineService`: the online service's answer with typed values. One
 * call, many entities, exactly what `POST /features` answers over REST.
 */
import type * as grpc from '@grpc/grpc-js';
import { formatType, type ColumnType } from '../engine/types.js';
import { protoTimestamp } from '../feast/values.js';
import type { FeatureSelection, ServedFeature } from '../online/service.js';
import type { Services } from '../services.js';
import { unary, type CallContext } from './calls.js';
import { encodeFeatureInfos, encodeOnlineResponse, STATUS_NUMBER } from './encode.js';
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

/**
 * The encoded FeatureInfo list of a selection, by its refs; reused while the
 * features' type objects are the same ones (a redefined view brings new ones).
 */
const prefixes = new Map<string, { types: ColumnType[]; bytes: Buffer }>();
const MAX_PREFIXES = 1000;

function featuresPrefix(features: ServedFeature[]): Buffer {
  const key = features.map((f) => f.ref).join('\n');
  const hit = prefixes.get(key);
  if (hit && hit.types.length === features.length && hit.types.every((t, i) => t === features[i].type)) return hit.bytes;
  const bytes = encodeFeatureInfos(features.map((f) => ({ ref: f.ref, view: f.view, name: f.feature, type: formatType(f.type) })));
  if (prefixes.size >= MAX_PREFIXES) prefixes.clear();
  prefixes.set(key, { types: features.map((f) => f.type), bytes });
  return bytes;
}

/** The method's definition, answering already-encoded bytes (see encode.ts). */
export function onlineServiceDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return { ...def, GetOnlineFeatures: { ...def.GetOnlineFeatures, responseSerialize: (b: Buffer) => b } };
}

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
      const results = answer.results.map((r, i) => ({
        entity: entities[i],
        features: features.map((f) => ({ value: toPbValue(f.type, r.features[f.ref]), status: STATUS_NUMBER[r.statuses[f.ref]], event_time: eventTime(r.eventTimes[f.ref]) })),
        token: r.token,
      }));
      return encodeOnlineResponse(featuresPrefix(features), results);
    }),
  };
}
