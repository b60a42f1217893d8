/**
 * State reconstruction: an entity's feature values at a past moment, computed
 * from its changelog records by the one evaluator (features/evaluator.ts), and
 * the trail of records that led to them.
 *
 * Which records count:
 *   - with a token: the records at offsets <= token[table], in offset order
 *     (exactly what the serving read reflected), evaluated at `at`, the serving
 *     time: windows slide to it and ttl is judged at it;
 *   - without: `pointInTime` "known" (committed by `at`, offset order) or
 *     "event" (event time <= `at`), as training sets read (applyOrder).
 * The trail lists those records across every source table (commit order; event
 * order for "event"), each with the features whose value or status changed
 * when it was applied, evaluated at the record's own time (its commit time, or
 * its event time for "event").
 */
import { AsofError } from '../errors.js';
import { CHANGE_NAMES } from '../engine/arrow-codec.js';
import type { Engine, Token } from '../engine/engine.js';
import { formatTimestamp, toJsonValue, type Row } from '../engine/schema.js';
import type { Table } from '../engine/table.js';
import type { FeatureViewDef } from '../features/definitions.js';
import { entityKeyText } from '../features/entity-key.js';
import { ViewEvaluator, type EntityState, type Evaluated, type PointInTime } from '../features/evaluator.js';
import type { ResolvedFeature } from '../features/registry.js';
import type { ServedValues } from './decisions.js';
import { SourceSteps, walkSteps, type Step } from './steps.js';

export interface ReplayInput {
  /** Entity key as text. */
  entity: string;
  features: ResolvedFeature[];
  /** Definitions of the views the features name. */
  views: Map<string, FeatureViewDef>;
  /** Epoch ms. */
  at: number;
  pointInTime: PointInTime;
  token?: Token | null;
  /** The page of the trail to build: index of its first record and how many (default 0 and TRAIL_PAGE). */
  trailFrom?: number;
  trailLimit?: number;
}

/** Trail records per page unless asked otherwise. */
export const TRAIL_PAGE = 100;

export interface TrailRecord {
  table: string;
  offset: number;
  changeType: string;
  commitTime: string;
  eventTime: string;
  row: Record<string, unknown>;
  /** `view:feature` references whose value or status this record changed. */
  changed: string[];
}

export interface Replay extends ServedValues {
  /** The newest offset of each source table the values reflect (-1: none). */
  token: Token;
  /** The requested page of the trail. */
  trail: TrailRecord[];
  /** Index of the first trail record shown, how many there are in all, and where the next page starts (null: none). */
  trailPage: { from: number; total: number; next: number | null };
}

interface ViewGroup {
  ev: ViewEvaluator;
  /** The requested features of the view: their refs and indexes in the view. */
  refs: string[];
  indexes: number[];
}

/**
 * Reconstructs one entity's values at `at` and the trail that led to them.
 *
 * Each source table's records stream through once (steps.ts): applied to the
 * values as they are read, and walked in the trail's order up to the page's
 * end; the steps before the page leave only the states they lead to, and
 * only the page's records are kept. Memory is the page and the entity's
 * states, whatever the history's length or the page's depth (but "event"
 * without a token sorts each table's history whole by event time).
 */
