/**
 * A recorded lookup sent again with its decision id answers what it answered
 * the first time: its recorded values put back into the evaluation every
 * renderer takes, so REST, gRPC and Feast answer them as they answer any lookup.
 */
import type { Token } from '../engine/engine.js';
import { fromJsonValue } from '../engine/schema.js';
import type { FeatureStatus } from '../features/evaluator.js';
import { entityEval, PlanEvaluation, type EntityEval, type Evaluation, type Plan } from '../online/service.js';
import type { ViewGroup } from '../online/plan.js';

/** One entity's answer as an earlier lookup gave it: toObjects' values, statuses and event times, and its token. */
export interface AnswerBefore {
  features: Record<string, unknown>;
  statuses: Record<string, FeatureStatus>;
  eventTimes: Record<string, string | null>;
  token: Token;
}

/**
 * `e` with entity i's values replaced by `before[i]` where one is given: a
 * lookup recorded as a decision and sent again answers what it answered the
 * first time. `before[i]` must hold a value for each of `e.plan`'s features,
 * as these features were defined when it was given (the caller checks).
 * Every renderer answers the result as it answers `e`; the entities' tokens
 * then differ (`tokens`).
 */
export function withAnswersBefore(e: Evaluation, before: (AnswerBefore | undefined)[]): Evaluation {
  const { plan } = e;
  const ng = plan.groups.length;
  const out = new PlanEvaluation(plan, e.at, before.length);
  const tokens = new Array<Token>(before.length);
  for (let i = 0; i < before.length; i++) {
    const b = before[i];
    tokens[i] = b ? b.token : e.token;
    for (let gi = 0; gi < ng; gi++) out.entries[i * ng + gi] = b ? entryBefore(plan, plan.groups[gi], b, e.at) : e.entries[i * ng + gi];
  }
  for (const t of tokens) for (const table in t) out.token[table] = Math.max(out.token[table] ?? -1, t[table]);
  out.tokens = tokens;
  return out;
}

/** A view group's entry holding `b`'s values, in their canonical form; the cache never sees it. */
function entryBefore(plan: Plan, g: ViewGroup, b: AnswerBefore, at: number): EntityEval {
  const n = g.ev.features.length;
  const values = new Array<unknown>(n).fill(null);
  const statuses = new Array<FeatureStatus>(n).fill('NOT_FOUND');
  const eventTimes = new Array<number | null>(n).fill(null);
  for (let k = 0; k < g.positions.length; k++) {
    const f = plan.features[g.positions[k]];
    const idx = g.indexes[k];
    values[idx] = fromJsonValue(f.type, b.features[f.ref]);
    statuses[idx] = b.statuses[f.ref] ?? 'NOT_FOUND';
    const t = b.eventTimes[f.ref];
    eventTimes[idx] = t === null || t === undefined ? null : Date.parse(t);
  }
  return entityEval({ values, statuses, eventTimes }, at, at);
}
