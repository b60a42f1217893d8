/**
 * The object form of an online answer, built the plain way (objects, then
 * JSON.stringify by the caller): the oracle the one JSON renderer
 * (src/http/features-json.ts) and the other lookup tests are checked against.
 * Not used by the server.
 */
import { formatTimestamp } from '../src/engine/schema.js';
import type { EntityFeatures, Evaluation } from '../src/online/service.js';

export function toObjects(entities: unknown[], e: Evaluation): EntityFeatures[] {
  const nf = e.plan.features.length;
  return entities.map((entity, i) => {
    const out: EntityFeatures = { entity, features: {}, statuses: {}, eventTimes: {}, token: { ...e.token } };
    for (let f = 0; f < nf; f++) {
      const feat = e.plan.features[f];
      const at = i * nf + f;
      out.features[feat.ref] = e.plan.evaluators[f].toJson(feat.index, e.values[at]);
      out.statuses[feat.ref] = e.statuses[at];
      const et = e.eventTimes[at];
      out.eventTimes[feat.ref] = et === null || et === undefined ? null : formatTimestamp(et);
    }
    return out;
  });
}
