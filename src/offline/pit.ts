/**
 * The point-in-time join of one feature view with a chunk of entity rows.
 * The entity rows are grouped by entity and sorted by time within each entity
 * (`orderRows`); records come from a scan of the source changelog in offset
 * order (scan.ts). Two ways to turn records into values:
 *
 * - The evaluator path (`evaluatorJoin`; any feature, and the only one for
 *   windowed aggregates): each entity's records are fed to the one evaluator
 *   (`ViewEvaluator.apply`) in the order `applyOrder` documents, and
 *   `evaluate(state, t)` gives the values. The records visible at t are a
 *   prefix of that order that only grows with t, so one pass per entity, in
 *   time order, answers all of the entity's rows.
 *
 * - The last-value path (`LastValueJoin`; views whose requested features are
 *   all column features): the evaluator's state for column features is one
 *   version, the greatest by rank among the visible records. So each row's
 *   version is a maximum over the records visible at its time:
 *     log, known:  visible when eventTime <= t and commitTime <= t; rank (eventTime, offset)
 *     log, event:  visible when eventTime <= t;                     rank (eventTime, offset)
 *     pk,  known:  visible when commitTime <= t;                    rank offset
 *     pk,  event:  visible when eventTime <= t;                     rank (eventTime, offset)
 *   A -D version means absent; ttl nulls a version whose eventTime < t - ttl,
 *   exactly as `evaluate` does. A record visible from time v counts for every
 *   row of its entity with t >= v: it is offered to the first such row, and a
 *   running maximum over the entity's rows in time order spreads it to the
 *   later ones. Records are read once, in offset order, and never sorted.
 *   Tests hold this path to the evaluator path, to `evaluateAt`, to DuckDB's
 *   ASOF JOIN and to online serving.
 */
import { ChangeType } from '../engine/arrow-codec.js';
import type { Row } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { EntityState, PointInTime, ViewEvaluator } from '../features/evaluator.js';
import { valueStore, type ValueStore } from './columns.js';
import { isNumberColumn, setCell, type Column, type NumberColumn } from './out-columns.js';
import type { KeptBatch, RecordSet, RecordSink } from './scan.js';

export interface RowKeys {
  n: number;
  /** Each entity row's time, epoch ms. */
  t: Float64Array;
  /** Each entity row's entity (dense id); -1 when it has none. */
  ent: Int32Array;
  /** Number of distinct entities. */
  entities: number;
}

/** Entity rows grouped by entity, by time within each: position j holds row `row[j]` at time `t[j]`. */
export interface RowOrder {
  /** Positions of entity g: [start[g], start[g + 1]). */
  start: Int32Array;
  row: Int32Array;
  t: Float64Array;
}

/** Orders the rows of the entities with id % parts === part (all when parts is 1). */
export function orderRows(keys: RowKeys, partition: { count: number; index: number } = { count: 1, index: 0 }): RowOrder {
  const { count: parts, index: part } = partition;
  const E = keys.entities;
  const start = new Int32Array(E + 1);
  const keep = (g: number): boolean => g >= 0 && (parts === 1 || g % parts === part);
  for (let i = 0; i < keys.n; i++) if (keep(keys.ent[i])) start[keys.ent[i] + 1]++;
  for (let g = 0; g < E; g++) start[g + 1] += start[g];
  const pos = start.slice(0, E);
  const row = new Int32Array(start[E]);
  for (let i = 0; i < keys.n; i++) if (keep(keys.ent[i])) row[pos[keys.ent[i]]++] = i;
  sortGroups(row, start, keys.t);
  const t = new Float64Array(row.length);
  for (let j = 0; j < row.length; j++) t[j] = keys.t[row[j]];
  return { start, row, t };
}

/** Sorts each group's slice of `order` by (key, tie) ascending; cheap when a slice is already sorted. */
function sortGroups(order: Int32Array, start: Int32Array, key: Float64Array, tie?: Float64Array): void {
  for (let g = 0; g + 1 < start.length; g++) {
    const lo = start[g];
    const hi = start[g + 1];
    let sorted = true;
    for (let i = lo + 1; i < hi && sorted; i++) {
      const a = order[i - 1];
      const b = order[i];
      if (key[b] < key[a] || (tie && key[b] === key[a] && tie[b] < tie[a])) sorted = false;
    }
    if (!sorted) order.subarray(lo, hi).sort((a, b) => key[a] - key[b] || (tie ? tie[a] - tie[b] : 0));
  }
}

