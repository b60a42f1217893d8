/**
 * The one evaluator: how a feature view's values for one entity follow from
 * the source table's changelog records. Online serving, training sets and audit
 * all call it, so the same records give the same values whichever path asks.
 *
 * The state of one (view, entity) is a small JSON-safe object (`EntityState`),
 * updated with `apply` (one record) or `applyAll` (a batch, the same result)
 * (apply-columns.ts: the same from records held as columns) and read at a
 * point in time with `evaluate`. What differs between the read modes is only which records are
 * applied, and in what order (see `applyOrder` below):
 *   - "known" (online, audit, training with pointInTime "known"): the records
 *     committed by t, in commit (offset) order; a pk view then holds exactly
 *     the row the engine served.
 *   - "event" (training with pointInTime "event"): the records whose event time
 *     is <= t, in (event time, offset) order, whenever they were committed.
 * Ties in event time go to the highest offset. Times are epoch ms, UTC.
 */
import { ChangeType } from '../engine/arrow-codec.js';
import { toJsonValue, type Row, type TableSchema } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import { featureType, parseDuration, type FeatureViewDef } from './definitions.js';
import { jsonSafe, safeAll } from './json-safe.js';
import { aggregate, mergeSorted, upperBound, type AggSpec, type Entry } from './window.js';

export { applyOrder, evaluateAt } from './point-in-time.js';

export type FeatureStatus = 'PRESENT' | 'NOT_FOUND' | 'NULL_VALUE' | 'OUTSIDE_MAX_AGE';
export type PointInTime = 'event' | 'known';

/** One source record as the evaluator needs it. */
export interface SourceRecord {
  offset: number;
  /** ChangeType code (0 +I, 1 -U, 2 +U, 3 -D). */
  change: number;
  /** Epoch ms. */
  commitTime: number;
  row: Row;
}

/**
 * Source records as columns (the audit's key reads: engine KeyColumns):
 * record i is `offsets[i]`, `changes[i]`, `commitTimes[i]` (epoch ms), and
 * `values[j][i]` its value of `columns[j]`; the first `count` count.
 */
export interface SourceColumns {
  count: number;
  offsets: ArrayLike<number>;
  changes: ArrayLike<number>;
  commitTimes: ArrayLike<number>;
  columns: readonly string[];
  values: readonly (readonly unknown[])[];
}

/** [event time ms, offset, values of the view's column features in order]. */
export type Version = [number, number, unknown[]];

/**
 * Per (view, entity) state. JSON-safe (int64 beyond 2^53 held as strings), so
 * an online store can keep it packed. Absent state means the entity is unknown.
 */
export interface EntityState {
  /** Column features: the newest visible version. */
  b?: Version;
  /** Log views: versions whose event time was later than `now` when applied; promoted once visible. */
  f?: Version[];
  /** Log views with aggregates: [event time, offset, ...aggregate inputs], ascending by (event time, offset), pruned to the longest window. */
  w?: unknown[][];
}

export interface Evaluated {
  /** Canonical values (timestamps epoch ms), one per feature in view order. */
  values: unknown[];
  statuses: FeatureStatus[];
  /** Event time (epoch ms) the value stems from; null when none. */
  eventTimes: (number | null)[];
  /**
   * Set when every feature is PRESENT with this one event time (a pk row with no null value), so
   * that renderers need not check each feature; unset says nothing.
   */
  uniform?: number;
}

interface CompiledFeature {
  name: string;
  type: ColumnType;
  /** Column features: index into Version values. */
  col?: number;
  agg?: AggSpec;
}

const newer = (et: number, off: number, v: { 0: number; 1: number } | undefined): boolean => !v || et > v[0] || (et === v[0] && off > v[1]);

export class ViewEvaluator {
  readonly features: CompiledFeature[];
  /** Source columns read by column features, in Version order. */
  readonly valueColumns: { name: string; type: ColumnType }[] = [];
  /** Source columns read by aggregates, in event-entry order. */
  readonly aggColumns: { name: string; type: ColumnType }[] = [];
  readonly maxWindowMs: number;
  readonly ttlMs?: number;
  readonly isPk: boolean;
  readonly eventTimeColumn?: string;
  /** Every source column `eventTimeOf`, `apply` and `applyAll` read: rows holding only these evaluate the same (`entityOf` reads the view's entity column besides). */
  readonly sourceColumns: string[];
  /** What `rowState` takes, by schema position: the column features' columns (Version order), then a pk table's event-time column if it has one. */
  readonly rowColumns: number[];

