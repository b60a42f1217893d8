/**
 * Applying an entity's records held as columns (engine KeyColumns) to its
 * state: what `ViewEvaluator.applyAll` does with records (evaluator.ts).
 */
import { ChangeType } from '../engine/arrow-codec.js';
import type { EntityState, SourceColumns, Version, ViewEvaluator } from './evaluator.js';
import { jsonSafe, safeAll } from './json-safe.js';
import { mergeSorted, type Entry } from './window.js';

/**
 * `ev.applyAll` over records given as columns, which must include every
 * column of `ev.sourceColumns`: the same state, built without a record or a
 * row object per record. The audit replays whole histories this way
 * (replay.ts): 10,000 records, each with its row object, were most of what
 * reconstructing bench:audit's log entity allocated. Kept step for step with
 * `applyAll`; test/unit/apply-columns.test.ts holds the two equal on random
 * records.
 */
export function applyColumns(ev: ViewEvaluator, state: EntityState | undefined, cols: SourceColumns, now: number): EntityState | undefined {
  const n = cols.count;
  const col = (name: string): readonly unknown[] => {
    const j = cols.columns.indexOf(name);
    if (j < 0) throw new Error(`applyColumns: column "${name}" of view "${ev.view.name}" was not read`);
    return cols.values[j];
  };
  if (ev.isPk) {
    for (let i = n - 1; i >= 0; i--) {
      const change = cols.changes[i];
      if (change === ChangeType.DELETE) return undefined;
      if (change !== ChangeType.UPDATE_BEFORE) return ev.rowState(cols.offsets[i], cols.commitTimes[i], ev.readNames.map((name) => col(name)[i]));
    }
    return state;
  }
  if (n === 0) return state;
  const s: EntityState = state ?? {};
  const ets = ev.eventTimeColumn ? col(ev.eventTimeColumn) : undefined;
  const valueCols = ev.valueColumns.map((c) => col(c.name));
  const aggCols = ev.aggColumns.map((c) => col(c.name));
  const valuesAt = (i: number): unknown[] => valueCols.map((v) => v[i]);
  const future: Version[] = [];
  const events: Entry[] = [];
  const cutoff = now - ev.maxWindowMs;
  let best = -1;
  let bestEt = s.b ? s.b[0] : -Infinity;
  let bestOff = s.b ? s.b[1] : -Infinity;
  const k = aggCols.length;
  // Whether the events come ascending by (event time, offset) as they are built (mostly: events arrive in order).
  let sorted = true;
  let lastEt = -Infinity;
  let lastOff = -Infinity;
  for (let i = 0; i < n; i++) {
    const off = cols.offsets[i];
    // eventTimeOf: the event-time column's value unless a delete or unset, else the commit time.
    let et = cols.commitTimes[i];
    if (ets && cols.changes[i] !== ChangeType.DELETE) {
      const v = ets[i];
      if (typeof v === 'number') et = v;
    }
    if (valueCols.length) {
      if (et > now) future.push([et, off, safeAll(valuesAt(i))]);
      else if (et > bestEt || (et === bestEt && off > bestOff)) {
        best = i;
        bestEt = et;
        bestOff = off;
      }
    }
    if (ev.hasAggregates && et > cutoff) {
      let entry: Entry;
      if (k === 1) entry = [et, off, jsonSafe(aggCols[0][i])];
      else {
        entry = new Array(2 + k);
        entry[0] = et;
        entry[1] = off;
        for (let c = 0; c < k; c++) entry[2 + c] = jsonSafe(aggCols[c][i]);
      }
      events.push(entry);
      if (!(et > lastEt || (et === lastEt && off > lastOff))) sorted = false;
      lastEt = et;
      lastOff = off;
    }
  }
  if (best >= 0) s.b = [bestEt, bestOff, safeAll(valuesAt(best))];
  if (future.length) mergeSorted((s.f ??= []) as Entry[], future as Entry[]);
  if (events.length) mergeSorted((s.w ??= []), events, sorted);
  ev.settle(s, now);
  return s;
}
