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
import type { FeatureSelection, Plan } from '../online/service.js';
import type { Services } from '../services.js';
import { UNRESTRICTED, type Caller } from '../access.js';

export interface FeastQuery {
  /** `view:feature` references (exactly one of features and featureService). */
  features?: string[];
  featureService?: string;
  /** Entity key column → one value per entity row, in the order given. Values are plain JS (JSON) values. */
  entities: [column: string, values: unknown[]][];
  /** Name features `view__feature` instead of `feature`. */
  fullFeatureNames: boolean;
  /** The `asof-decision-id` header or metadata: one decision id per entity row (empty: not recorded), recorded before answering. */
  decisionIds?: (string | undefined)[];
  /** Who asks (recording decisions needs the `decide` scope). */
  caller?: Caller;
}

/** `asof-decision-id: a,b,,d`: comma-separated, one per entity row; an empty entry records nothing. */
export function decisionIdsOf(header: unknown): (string | undefined)[] | undefined {
  if (typeof header !== 'string' || header === '') return undefined;
  return header.split(',').map((s) => s.trim() || undefined);
}

export interface FeastColumn {
  name: string;
  /** The type of the column's values (a feature's, or the entity key column's). */
  type: ColumnType;
  /**
   * One per entity row, canonical (see engine/schema.ts: timestamps epoch ms, int64 beyond 2^53 as decimal strings or bigints);
   * null unless PRESENT, counts included (asof's own answers give a count of an entity never seen as 0, NOT_FOUND).
   */
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

type Deps = Pick<Services, 'online' | 'audit'>;

const invalid = (message: string, issues: FieldIssue[]): AsofError => new AsofError('ASOF_INVALID_ARGUMENT', message, issues);

/** One entity key column of a request: the features it keys, and the plan that evaluates them. */
interface KeyColumn {
  column: CompiledColumn;
  /** The first requested view keyed by it (named in errors). */
  view: string;
  /** Positions in the request's plan of the features it keys, in order. */
  positions: number[];
  /** Their selection when the request has more than one key column (else the request's own plan evaluates them). */
  selection?: FeatureSelection;
}

/** What a request's answer looks like, from its plan and naming alone. */
interface Layout {
  keys: KeyColumn[];
  /** The name each feature is answered under. */
  names: string[];
}

/** Per plan: the layout with bare names, and with `view__feature` names. */
const layouts = new WeakMap<Plan, [Layout | undefined, Layout | undefined]>();

function layoutOf(plan: Plan, fullFeatureNames: boolean): Layout {
  let both = layouts.get(plan);
  if (!both) layouts.set(plan, (both = [undefined, undefined]));
  const i = fullFeatureNames ? 1 : 0;
  return (both[i] ??= buildLayout(plan, fullFeatureNames));
}

function buildLayout(plan: Plan, fullFeatureNames: boolean): Layout {
  const features = plan.features;
  const names = features.map((f) => (fullFeatureNames ? `${f.view}__${f.feature}` : f.feature));
  const seen = new Map<string, string>();
  features.forEach((f, i) => {
    const other = seen.get(names[i]);
    if (other !== undefined) {
      throw invalid(
        `feature names collide: "${other}" and "${f.ref}" are both answered as "${names[i]}"${fullFeatureNames ? '' : '; set full_feature_names to name them view__feature'}`,
        [{ field: 'features', reason: `duplicate name "${names[i]}"` }],
      );
    }
    seen.set(names[i], f.ref);
  });
  const keys = new Map<string, KeyColumn>();
  features.forEach((f, i) => {
    const ev = plan.evaluators[i];
    const column = ev.schema.byName.get(ev.view.entity)!;
    let k = keys.get(column.name);
    if (!k) keys.set(column.name, (k = { column, view: f.view, positions: [] }));
    k.positions.push(i);
  });
  // The entity key columns are answered too, first and under their own names: a feature may not take one of them.
  features.forEach((f, i) => {
    const k = keys.get(names[i]);
    if (k !== undefined) {
      throw invalid(
        `feature "${f.ref}" would be answered as "${names[i]}", which is already the entity key column "${k.column.name}" of the answer (feature view "${k.view}" is keyed by it)${fullFeatureNames ? '' : '; set full_feature_names to name it view__feature'}`,
        [{ field: 'features', reason: `"${f.ref}" is named "${names[i]}", an entity key column` }],
      );
    }
  });
  if (keys.size > 1) for (const k of keys.values()) k.selection = Object.freeze({ features: k.positions.map((p) => features[p].ref) });
  return { keys: [...keys.values()], names };
}

export async function getFeastOnlineFeatures(deps: Deps, q: FeastQuery): Promise<FeastAnswer> {
  const hasFeatures = (q.features?.length ?? 0) > 0;
  if (hasFeatures === Boolean(q.featureService)) {
    throw invalid('give exactly one of features and feature_service', [{ field: 'features', reason: 'give exactly one of features, feature_service' }]);
  }
  const plan = await deps.online.plan(hasFeatures ? { features: q.features } : { service: q.featureService });
  const { keys, names } = layoutOf(plan, q.fullFeatureNames);

  const given = new Map(q.entities);
  if (given.size !== q.entities.length) throw invalid('an entity key column is given twice', [{ field: 'entities', reason: 'duplicate key column' }]);
  const needed = keys.map((k) => k.column.name);
  for (const k of keys) {
    if (!given.has(k.column.name)) {
      throw invalid(`feature view "${k.view}" is keyed by "${k.column.name}", which entities does not give (given: ${[...given.keys()].join(', ') || 'none'})`, [
        { field: `entities.${k.column.name}`, reason: `required by feature view "${k.view}"` },
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
  if (q.decisionIds && keys.length > 1) throw invalid('a recorded lookup (asof-decision-id) needs features keyed by one entity column', [{ field: 'asof-decision-id', reason: `the features are keyed by ${needed.join(', ')}` }]);
  for (const [name, values] of given) {
    if (values.length !== rows) {
      throw invalid(`every entities list must have the same length: "${needed[0]}" has ${rows}, "${name}" has ${values.length}`, [{ field: `entities.${name}`, reason: `expected ${rows} values` }]);
    }
  }

  // Entity key columns first: the keys themselves, typed by their column. Then the features, evaluated once per key column and turned column-wise.
  const columns = new Array<FeastColumn>(keys.length + names.length);
  const token: Token = {};
  for (let c = 0; c < keys.length; c++) {
    const { column, positions, selection } = keys[c];
    const entities = given.get(column.name)!;
    const sub = selection ? await deps.online.plan(selection) : plan;
    let e = await deps.online.evaluate(entities, sub);
    // A lookup recorded before under an id answers what it answered then (its token too).
    // Errors name the header (metadata) the ids came in: a Feast request has no `decisions` field.
    if (q.decisionIds) e = await deps.audit.recordLookups(q.caller ?? UNRESTRICTED, q.decisionIds, entities, e, (i) => `asof-decision-id[${i}]`, 'asof-decision-id');
    const values = entities.map((v) => column.coerce(typeof v === 'string' || typeof v === 'number' ? fromText(column.type, v) : v));
    columns[c] = { name: column.name, type: column.type, values, statuses: values.map(() => 'PRESENT' as const), eventTimes: values.map(() => null) };
    const nf = e.plan.features.length;
    positions.forEach((p, j) => {
      const col: FeastColumn = { name: names[p], type: e.plan.features[j].type, values: new Array(rows), statuses: new Array(rows), eventTimes: new Array(rows) };
      for (let i = 0, k = j; i < rows; i++, k += nf) {
        // Feast's rule, not asof's: asof answers a count of an entity it never saw as 0 (NOT_FOUND), Feast has no value without PRESENT.
        col.statuses[i] = e.statuses[k];
        col.values[i] = e.statuses[k] === 'PRESENT' ? e.values[k] : null;
        col.eventTimes[i] = e.eventTimes[k] ?? null;
      }
      columns[keys.length + p] = col;
    });
    for (const t in e.token) token[t] = Math.max(token[t] ?? -1, e.token[t]);
  }
  return { columns, token };
}