export async function replay(engine: Engine, input: ReplayInput): Promise<Replay> {
  const groups = new Map<string, ViewGroup>();
  for (const f of input.features) {
    let g = groups.get(f.view);
    if (!g) {
      const def = input.views.get(f.view);
      if (!def) throw new AsofError('ASOF_FEATURE_VIEW_NOT_FOUND', `feature view "${f.view}" does not exist (in "${f.ref}")`, { view: f.view });
      g = { ev: new ViewEvaluator(def, engine.table(def.source).schema), refs: [], indexes: [] };
      groups.set(f.view, g);
    }
    g.refs.push(f.ref);
    g.indexes.push(f.index);
  }
  const out: Replay = { features: {}, statuses: {}, eventTimes: {}, token: {}, trail: [], trailPage: { from: 0, total: 0, next: null } };
  const from = Math.max(0, input.trailFrom ?? 0);
  const pageEnd = from + Math.min(10_000, Math.max(1, input.trailLimit ?? TRAIL_PAGE));
  const bySource = new Map<string, ViewGroup[]>();
  for (const g of groups.values()) bySource.set(g.ev.view.source, [...(bySource.get(g.ev.view.source) ?? []), g]);
  // With one source table its steps are the trail's: only the page's records are read whole. With more, where each
  // table's part of the page falls is known only as the walk merges them: every step before the page's end comes whole.
  const whole = { from: bySource.size === 1 ? from : 0, to: pageEnd };
  const parts: { steps: SourceSteps; groups: ViewGroup[] }[] = [];
  let page: Step[];
  try {
    for (const [source, gs] of bySource) {
      const evs = gs.map((g) => g.ev);
      const steps = await SourceSteps.open(engine.table(source), evs, { key: canonicalKey(evs[0], input.entity), at: input.at, pointInTime: input.pointInTime, token: input.token }, whole, pageEnd);
      parts.push({ steps, groups: gs });
    }
    page = await walkSteps(parts.map((p) => p.steps), from, pageEnd);
  } finally {
    for (const p of parts) await p.steps.close();
  }
  for (const { steps, groups: gs } of parts) {
    out.token[steps.table.name] = steps.last;
    gs.forEach((g, k) => put(out, g, steps.values![k]));
  }
  const total = parts.reduce((n, p) => n + p.steps.total, 0);
  const end = Math.min(total, pageEnd);
  out.trail = trail(page, groups, parts);
  out.trailPage = { from, total, next: end < total ? end : null };
  return out;
}

function put(out: ServedValues, g: ViewGroup, e: Evaluated): void {
  g.refs.forEach((ref, i) => {
    const j = g.indexes[i];
    out.features[ref] = g.ev.toJson(j, e.values[j]);
    out.statuses[ref] = e.statuses[j];
    const et = e.eventTimes[j];
    out.eventTimes[ref] = et === null || et === undefined ? null : formatTimestamp(et);
  });
}

/**
 * The trail records of the page's steps: each with the features it changed,
 * each view evaluated at the step's time before and after it, from the
 * states the steps before the page left (`before`, at the last one's time).
 * Only the page is evaluated: a window's evaluation costs its events, so
 * evaluating every step of a long history would be quadratic.
 */
function trail(page: Step[], groups: Map<string, ViewGroup>, parts: { steps: SourceSteps; groups: ViewGroup[] }[]): TrailRecord[] {
  if (page.length === 0) return [];
  const states = new Map<ViewGroup, { state?: EntityState; time: number; last?: string[] }>();
  const seen = (g: ViewGroup, state: EntityState | undefined, time: number): string[] | undefined => {
    if (!state) return undefined;
    const e = g.ev.evaluate(state, time);
    return g.indexes.map((j) => JSON.stringify([e.values[j], e.statuses[j]]));
  };
  for (const { steps, groups: gs } of parts) gs.forEach((g, k) => states.set(g, { state: steps.before[k], time: steps.beforeTime, last: seen(g, steps.before[k], steps.beforeTime) }));
  const out: TrailRecord[] = [];
  for (const { source, rec, time } of page) {
    const table = source.table.name;
    const changed: string[] = [];
    for (const g of groups.values()) {
      if (g.ev.view.source !== table) continue;
      const s = states.get(g)!;
      s.state = g.ev.apply(s.state, rec, time);
      s.time = time;
      const now = seen(g, s.state, time) ?? [];
      now.forEach((v, k) => {
        if (!s.last || s.last[k] !== v) changed.push(g.refs[k]);
      });
      s.last = now;
    }
    out.push({
      table,
      offset: rec.offset,
      changeType: CHANGE_NAMES[rec.change],
      commitTime: formatTimestamp(rec.commitTime),
      eventTime: formatTimestamp(source.evs[0].eventTimeOf(rec)),
      row: rowJson(source.table, rec.row),
      changed,
    });
  }
  return out;
}

function rowJson(table: Table, row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of table.schema.columns) out[c.name] = toJsonValue(c.type, row[c.name]);
  return out;
}

/** The entity as the canonical text of the view's entity column (what the key index and `entityOf` use). */
function canonicalKey(ev: ViewEvaluator, entity: string): string {
  const col = ev.schema.byName.get(ev.view.entity)!;
  try {
    return entityKeyText(col, entity);
  } catch (e) {
    const reason = (e as { reason?: string }).reason ?? String(e);
    throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${JSON.stringify(entity)} is not a valid ${col.name}: ${reason}`, [{ field: 'entity', reason }]);
  }
}
