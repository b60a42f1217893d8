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
import { applyColumns } from '../features/apply-columns.js';
import { entityKeyText } from '../features/entity-key.js';
import { applyOrder, ViewEvaluator, type EntityState, type Evaluated, type PointInTime, type SourceColumns, type SourceRecord } from '../features/evaluator.js';
import type { ResolvedFeature } from '../features/registry.js';
import type { ServedValues } from './decisions.js';
import { pkCut } from './pk-cut.js';

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

/**
 * Records applied per applyAll call, at least (not the last): a frame holds
 * only a few of one entity's records, and a log view's merge and pruning run
 * once per call. bench:audit tx replay CPU ~21 -> ~18.5 ms at 256 (1: per
 * frame); few enough records to die young.
 */
const APPLY_BATCH = 256;

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

/** One source table's part of the replay: how many steps it has, and the first ones, in the order applied. */
interface SourceSteps {
  table: string;
  total: number;
  /** The steps at indexes below the trail page's end (no later one can be on the page or before it), ascending by time (commit times ascend with offsets; "event" order is by event time). */
  kept: Step[];
}

/**
 * Reconstructs one entity's values at `at` and the trail that led to them.
 *
 * The records stream through: each batch is applied as it is read and then
 * let go, except the first ones of each source the trail page can reach.
 * Holding an entity's whole history (20,000 records in bench:audit) until the
 * end kept every record alive through the read, and collecting them cost
 * about as much as reading them.
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
  const byEvent = !input.token && input.pointInTime === 'event';
  const bySource = new Map<string, ViewGroup[]>();
  for (const g of groups.values()) bySource.set(g.ev.view.source, [...(bySource.get(g.ev.view.source) ?? []), g]);
  const sources: SourceSteps[] = [];
  for (const [source, gs] of bySource) {
    const ev = gs[0].ev;
    const states: (EntityState | undefined)[] = gs.map(() => undefined);
    const s: SourceSteps = { table: source, total: 0, kept: [] };
    let last = -1;
    const table = engine.table(source);
    const key = canonicalKey(ev, input.entity);
    // A pk view needs only the history's first records (the trail page) and its last (the state): pk-cut.ts.
    const cut = !byEvent && ev.isPk && keyed(table, ev) ? await pkCut(table, key, input.token ? (input.token[source] ?? -1) + 1 : Infinity, input.token ? undefined : input.at, pageEnd) : undefined;
    if (cut) {
      for (let k = 0; k < gs.length; k++) states[k] = gs[k].ev.applyAll(undefined, cut.tail, input.at);
      for (const rec of cut.head) s.kept.push({ table: source, rec, time: rec.commitTime });
      s.total = cut.total;
      last = cut.last;
    } else {
      // Past the trail's page only the views' columns are decoded ("event" reorders the whole history: every row whole).
      const columns = byEvent ? undefined : [...new Set(gs.flatMap((g) => g.ev.sourceColumns))];
      for await (const recs of visibleRecords(table, ev, key, input, pageEnd, columns)) {
        if (!Array.isArray(recs)) {
          // Past the trail's page, as columns: no step is kept (the page's records came whole before these).
          for (let k = 0; k < gs.length; k++) states[k] = applyColumns(gs[k].ev, states[k], recs, input.at);
          s.total += recs.count;
          if (recs.count) last = Math.max(last, recs.offsets[recs.count - 1]);
          continue;
        }
        // applyAll over a batch is exactly apply record by record (evaluator.ts).
        for (let k = 0; k < gs.length; k++) states[k] = gs[k].ev.applyAll(states[k], recs, input.at);
        for (const rec of recs) {
          if (s.total++ < pageEnd) s.kept.push({ table: source, rec, time: byEvent ? ev.eventTimeOf(rec) : rec.commitTime });
          if (rec.offset > last) last = rec.offset;
        }
      }
    }
    out.token[source] = last;
    gs.forEach((g, k) => put(out, g, g.ev.evaluate(states[k], input.at)));
    sources.push(s);
  }
  const total = sources.reduce((n, s) => n + s.total, 0);
  const end = Math.min(total, pageEnd);
  out.trail = trail(engine, firstSteps(sources, end), groups, from, end);
  out.trailPage = { from, total, next: end < total ? end : null };
  return out;
}

/**
 * The first `n` steps of all sources in the trail's order: by time, then
 * table name, then offset. Each source's steps are already in that order
 * (commit times never decrease along a table's offsets; "event" steps come
 * sorted by event time and offset), so this merges them.
 */