  constructor(
    readonly view: FeatureViewDef,
    readonly schema: TableSchema,
  ) {
    this.isPk = schema.kind === 'pk';
    this.eventTimeColumn = schema.def.eventTime;
    this.ttlMs = view.ttl ? parseDuration(view.ttl) : undefined;
    let maxWindow = 0;
    this.features = view.features.map((f) => {
      const type = featureType(f, schema);
      if ('column' in f) {
        let col = this.valueColumns.findIndex((c) => c.name === f.column);
        if (col < 0) col = this.valueColumns.push({ name: f.column, type: schema.byName.get(f.column)!.type }) - 1;
        return { name: f.name, type, col };
      }
      const windowMs = parseDuration(f.agg.window)!;
      maxWindow = Math.max(maxWindow, windowMs);
      let input = -1;
      if (f.agg.column !== undefined) {
        input = this.aggColumns.findIndex((c) => c.name === f.agg.column);
        if (input < 0) input = this.aggColumns.push({ name: f.agg.column, type: schema.byName.get(f.agg.column)!.type }) - 1;
      }
      return { name: f.name, type, agg: { fn: f.agg.fn, input, windowMs } };
    });
    this.maxWindowMs = maxWindow;
    this.sourceColumns = [...new Set([...(this.eventTimeColumn ? [this.eventTimeColumn] : []), ...this.valueColumns.map((c) => c.name), ...this.aggColumns.map((c) => c.name)])];
    this.readNames = this.valueColumns.map((c) => c.name);
    if (this.isPk && this.eventTimeColumn) this.readNames.push(this.eventTimeColumn);
    this.rowColumns = this.readNames.map((n) => schema.columns.findIndex((c) => c.name === n));
    this.rowOnly = this.isPk && this.ttlMs === undefined && this.features.every((f, i) => f.col === i) && this.valueColumns.length === this.features.length;
    this.allPresent = Object.freeze(this.features.map((): FeatureStatus => 'PRESENT')) as FeatureStatus[];
  }

  /** A pk view without ttl whose features read distinct columns, each its own, in order: see rowEvaluated. */
  private readonly rowOnly: boolean;
  /** Statuses of an evaluation where every feature is PRESENT, shared (frozen). */
  private readonly allPresent: FeatureStatus[];

  get hasAggregates(): boolean {
    return this.maxWindowMs > 0;
  }

  /** The canonical entity key of a source row, or null when the row has no entity value. */
  entityOf(row: Row): string | null {
    const v = row[this.view.entity];
    if (v === null || v === undefined) return null;
    return typeof v === 'bigint' ? v.toString() : String(v);
  }

  /** When a record happened: its event-time column, else its commit time. A delete happens at its commit. */
  eventTimeOf(rec: SourceRecord): number {
    if (rec.change === ChangeType.DELETE || !this.eventTimeColumn) return rec.commitTime;
    const v = rec.row[this.eventTimeColumn];
    return typeof v === 'number' ? v : rec.commitTime;
  }

  /**
   * Applies one record to an entity's state and returns the new state
   * (undefined: the entity is absent, after a pk delete). `now` (epoch ms) is
   * the time the state will next be read at or after; it only decides which
   * log versions are still in the future and which window events can be dropped.
   * Mutates and returns `state` where it can.
   */
  apply(state: EntityState | undefined, rec: SourceRecord, now: number): EntityState | undefined {
    return this.applyAll(state, [rec], now);
  }