/** The source column a column feature reads. */
function columnOf(ev: ViewEvaluator, featureIndex: number): string {
  const f = ev.view.features[featureIndex];
  if (!('column' in f)) throw new Error(`feature "${f.name}" is not a column feature`);
  return f.column;
}

/** Whether the last-value path can answer these features of a view. */
export const lastValueApplies = (ev: ViewEvaluator, features: number[]): boolean => features.every((i) => ev.features[i].col !== undefined);

/** The last-value path, as a scan sink (see the header). Memory: 32 bytes per entity row, plus the values of current candidates. */
export class LastValueJoin implements RecordSink {
  private readonly byOffset: boolean;
  private readonly visibleAtCommit: boolean;
  /**
   * Per position j, four numbers side by side (one cache line holds them):
   * [4j] the row's time, [4j+1] event time and [4j+2] offset of the best record
   * offered to it, [4j+3] that record's value index * 2 + 1 if it is a -D, or -1.
   */
  private readonly pos: Float64Array;
  private readonly stores: ValueStore[];
  private readonly compactAt: number;
  private offered = new Int32Array(0);

  constructor(
    private readonly ev: ViewEvaluator,
    mode: PointInTime,
    private readonly features: number[],
    private readonly order: RowOrder,
    private readonly columns: { name: string; type: ColumnType }[],
    /** How many records the scan may offer at most (sizes the value stores). */
    expected: number,
    /** Drop superseded values once this many are held (default: 4 per entity row, at least 1M). */
    compactAt?: number,
  ) {
    this.byOffset = ev.isPk && mode === 'known';
    this.visibleAtCommit = mode === 'known';
    const m = order.row.length;
    this.pos = new Float64Array(4 * m);
    for (let j = 0; j < m; j++) {
      this.pos[4 * j] = order.t[j];
      this.pos[4 * j + 3] = -1;
    }
    this.compactAt = compactAt ?? Math.max(4 * m, 1 << 20);
    this.stores = columns.map((c) => valueStore(c.type, Math.min(expected, this.compactAt)));
  }

  add(b: KeptBatch): void {
    const start = this.order.start;
    const pos = this.pos;
    const byOffset = this.byOffset;
    const atCommit = this.visibleAtCommit;
    const { ent, eventTime, rows, change, firstOffset, commitTime } = b;
    if (this.offered.length < b.count) this.offered = new Int32Array(b.n);
    const offered = this.offered;
    let base = this.stores.length ? this.stores[0].size : 0;
    let n = 0;
    for (let k = 0; k < b.count; k++) {
      const g = ent[k];
      const end = start[g + 1];
      let lo = start[g];
      const et = eventTime[k];
      const off = firstOffset + rows[k];
      const visible = byOffset ? commitTime : atCommit && commitTime > et ? commitTime : et;
      // The first of the entity's rows whose time is >= visible.
      let hi = end;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (pos[4 * mid] < visible) lo = mid + 1;
        else hi = mid;
      }
      if (lo === end) continue;
      const p = 4 * lo;
      if (pos[p + 3] >= 0 && (byOffset ? off <= pos[p + 2] : et < pos[p + 1] || (et === pos[p + 1] && off <= pos[p + 2]))) continue;
      pos[p + 1] = et;
      pos[p + 2] = off;
      pos[p + 3] = (base + n) * 2 + (change[k] === ChangeType.DELETE ? 1 : 0);
      offered[n++] = rows[k];
    }
    if (!n) return;
    for (let i = 0; i < this.columns.length; i++) this.stores[i].append(b.batch.getChild(this.columns[i].name), offered, n, b.n);
    base += n;
    if (base > this.compactAt) this.compact();
  }

  /** Drops the values of records that are no longer anyone's candidate. */
  private compact(): void {
    const pos = this.pos;
    const m = pos.length / 4;
    const live = new Int32Array(m);
    let n = 0;
    for (let j = 0; j < m; j++) {
      const c = pos[4 * j + 3];
      if (c < 0) continue;
      live[n] = c >> 1;
      pos[4 * j + 3] = n++ * 2 + (c & 1);
    }
    for (const s of this.stores) s.keep(live, n);
  }

  /** Writes each entity row's values into `out[k]` for requested feature k. */
  finish(out: Column[]): void {
    const { start, row } = this.order;
    const { pos, byOffset } = this;
    const ttl = this.ev.ttlMs;
    const stores = this.features.map((i) => this.stores[this.columns.findIndex((c) => c.name === columnOf(this.ev, i))]);
    const typed = stores.map((s, k) => isNumberColumn(out[k]) && s.copyInto !== undefined);
    for (let g = 0; g + 1 < start.length; g++) {
      let best = -1;
      for (let j = start[g]; j < start[g + 1]; j++) {
        const p = 4 * j;
        if (pos[p + 3] >= 0 && (best < 0 || (byOffset ? pos[p + 2] > pos[best + 2] : pos[p + 1] > pos[best + 1] || (pos[p + 1] === pos[best + 1] && pos[p + 2] > pos[best + 2])))) best = p;
        const c = best < 0 ? -1 : pos[best + 3];
        const present = c >= 0 && (c & 1) === 0 && !(ttl !== undefined && pos[best + 1] < pos[p] - ttl);
        const r = row[j];
        for (let k = 0; k < stores.length; k++) {
          const col = out[k];
          if (!present) setCell(col, r, null);
          else if (typed[k]) stores[k].copyInto!(c >> 1, col as NumberColumn, r);
          else setCell(col, r, stores[k].get(c >> 1));
        }
      }
    }
  }
}

