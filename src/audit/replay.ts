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
import { formatTimestamp, fromText, toJsonValue, type Row } from '../engine/schema.js';
import type { Table } from '../engine/table.js';
import type { FeatureViewDef } from '../features/definitions.js';
import { applyOrder, ViewEvaluator, type EntityState, type Evaluated, type PointInTime, type SourceRecord } from '../features/evaluator.js';
import type { ResolvedFeature } from '../features/registry.js';
import type { ServedValues } from './decisions.js';

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

interface Step {
  table: string;
  rec: SourceRecord;
  /** When the record counts in the replay's order: commit time, or event time for "event". */
  time: number;
}

/** Reconstructs one entity's values at `at` and the trail that led to them. */
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
  const steps: Step[] = [];
  const bySource = new Map<string, ViewGroup[]>();
  for (const g of groups.values()) bySource.set(g.ev.view.source, [...(bySource.get(g.ev.view.source) ?? []), g]);
  for (const [source, gs] of bySource) {
    const table = engine.table(source);
    const ev = gs[0].ev;
    const key = canonicalKey(ev, input.entity);
    const upTo = input.token ? (input.token[source] ?? -1) : Infinity;
    const all = await entityRecords(table, ev, key, upTo);
    // With a token the read saw exactly these records, in offset order; without, the point-in-time rule picks them.
    const visible = input.token ? all : applyOrder(ev, all, input.at, input.pointInTime);
    out.token[source] = visible.reduce((m, r) => Math.max(m, r.offset), -1);
    for (const g of gs) {
      let state: EntityState | undefined;
      for (const r of visible) state = g.ev.apply(state, r, input.at);
      put(out, g, g.ev.evaluate(state, input.at));
    }
    const byEvent = !input.token && input.pointInTime === 'event';
    for (const rec of visible) steps.push({ table: source, rec, time: byEvent ? ev.eventTimeOf(rec) : rec.commitTime });
  }
  steps.sort((a, b) => a.time - b.time || (a.table < b.table ? -1 : a.table > b.table ? 1 : a.rec.offset - b.rec.offset));
  const from = Math.max(0, input.trailFrom ?? 0);
  const end = Math.min(steps.length, from + Math.min(10_000, Math.max(1, input.trailLimit ?? TRAIL_PAGE)));
  out.trail = trail(engine, steps, groups, from, end);
  out.trailPage = { from, total: steps.length, next: end < steps.length ? end : null };
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
 * The trail records of steps [from, end): each with the features it changed,
 * each view evaluated at the step's time before and after it. Every step is
 * applied (the state needs all of them), but only the page is evaluated: a
 * window's evaluation costs its events, so evaluating every step of a long
 * history would be quadratic.
 */
function trail(engine: Engine, steps: Step[], groups: Map<string, ViewGroup>, from: number, end: number): TrailRecord[] {
  const states = new Map<ViewGroup, { state?: EntityState; time: number; last?: string[] }>();
  for (const g of groups.values()) states.set(g, { time: 0 });
  const seen = (g: ViewGroup, state: EntityState | undefined, time: number): string[] | undefined => {
    if (!state) return undefined;
    const e = g.ev.evaluate(state, time);
    return g.indexes.map((j) => JSON.stringify([e.values[j], e.statuses[j]]));
  };
  const out: TrailRecord[] = [];
  for (let i = 0; i < end; i++) {
    const { table, rec, time } = steps[i];
    if (i === from) for (const [g, s] of states) s.last = seen(g, s.state, s.time);
    const changed: string[] = [];
    let ev: ViewEvaluator | undefined;
    for (const g of groups.values()) {
      if (g.ev.view.source !== table) continue;
      ev = g.ev;
      const s = states.get(g)!;
      s.state = g.ev.apply(s.state, rec, time);
      s.time = time;
      if (i < from) continue;
      const now = seen(g, s.state, time) ?? [];
      now.forEach((v, k) => {
        if (!s.last || s.last[k] !== v) changed.push(g.refs[k]);
      });
      s.last = now;
    }
    if (i < from) continue;
    out.push({
      table,
      offset: rec.offset,
      changeType: CHANGE_NAMES[rec.change],
      commitTime: formatTimestamp(rec.commitTime),
      eventTime: formatTimestamp(ev!.eventTimeOf(rec)),
      row: rowJson(engine.table(table), rec.row),
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
    const v = col.coerce(fromText(col.type, entity));
    return typeof v === 'bigint' ? v.toString() : String(v);
  } catch (e) {
    const reason = (e as { reason?: string }).reason ?? String(e);
    throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${JSON.stringify(entity)} is not a valid ${col.name}: ${reason}`, [{ field: 'entity', reason }]);
  }
}

/**
 * The entity's records at offsets <= upTo, in offset order: through the key
 * index when the entity column is the table's key, else by reading the table.
 */
async function entityRecords(table: Table, ev: ViewEvaluator, key: string, upTo: number): Promise<SourceRecord[]> {
  const s = table.schema;
  const toOffset = upTo === Infinity ? undefined : upTo + 1;
  const out: SourceRecord[] = [];
  if (s.keyColumns.length === 1 && s.keyColumns[0].name === ev.view.entity) {
    // Key records have SourceRecord's shape (the change type as its code): taken as they come.
    for await (const recs of table.scanKey(key, { toOffset })) for (const r of recs) out.push(r);
    return out;
  }
  for await (const b of table.scanBatches({ toOffset })) {
    for (let i = 0; i < b.count; i++) {
      if (ev.entityOf(b.rows[i]) === key) out.push({ offset: b.firstOffset + i, change: b.changes[i], commitTime: b.commitTime, row: b.rows[i] });
    }
  }
  return out;
}