  /**
   * Applies records (offset order) all at `now`: exactly the state `apply`
   * gives record by record, in O(k log k + m) for k records and m events
   * already in the state, not O(k * m). A log view's state is a maximum and
   * sorted sets (window.ts), none of which depends on the order the records
   * come in, so the batch's versions and events are sorted once and merged;
   * a pk view keeps the row of its last record that is no -U.
   */
  applyAll(state: EntityState | undefined, recs: SourceRecord[], now: number): EntityState | undefined {
    if (this.isPk) {
      // The last record that is no -U decides (a -D: absent), so it is found from the end and one state built, not one per record.
      for (let i = recs.length - 1; i >= 0; i--) {
        const rec = recs[i];
        if (rec.change === ChangeType.DELETE) return undefined;
        if (rec.change !== ChangeType.UPDATE_BEFORE) return this.rowState(rec.offset, rec.commitTime, this.valuesOf(rec.row));
      }
      return state;
    }
    if (recs.length === 0) return state;
    const s: EntityState = state ?? {};
    const future: Version[] = [];
    const events: Entry[] = [];
    const cutoff = now - this.maxWindowMs;
    // The newest visible version of the batch and the state is built once, after the loop: building one for every record
    // newer than the last (each, when events arrive in order) was two arrays per record, most of a log replay's garbage.
    let best: SourceRecord | undefined;
    let bestEt = s.b ? s.b[0] : -Infinity;
    let bestOff = s.b ? s.b[1] : -Infinity;
    for (const rec of recs) {
      const et = this.eventTimeOf(rec);
      // A version is built only where it is kept.
      if (this.valueColumns.length) {
        if (et > now) future.push([et, rec.offset, safeAll(this.valuesOf(rec.row))]);
        else if (et > bestEt || (et === bestEt && rec.offset > bestOff)) {
          // newer(): later event time, ties to the higher offset.
          best = rec;
          bestEt = et;
          bestOff = rec.offset;
        }
      }
      if (this.hasAggregates && et > cutoff) {
        // Made at its length: pushing a third element onto [et, offset] grew its store to 20 slots (10,000 events: 1.3 MB).
        const k = this.aggColumns.length;
        let entry: Entry;
        if (k === 1) entry = [et, rec.offset, jsonSafe(rec.row[this.aggColumns[0].name])];
        else {
          entry = new Array(2 + k);
          entry[0] = et;
          entry[1] = rec.offset;
          for (let c = 0; c < k; c++) entry[2 + c] = jsonSafe(rec.row[this.aggColumns[c].name]);
        }
        events.push(entry);
      }
    }
    if (best) s.b = [bestEt, best.offset, safeAll(this.valuesOf(best.row))];
    if (future.length) mergeSorted((s.f ??= []) as Entry[], future as Entry[]);
    if (events.length) mergeSorted((s.w ??= []), events);
    this.settle(s, now);
    return s;
  }

  /** Promotes future versions that are now visible and drops window events no window can reach again. */
  settle(s: EntityState, now: number): void {
    if (s.f) {
      let k = 0;
      for (; k < s.f.length && s.f[k][0] <= now; k++) if (newer(s.f[k][0], s.f[k][1], s.b)) s.b = s.f[k];
      if (k === s.f.length) delete s.f;
      else if (k) s.f.splice(0, k);
    }
    if (s.w) {
      const drop = upperBound(s.w, now - this.maxWindowMs);
      if (drop) s.w.splice(0, drop);
    }
  }

  /**
   * A pk view's state from the row written by the record at `offset`:
   * `values` are the row's values of `rowColumns` (taken and made JSON-safe in
   * place). The one way a pk state is made, from a record (`apply`) or from
   * the table's latest row (online/state-source.ts), which reads no row object.
   */
  rowState(offset: number, commitTime: number, values: unknown[]): EntityState {
    const et = this.readNames.length > this.valueColumns.length ? values.pop() : undefined;
    return { b: [typeof et === 'number' ? et : commitTime, offset, safeAll(values)] };
  }

  /**
   * The row's values named by `readNames`, as they are. Read by code made once
   * per view (`row.a`, `row.b`, ...): reading them by a name from a list was a
   * megamorphic keyed load per value, a tenth of a cold lookup.
   */
  private valuesOf(row: Row): unknown[] {
    this.readValues ??= new Function('row', `"use strict"; return [${this.readNames.map((n) => `row[${JSON.stringify(n)}]`).join(', ')}];`) as (row: Row) => unknown[];
    return this.readValues(row);
  }
  private readValues?: (row: Row) => unknown[];
  /** What `rowState` takes, by name (see rowColumns). */
  readonly readNames: string[];

