/**
 * The point-in-time join of one feature view with a chunk of entity rows.
 *
 * Both sides are grouped by entity (a stable counting sort: records stay in
 * offset order within an entity), the entity rows of each entity are visited
 * in time order, and a cursor over that entity's records moves forward only.
 * Two ways to turn records into values, chosen per view:
 *
 * - The evaluator path (any feature; always used for windowed aggregates):
 *   each entity's records are fed to the one evaluator (`ViewEvaluator.apply`)
 *   in the order `applyOrder` documents, and `evaluate(state, t)` gives the
 *   values. Because the visible records at t are a prefix of that order that
 *   only grows with t, one pass per entity answers all its rows.
 *
 * - The last-value path (views whose requested features are all column
 *   features): the evaluator's state for column features is one version, the
 *   greatest by rank among the visible records, so a running maximum over the
 *   same records gives the same version without building states:
 *     log, known:  visible when eventTime <= t and commitTime <= t; rank (eventTime, offset)
 *     log, event:  visible when eventTime <= t;                     rank (eventTime, offset)
 *     pk,  known:  visible when commitTime <= t;                    rank offset
 *     pk,  event:  visible when eventTime <= t;                     rank (eventTime, offset)
 *   A -D version means absent; ttl nulls a version whose eventTime < t - ttl,
 *   exactly as `evaluate` does. Tests hold both paths to `evaluateAt` and to
 *   online serving.
 */
import { ChangeType } from '../engine/arrow-codec.js';
import type { Row } from '../engine/schema.js';
import type { ViewEvaluator, PointInTime, EntityState } from '../features/evaluator.js';
import type { RecordSet } from './scan.js';

export interface LabelKeys {
  n: number;
  /** The entity row's time, epoch ms. */
  t: Float64Array;
  /** Dense entity id per entity row; -1 when the row has no entity value. */
  ent: Int32Array;
  /** Number of distinct entities. */
  entities: number;
}

export interface JoinSpec {
  ev: ViewEvaluator;
  mode: PointInTime;
  /** Requested features: indexes into `ev.features`. */
  features: number[];
  /** Only entities with id % count === index (the records were scanned the same way). */
  partition: { count: number; index: number };
  /** Use the evaluator path even for column features (tests compare the two paths). */
  forceEvaluator?: boolean;
}

/** Stable counting sort of indexes [0, n) by group id; ids < 0 and ids outside the partition are left out. */
function groupBy(ids: Int32Array, n: number, groups: number, keep: (id: number) => boolean): { start: Int32Array; order: Int32Array } {
  const start = new Int32Array(groups + 1);
  for (let i = 0; i < n; i++) {
    const g = ids[i];
    if (g >= 0 && keep(g)) start[g + 1]++;
  }
  for (let g = 0; g < groups; g++) start[g + 1] += start[g];
  const pos = start.slice(0, groups);
  const order = new Int32Array(start[groups]);
  for (let i = 0; i < n; i++) {
    const g = ids[i];
    if (g >= 0 && keep(g)) order[pos[g]++] = i;
  }
  return { start, order };
}

/** Sorts each group's slice of `order` by (key, tie) ascending; cheap when a slice is already sorted. */
function sortGroups(order: Int32Array, start: Int32Array, key: Float64Array, tie?: Float64Array): void {
  const less = (a: number, b: number): boolean => key[a] < key[b] || (tie !== undefined && key[a] === key[b] && tie[a] < tie[b]);
  for (let g = 0; g + 1 < start.length; g++) {
    const lo = start[g];
    const hi = start[g + 1];
    let sorted = true;
    for (let i = lo + 1; i < hi && sorted; i++) if (less(order[i], order[i - 1])) sorted = false;
    if (sorted) continue;
    if (hi - lo <= 32) {
      for (let i = lo + 1; i < hi; i++) {
        const x = order[i];
        let j = i - 1;
        while (j >= lo && less(x, order[j])) {
          order[j + 1] = order[j];
          j--;
        }
        order[j + 1] = x;
      }
    } else {
      order.subarray(lo, hi).sort((a, b) => key[a] - key[b] || (tie ? tie[a] - tie[b] : 0));
    }
  }
}

/**
 * Fills `out[k][row]` for every entity row of the partition and requested
 * feature k with the value at the row's time (canonical values, null when none).
 */