function firstSteps(sources: SourceSteps[], n: number): Step[] {
  if (sources.length === 1) return sources[0].kept.slice(0, n);
  const at = sources.map(() => 0);
  const out: Step[] = [];
  while (out.length < n) {
    let best = -1;
    for (let k = 0; k < sources.length; k++) {
      if (at[k] >= sources[k].kept.length) continue;
      const t = sources[k].kept[at[k]].time;
      const b = best < 0 ? undefined : sources[best].kept[at[best]].time;
      if (b === undefined || t < b || (t === b && sources[k].table < sources[best].table)) best = k;
    }
    out.push(sources[best].kept[at[best]++]);
  }
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
    return entityKeyText(col, entity);
  } catch (e) {
    const reason = (e as { reason?: string }).reason ?? String(e);
    throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${JSON.stringify(entity)} is not a valid ${col.name}: ${reason}`, [{ field: 'entity', reason }]);
  }
}

/** Records whole, or (past the trail's page, through the key index) as columns of the views' columns only. */
type Chunk = SourceRecord[] | SourceColumns;

/**
 * The entity's records in one source table that the replay applies, in the
 * order it applies them, a batch at a time: with a token, those at offsets up
 * to the token's; else the point-in-time rule (applyOrder) picks them.
 */
async function* visibleRecords(table: Table, ev: ViewEvaluator, key: string, input: ReplayInput, whole: number, columns: string[] | undefined): AsyncGenerator<Chunk> {
  const upTo = input.token ? (input.token[table.name] ?? -1) : Infinity;
  const batches = coalesced(entityRecords(table, ev, key, upTo, whole, columns), APPLY_BATCH);
  if (input.token) return yield* batches;
  if (input.pointInTime === 'known') {
    // Committed by `at`: commit times never decrease along the offsets, so the first record after it ends the replay.
    for await (const recs of batches) {
      if (!Array.isArray(recs)) {
        let n = 0;
        while (n < recs.count && recs.commitTimes[n] <= input.at) n++;
        if (n) yield n === recs.count ? recs : { ...recs, count: n };
        if (n < recs.count) return;
        continue;
      }
      const known = applyOrder(ev, recs, input.at, 'known');
      if (known.length) yield known;
      if (known.length < recs.length) return;
    }
    return;
  }
  // "event" reorders the whole history by event time (its records come whole: no columns are asked for).
  const all: SourceRecord[] = [];
  for await (const recs of batches) {
    if (!Array.isArray(recs)) throw new Error('an "event" replay reads whole records');
    for (const r of recs) all.push(r);
  }
  yield applyOrder(ev, all, input.at, 'event');
}

/** The arrays joined, in order, into arrays of at least `n` (the last one before columns, or the end, may be shorter); columns pass as they are. */
async function* coalesced<T>(batches: AsyncIterable<T[] | SourceColumns>, n: number): AsyncGenerator<T[] | SourceColumns> {
  let pending: T[] = [];
  for await (const b of batches) {
    if (!Array.isArray(b)) {
      if (pending.length) yield pending;
      pending = [];
      yield b;
      continue;
    }
    for (const x of b) pending.push(x);
    if (pending.length >= n) {
      yield pending;
      pending = [];
    }
  }
  if (pending.length) yield pending;
}

/** Whether the view's entity is the table's one key column: its records are found through the key index. */
const keyed = (table: Table, ev: ViewEvaluator): boolean => table.schema.keyColumns.length === 1 && table.schema.keyColumns[0].name === ev.view.entity;

/**
 * The entity's records at offsets <= upTo, in offset order, a batch at a
 * time: through the key index when the entity column is the table's key,
 * else by reading the table. Through the key index, the records after the
 * first `whole` come as columns of `columns` only (when given): the trail
 * shows whole rows, the state needs only what the views read, and needs no
 * object per record (apply-columns.ts).
 */
async function* entityRecords(table: Table, ev: ViewEvaluator, key: string, upTo: number, whole: number, columns: string[] | undefined): AsyncGenerator<Chunk> {
  const toOffset = upTo === Infinity ? undefined : upTo + 1;
  if (keyed(table, ev)) {
    // Key records have SourceRecord's shape (the change type as its code): taken as they come.
    if (!columns) return yield* table.scanKey(key, { toOffset });
    let read = 0;
    let next = 0;
    for await (const recs of table.scanKey(key, { toOffset, limit: whole })) {
      read += recs.length;
      next = recs[recs.length - 1].offset + 1;
      yield recs;
    }
    if (read === whole) yield* table.scanKeyColumns(key, columns, { fromOffset: next, toOffset });
    return;
  }
  for await (const b of table.scanBatches({ toOffset })) {
    const out: SourceRecord[] = [];
    for (let i = 0; i < b.count; i++) {
      if (ev.entityOf(b.rows[i]) === key) out.push({ offset: b.firstOffset + i, change: b.changes[i], commitTime: b.commitTime, row: b.rows[i] });
    }
    if (out.length) yield out;
  }
}
