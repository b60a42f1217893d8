/**
 * `asof.v1.OnlineService/GetOnlineFeatures` through the generated codecs
 * (codecs.ts): the request decoded into entity keys and a selection, the
 * answer built as an `asof.v1.GetOnlineFeaturesResponse` from the online
 * service's plan and evaluation. What is the same for every call of a plan
 * (the feature list) is built once per plan.
 */
import { AsofError } from '../errors.js';
import { formatType } from '../engine/types.js';
import type { FeatureStatus } from '../features/evaluator.js';
import type { Evaluation, FeatureSelection, Plan } from '../online/service.js';
import { OBJECT_FORM } from './codecs.js';
import { asof } from './generated/protos.js';
import { fromPbValue, toPbValue, type PbValue } from './values.js';

const Request = asof.v1.GetOnlineFeaturesRequest;
const Response = asof.v1.GetOnlineFeaturesResponse;
const Value = asof.v1.Value;

/** A decoded GetOnlineFeaturesRequest. */
export interface OnlineRequest {
  /** Each entity's Value as sent (echoed back in the answer). */
  entities: asof.v1.Value[];
  /** The same object for the same selection, so the online service's plan cache hits by identity. */
  selection: FeatureSelection;
  /** decision_ids, when given: one per entity, "" for not recorded. */
  decisionIds?: string[];
}

const NO_SELECTION: FeatureSelection = Object.freeze({});
const selections = new Map<string, FeatureSelection>();

/** Request bytes → entities and selection. Throws on malformed protobuf (grpc-js then answers INTERNAL, as for any undecodable request). */
export function decodeOnlineRequest(buf: Buffer): OnlineRequest {
  const m = Request.decode(buf);
  let selection = NO_SELECTION;
  if (m.selection !== undefined) {
    const text = m.selection === 'features' ? (m.features?.refs ?? []).join('\0') : (m[m.selection] as string);
    const key = `${m.selection}\0${text}`;
    let sel = selections.get(key);
    if (!sel) {
      sel = Object.freeze(m.selection === 'features' ? { features: [...(m.features?.refs ?? [])] } : { [m.selection]: text });
      // Remembered only when short, as the REST route remembers query strings: 1,000 of any size would be unbounded.
      if (key.length <= 4096) {
        if (selections.size >= 1000) selections.clear();
        selections.set(key, sel);
      }
    }
    selection = sel;
  }
  const out: OnlineRequest = { entities: m.entities as asof.v1.Value[], selection };
  if (m.decision_ids.length) out.decisionIds = m.decision_ids;
  return out;
}

/** The entities' Values → the plain values the online service takes as keys; a Value that cannot be read is a 400 naming it. */
export function entityKeys(entities: asof.v1.Value[]): unknown[] {
  return entities.map((v, i) => {
    try {
      return fromPbValue(Value.toObject(v, OBJECT_FORM) as PbValue);
    } catch (e) {
      const reason = (e as Error).message;
      throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${i} is not a readable asof.v1.Value: ${reason}`, [{ row: i, field: 'entity', reason }]);
    }
  });
}

const STATUS = asof.v1.FeatureStatus;
/** FeatureStatus enum numbers (online.proto), as both answer encoders write them. */
export const STATUS_NUMBER: Record<FeatureStatus, number> = { PRESENT: STATUS.PRESENT, NULL_VALUE: STATUS.NULL_VALUE, NOT_FOUND: STATUS.NOT_FOUND, OUTSIDE_MAX_AGE: STATUS.OUTSIDE_MAX_AGE };

const featureLists = new WeakMap<Plan, Record<string, unknown>[]>();

function featureList(plan: Plan): Record<string, unknown>[] {
  let list = featureLists.get(plan);
  if (!list) {
    list = plan.features.map((f) => ({ ref: f.ref, view: f.view, name: f.feature, type: formatType(f.type) }));
    featureLists.set(plan, list);
  }
  return list;
}

/** A GetOnlineFeaturesResponse for `e`, encoded; `entities` are the request's Values, in the same order. */
export function encodeOnlineAnswer(e: Evaluation, entities: asof.v1.Value[]): Buffer {
  const { plan, values, statuses, eventTimes } = e;
  const nf = plan.features.length;
  const tokenOf = (t: Record<string, number>): Record<string, string> => Object.fromEntries(Object.entries(t).map(([table, offset]) => [table, String(offset)]));
  const token = tokenOf(e.token);
  const results = entities.map((entity, i) => {
    const features = new Array<Record<string, unknown>>(nf);
    for (let f = 0, k = i * nf; f < nf; f++, k++) {
      const feat = plan.features[f];
      const et = eventTimes[k];
      features[f] = {
        value: toPbValue(feat.type, plan.evaluators[f].toJson(feat.index, values[k])),
        status: STATUS_NUMBER[statuses[k]],
        event_time: et === null || et === undefined ? undefined : timestamp(et),
      };
    }
    return { entity, features, token: e.tokens === undefined ? token : tokenOf(e.tokens[i]) };
  });
  // Plain objects in the generated classes' field types (enums as numbers, int64 as decimal strings): encode takes them as they are.
  return Response.encode({ features: featureList(plan), results } as unknown as asof.v1.IGetOnlineFeaturesResponse).finish() as Buffer;
}

/** Epoch ms → google.protobuf.Timestamp (seconds rounded down, the rest as nanos). */
function timestamp(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}