export function joinView(spec: JoinSpec, labels: LabelKeys, recs: RecordSet, out: unknown[][]): void {
  const { count: parts, index: part } = spec.partition;
  const keep = parts > 1 ? (id: number) => id % parts === part : () => true;
  const L = groupBy(labels.ent, labels.n, labels.entities, keep);
  sortGroups(L.order, L.start, labels.t);
  const R = groupBy(recs.ent, recs.n, labels.entities, keep);
  const columnsOnly = spec.features.every((i) => spec.ev.features[i].col !== undefined);
  if (columnsOnly && !spec.forceEvaluator) lastValues(spec, labels, recs, L, R, out);
  else evaluatorPath(spec, labels, recs, L, R, out);
}

type Groups = { start: Int32Array; order: Int32Array };

function lastValues(spec: JoinSpec, labels: LabelKeys, recs: RecordSet, L: Groups, R: Groups, out: unknown[][]): void {
  const { ev, mode } = spec;
  const { eventTime: et, commitTime: ct, offset: off, change } = recs;
  const byOffset = ev.isPk && mode === 'known';
  // When each record becomes visible (see the header).
  let visibleAt: Float64Array;
  if (byOffset) visibleAt = ct;
  else if (mode === 'event' || ev.isPk) visibleAt = et;
  else {
    visibleAt = new Float64Array(recs.n);
    for (let i = 0; i < recs.n; i++) visibleAt[i] = et[i] > ct[i] ? et[i] : ct[i];
  }
  // pk/known: commit times never decrease with offset, so offset order is already visibility order.
  if (!byOffset) sortGroups(R.order, R.start, visibleAt, off);
  const stores = spec.features.map((i) => recs.values[recs.columns.indexOf(columnOf(ev, i))]);
  const ttl = ev.ttlMs;
  const lt = labels.t;
  for (let g = 0; g + 1 < L.start.length; g++) {
    let i = R.start[g];
    const rEnd = R.start[g + 1];
    let best = -1;
    for (let j = L.start[g]; j < L.start[g + 1]; j++) {
      const row = L.order[j];
      const t = lt[row];
      while (i < rEnd && visibleAt[R.order[i]] <= t) {
        const r = R.order[i++];
        if (best < 0 || (byOffset ? off[r] > off[best] : et[r] > et[best] || (et[r] === et[best] && off[r] > off[best]))) best = r;
      }
      const present = best >= 0 && change[best] !== ChangeType.DELETE && !(ttl !== undefined && et[best] < t - ttl);
      for (let k = 0; k < stores.length; k++) out[k][row] = present ? stores[k].get(best) : null;
    }
  }
}

/** The source column a column feature reads. */
function columnOf(ev: ViewEvaluator, featureIndex: number): string {
  const f = ev.view.features[featureIndex];
  if (!('column' in f)) throw new Error(`feature "${f.name}" is not a column feature`);
  return f.column;
}

function evaluatorPath(spec: JoinSpec, labels: LabelKeys, recs: RecordSet, L: Groups, R: Groups, out: unknown[][]): void {
  const { ev, mode } = spec;
  const { eventTime: et, commitTime: ct, offset: off, change } = recs;
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
  const types = spec.features.map((i) => ev.features[i].type.kind);
  const lt = labels.t;
  for (let g = 0; g + 1 < L.start.length; g++) {
    let i = R.start[g];
    const rEnd = R.start[g + 1];
    let state: EntityState | undefined;
    for (let j = L.start[g]; j < L.start[g + 1]; j++) {
      const row = L.order[j];
      const t = lt[row];
      while (i < rEnd && visibleAt[R.order[i]] <= t) {
        const r = R.order[i++];
        state = ev.apply(state, { offset: off[r], change: change[r], commitTime: ct[r], row: toRow(r) }, t);
      }
      const v = ev.evaluate(state, t).values;
      for (let k = 0; k < spec.features.length; k++) out[k][row] = canonical(types[k], v[spec.features[k]]);
    }
  }
}

/** The evaluator keeps int64 beyond 2^53 as decimal strings (its state is JSON); back to bigint. */
function canonical(kind: string, v: unknown): unknown {
  if (v === undefined) return null;
  if (kind === 'int64' && typeof v === 'string') return BigInt(v);
  return v;
}
