/**
 * Feast's online-features request, answered by asof's online service: the
 * logic both Feast adapters share (REST `POST /get-online-features` and gRPC
 * `feast.serving.ServingService/GetOnlineFeatures`). No transport in here.
 *
 * Answers are column-oriented, as Feast's: one column per name, entity key
 * columns first (in the order their views first appear among the requested
 * features), then one per requested feature in request order; each column
 * holds one entry per entity row, in request order.
 */
import { AsofError, type FieldIssue } from '../errors.js';
import type { Token } from '../engine/engine.js';
import { fromText, type CompiledColumn } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { FeatureStatus } from '../features/evaluator.js';
import type { Services } from '../services.js';

export interface FeastQuery {
  /** `view:feature` references (exactly one of features and featureService). */
  features?: string[];
  featureService?: string;
  /** Entity key column → one value per entity row, in the order given. Values are plain JS (JSON) values. */
  entities: [column: string, values: unknown[]][];
  /** Name features `view__feature` instead of `feature`. */
  fullFeatureNames: boolean;
}

export interface FeastColumn {
  name: string;
  /** The type of the column's values (a feature's, or the entity key column's). */
  type: ColumnType;
  /** One per entity row, canonical (see engine/schema.ts: timestamps epoch ms, int64 beyond 2^53 as decimal strings or bigints); null unless PRESENT. */
  values: unknown[];
  statuses: FeatureStatus[];
  /** Epoch ms of each value's event time; null where there is none (entity columns, NOT_FOUND). */
  eventTimes: (number | null)[];
}

export interface FeastAnswer {
  columns: FeastColumn[];
  /** The changelog positions the values reflect, over all views read. */
  token: Token;
}

type Deps = Pick<Services, 'online'>;

const invalid = (message: string, issues: FieldIssue[]): AsofError => new AsofError('ASOF_INVALID_ARGUMENT', message, issues);

export async function getFeastOnlineFeatures(deps: Deps, q: FeastQuery): Promise<FeastAnswer> {
  const hasFeatures = (q.features?.length ?? 0) > 0;
  if (hasFeatures === Boolean(q.featureService)) {
    throw invalid('give exactly one of features and feature_service', [{ field: 'features', reason: 'give exactly one of features, feature_service' }]);
  }
  const plan = deps.online.plan(hasFeatures ? { features: q.features } : { service: q.featureService });
  const features = plan.features;

  // Which entity column keys each feature's view.
  const entityOf = new Map<string, CompiledColumn>();
  features.forEach((f, i) => {
    if (entityOf.has(f.view)) return;
    const ev = plan.evaluators[i];
    entityOf.set(f.view, ev.schema.byName.get(ev.view.entity)!);
  });

  const given = new Map(q.entities);
  if (given.size !== q.entities.length) throw invalid('an entity key column is given twice', [{ field: 'entities', reason: 'duplicate key column' }]);
  const needed = [...new Set([...entityOf.values()].map((e) => e.name))];
  for (const [view, e] of entityOf) {
    if (!given.has(e.name)) {
      throw invalid(`feature view "${view}" is keyed by "${e.name}", which entities does not give (given: ${[...given.keys()].join(', ') || 'none'})`, [
        { field: `entities.${e.name}`, reason: `required by feature view "${view}"` },
      ]);
    }
  }
  for (const name of given.keys()) {
    if (!needed.includes(name)) {
      throw invalid(`no requested feature view is keyed by "${name}" (the requested views are keyed by ${needed.join(', ')})`, [
        { field: `entities.${name}`, reason: `not the entity key of any requested feature view (expected ${needed.join(', ')})` },
      ]);
    }
  }
  const rows = given.get(needed[0])!.length;
  for (const [name, values] of given) {
    if (values.length !== rows) {
      throw invalid(`every entities list must have the same length: "${needed[0]}" has ${rows}, "${name}" has ${values.length}`, [{ field: `entities.${name}`, reason: `expected ${rows} values` }]);
    }
  }

  const names = features.map((f) => (q.fullFeatureNames ? `${f.view}__${f.feature}` : f.feature));
  const seen = new Map<string, string>();
  features.forEach((f, i) => {
    const other = seen.get(names[i]);
    if (other !== undefined) {
      throw invalid(
        `feature names collide: "${other}" and "${f.ref}" are both answered as "${names[i]}"${q.fullFeatureNames ? '' : '; set full_feature_names to name them view__feature'}`,
        [{ field: 'features', reason: `duplicate name "${names[i]}"` }],
      );
    }
    seen.set(names[i], f.ref);
  });

  // One evaluation per entity key column (the usual single column: the request's own plan), its values turned column-wise.
  const token: Token = {};
  const byRef = new Map<string, FeastColumn>();
  for (const column of needed) {
    const sub = needed.length === 1 ? plan : deps.online.plan({ features: [...new Set(features.filter((f) => entityOf.get(f.view)!.name === column).map((f) => f.ref))] });
    const entities = given.get(column)!;
    const e = deps.online.evaluateSync(entities, sub) ?? (await deps.online.evaluate(entities, sub));
    const nf = e.plan.features.length;
    e.plan.features.forEach((f, p) => {
      const col: FeastColumn = { name: '', type: f.type, values: new Array(rows), statuses: new Array(rows), eventTimes: new Array(rows) };
      for (let i = 0, k = p; i < rows; i++, k += nf) {
        col.values[i] = e.values[k];
        col.statuses[i] = e.statuses[k];
        col.eventTimes[i] = e.eventTimes[k] ?? null;
      }
      byRef.set(f.ref, col);
    });
    for (const [t, o] of Object.entries(e.token)) token[t] = Math.max(token[t] ?? -1, o);
  }

  // Entity key columns answer the keys themselves, typed by the (first) view keyed by them.
  const columns: FeastColumn[] = needed.map((column) => {
    const e = [...entityOf.values()].find((x) => x.name === column)!;
    const values = given.get(column)!.map((v) => e.coerce(typeof v === 'string' || typeof v === 'number' ? fromText(e.type, v) : v));
    return { name: column, type: e.type, values, statuses: values.map(() => 'PRESENT' as const), eventTimes: values.map(() => null) };
  });
  features.forEach((f, i) => columns.push({ ...byRef.get(f.ref)!, name: names[i] }));
  return { columns, token };
}
