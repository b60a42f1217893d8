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
import { fromText, toJsonValue } from '../engine/schema.js';
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
  /** One per entity row, in JSON form (timestamps RFC 3339); null unless PRESENT. */
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

type Deps = Pick<Services, 'online' | 'registry' | 'engine'>;

const invalid = (message: string, issues: FieldIssue[]): AsofError => new AsofError('ASOF_INVALID_ARGUMENT', message, issues);

export async function getFeastOnlineFeatures(deps: Deps, q: FeastQuery): Promise<FeastAnswer> {
  const hasFeatures = (q.features?.length ?? 0) > 0;
  if (hasFeatures === Boolean(q.featureService)) {
    throw invalid('give exactly one of features and feature_service', [{ field: 'features', reason: 'give exactly one of features, feature_service' }]);
  }
  const features = deps.online.resolve(hasFeatures ? { features: q.features } : { service: q.featureService });

  // Which entity column keys each feature's view, and that column's type.
  const entityOf = new Map<string, { column: string; type: ColumnType; coerce: (v: unknown) => unknown }>();
  for (const f of features) {
    if (entityOf.has(f.view)) continue;
    const def = deps.registry.view(f.view);
    const col = deps.engine.table(def.source).schema.byName.get(def.entity)!;
    entityOf.set(f.view, { column: def.entity, type: col.type, coerce: col.coerce });
  }

  const given = new Map(q.entities);
  if (given.size !== q.entities.length) throw invalid('an entity key column is given twice', [{ field: 'entities', reason: 'duplicate key column' }]);
  const needed = [...new Set([...entityOf.values()].map((e) => e.column))];
  for (const [view, e] of entityOf) {
    if (!given.has(e.column)) {
      throw invalid(`feature view "${view}" is keyed by "${e.column}", which entities does not give (given: ${[...given.keys()].join(', ') || 'none'})`, [
        { field: `entities.${e.column}`, reason: `required by feature view "${view}"` },
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

  // One read per entity key column: the views keyed by it share the entity values.
  const token: Token = {};
  const byRef = new Map<string, FeastColumn>();
  for (const column of needed) {
    const refs = [...new Set(features.filter((f) => entityOf.get(f.view)!.column === column).map((f) => f.ref))];
    const answer = await deps.online.get(given.get(column)!, { features: refs });
    for (const f of answer.features) {
      const col: FeastColumn = { name: '', type: f.type, values: new Array(rows), statuses: new Array(rows), eventTimes: new Array(rows) };
      answer.results.forEach((r, i) => {
        col.values[i] = r.features[f.ref];
        col.statuses[i] = r.statuses[f.ref];
        const et = r.eventTimes[f.ref];
        col.eventTimes[i] = et === null ? null : Date.parse(et);
      });
      byRef.set(f.ref, col);
    }
    for (const r of answer.results) for (const [t, o] of Object.entries(r.token)) token[t] = Math.max(token[t] ?? -1, o);
  }

  // Entity key columns answer the keys themselves, typed by the (first) view keyed by them.
  const columns: FeastColumn[] = needed.map((column) => {
    const e = [...entityOf.values()].find((x) => x.column === column)!;
    const values = given.get(column)!.map((v) => {
      const canonical = e.coerce(typeof v === 'string' || typeof v === 'number' ? fromText(e.type, v) : v);
      return toJsonValue(e.type, canonical);
    });
    return { name: column, type: e.type, values, statuses: values.map(() => 'PRESENT' as const), eventTimes: values.map(() => null) };
  });
  features.forEach((f, i) => columns.push({ ...byRef.get(f.ref)!, name: names[i] }));
  return { columns, token };
}