/** Stable counting sort of record indexes by entity. */
function groupRecords(recs: RecordSet, entities: number): { start: Int32Array; order: Int32Array } {
  const start = new Int32Array(entities + 1);
  for (let i = 0; i < recs.n; i++) start[recs.ent[i] + 1]++;
  for (let g = 0; g < entities; g++) start[g + 1] += start[g];
  const pos = start.slice(0, entities);
  const order = new Int32Array(recs.n);
  for (let i = 0; i < recs.n; i++) order[pos[recs.ent[i]]++] = i;
  return { start, order };
}

/** The evaluator path (see the header): fills `out[k]` for requested feature k, for the rows in `order`. */
export function evaluatorJoin(ev: ViewEvaluator, mode: PointInTime, features: number[], order: RowOrder, recs: RecordSet, out: Column[]): void {
  const { eventTime: et, commitTime: ct, offset: off, change } = recs;
  const R = groupRecords(recs, order.start.length - 1);
  // applyOrder: "known" applies in offset order (grouping kept it); "event" in (event time, offset) order.
  if (mode === 'event') sortGroups(R.order, R.start, et, off);
  const visibleAt = mode === 'event' ? et : ct;
  const etColumn = ev.schema.def.eventTime;
  const toRow = (r: number): Row => {
    const row: Row = {};
    if (etColumn) row[etColumn] = et[r];
    for (let c = 0; c < recs.columns.length; c++) row[recs.columns[c]] = recs.values[c].get(r);
    return row;
  };
  const kinds = features.map((i) => ev.features[i].type.kind);
  for (let g = 0; g + 1 < order.start.length; g++) {
    let i = R.start[g];
    const end = R.start[g + 1];
    let state: EntityState | undefined;
    for (let j = order.start[g]; j < order.start[g + 1]; j++) {
      const t = order.t[j];
      while (i < end && visibleAt[R.order[i]] <= t) {
        const r = R.order[i++];
        state = ev.apply(state, { offset: off[r], change: change[r], commitTime: ct[r], row: toRow(r) }, t);
      }
      const v = ev.evaluate(state, t).values;
      for (let k = 0; k < features.length; k++) setCell(out[k], order.row[j], canonical(kinds[k], v[features[k]]));
    }
  }
}

/** The evaluator keeps int64 beyond 2^53 as decimal strings (its state is JSON); back to bigint. */
function canonical(kind: string, v: unknown): unknown {
  if (v === undefined) return null;
  if (kind === 'int64' && typeof v === 'string') return BigInt(v);
  return v;
}