  /** The view's feature values at time t (epoch ms) from a state built by `apply`. */
  evaluate(state: EntityState | undefined, t: number): Evaluated {
    if (this.rowOnly && state?.b) return this.rowEvaluated(state.b);
    const n = this.features.length;
    // Filled by a loop: Array#fill runs in the runtime, not in generated code.
    const out: Evaluated = { values: new Array(n), statuses: new Array(n), eventTimes: new Array(n) };
    for (let i = 0; i < n; i++) {
      out.values[i] = null;
      out.eventTimes[i] = null;
    }
    let version: Version | undefined;
    if (state) {
      // pk views serve the engine's row as is; log views only versions that had happened by t.
      version = this.isPk || !state.b || state.b[0] <= t ? state.b : undefined;
      if (!this.isPk && state.f) for (const v of state.f) if (v[0] <= t && newer(v[0], v[1], version)) version = v;
    }
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const f = this.features[i];
      if (f.col !== undefined) {
        if (!version) {
          out.statuses[i] = 'NOT_FOUND';
          continue;
        }
        const value = version[2][f.col];
        out.eventTimes[i] = version[0];
        if (this.ttlMs !== undefined && version[0] < t - this.ttlMs) out.statuses[i] = 'OUTSIDE_MAX_AGE';
        else if (value === null || value === undefined) out.statuses[i] = 'NULL_VALUE';
        else {
          out.values[i] = value;
          out.statuses[i] = 'PRESENT';
        }
        continue;
      }
      const agg = f.agg!;
      const events = state?.w ?? [];
      // Events in (t - window, t]: the list is sorted, so find the slice by binary search.
      hi = upperBound(events, t);
      lo = upperBound(events, t - agg.windowMs);
      const value = aggregate(agg, events, lo, hi);
      out.values[i] = value;
      out.eventTimes[i] = hi > lo ? (events[hi - 1][0] as number) : null;
      out.statuses[i] = !state ? 'NOT_FOUND' : value === null ? 'NULL_VALUE' : 'PRESENT';
    }
    return out;
  }

  /**
   * `evaluate` of a pk view without ttl whose features read the row's
   * values in order (`rowOnly`): its values are the version's own array (an
   * evaluation is never changed, nor is a state's version), and when none is
   * null the statuses are one shared array. Two arrays of the view's width
   * fewer per cold lookup.
   */
  private rowEvaluated(version: Version): Evaluated {
    const values = version[2];
    const n = values.length;
    let statuses: FeatureStatus[] = this.allPresent;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null || v === undefined) {
        if (v === undefined) return this.evaluate({ b: [version[0], version[1], values.map((x) => x ?? null)] }, 0);
        if (statuses === this.allPresent) statuses = this.allPresent.slice();
        statuses[i] = 'NULL_VALUE';
      }
    }
    const eventTimes = new Array<number | null>(n);
    for (let i = 0; i < n; i++) eventTimes[i] = version[0];
    return { values, statuses, eventTimes, uniform: statuses === this.allPresent ? version[0] : undefined };
  }

  /**
   * The last time (epoch ms, inclusive) through which `evaluate(state, t')`
   * answers exactly what `evaluate(state, t)` does, for every t' from t on:
   * readers may reuse an evaluation until then. Infinity when only a new
   * record can change the answer. Views with aggregates answer t: their
   * windows slide every millisecond.
   */
  stableUntil(state: EntityState | undefined, t: number): number {
    if (!state) return Infinity;
    if (this.hasAggregates) return t;
    let until = Infinity;
    let version = state.b;
    if (!this.isPk) {
      // The next version to become visible ends the answer a millisecond before it does.
      if (version && version[0] > t) {
        until = version[0] - 1;
        version = undefined;
      }
      for (const v of state.f ?? []) {
        if (v[0] > t) until = Math.min(until, v[0] - 1);
        else if (newer(v[0], v[1], version)) version = v;
      }
    }
    // A version inside the ttl at t leaves it after eventTime + ttl.
    if (this.ttlMs !== undefined && version && version[0] >= t - this.ttlMs) until = Math.min(until, version[0] + this.ttlMs);
    return until;
  }

  /** Canonical value → its JSON form for this feature (timestamps RFC 3339). */
  toJson(i: number, value: unknown): unknown {
    return value === null || value === undefined ? null : toJsonValue(this.features[i].type, value);
  }
}
