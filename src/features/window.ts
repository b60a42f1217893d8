/**
 * The sorted lists an entity's state keeps (evaluator.ts): future versions
 * (`f`) and window events (`w`), each entry `[event time ms, offset, ...]`,
 * ascending by (event time, offset). Offsets are unique, so the order is
 * total and a list is a function of the set of entries it holds, whatever
 * order they arrived in. Also the aggregates over a slice of window events.
 */
import type { AggFn } from './definitions.js';

/** An entry of a sorted list: [event time ms, offset, ...payload]. */
export type Entry = unknown[];

export interface AggSpec {
  fn: AggFn;
  /** Index into an event entry's inputs (entry[2 + input]), or -1 for count(*). */
  input: number;
  windowMs: number;
}

/** Whether entry a sorts after entry b: later event time, ties to the higher offset. */
export const after = (a: Entry, b: Entry): boolean => (a[0] as number) > (b[0] as number) || (a[0] === b[0] && (a[1] as number) > (b[1] as number));

const byTimeOffset = (a: Entry, b: Entry): number => (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number);

/**
 * Adds `add` (any order, reordered in place; ascending when `sorted` says
 * so) to the sorted `list`, in place,
 * in O(k log k + d) for k added entries, d of the list's entries later than the
 * earliest added one: entries arrive late and out of order (a backfill, an
 * upload of old events), and inserting them one at a time was O(k * d)
 * (a 90k-event write for one entity took minutes). The usual case, entries
 * later than the whole list, is an append.
 */
export function mergeSorted(list: Entry[], add: Entry[], sorted = false): void {
  const k = add.length;
  if (k === 0) return;
  // `sorted`: the caller saw `add` ascending as it built it (apply-columns.ts), so the check is skipped (10,000 calls of
  // `after` were ~7% of reconstructing bench:audit's log entity).
  for (let i = 1; !sorted && i < k; i++) {
    if (!after(add[i], add[i - 1])) {
      add.sort(byTimeOffset);
      break;
    }
  }
  const n = list.length;
  if (n === 0 || after(add[0], list[n - 1])) {
    for (let j = 0; j < k; j++) list.push(add[j]);
    return;
  }
  if (k === 1) {
    // One entry: its place by binary search, then one native move of the tail.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (after(add[0], list[mid])) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, add[0]);
    return;
  }
  // Merge from the back into the grown list: each entry moves at most once, and entries before the first added one never.
  for (let j = 0; j < k; j++) list.push(add[j]);
  let i = n - 1;
  let j = k - 1;
  let w = n + k - 1;
  while (j >= 0) {
    if (i >= 0 && after(list[i], add[j])) list[w--] = list[i--];
    else list[w--] = add[j--];
  }
}

/** Index of the first entry with event time > t (entries ascending by event time). */
export function upperBound(entries: Entry[], t: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((entries[mid][0] as number) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The aggregate over window events [lo, hi). Count of none is 0, the others null. */
export function aggregate(agg: AggSpec, events: Entry[], lo: number, hi: number): unknown {
  if (agg.fn === 'count') {
    if (agg.input < 0) return hi - lo;
    let n = 0;
    for (let i = lo; i < hi; i++) if (events[i][2 + agg.input] !== null) n++;
    return n;
  }
  if (agg.fn === 'last') {
    // The newest event in the window whose value is set (ties: highest offset, which sorts last).
    for (let i = hi - 1; i >= lo; i--) {
      const v = events[i][2 + agg.input];
      if (v !== null) return v;
    }
    return null;
  }
  // One loop per function, each with one operation: audit replays sum a day's window of 10,000 events, and the shared
  // loop (the function tested per event, the first value special) ran at ~45 ns an event.
  const col = 2 + agg.input;
  let n = 0;
  let acc = 0;
  if (agg.fn === 'sum' || agg.fn === 'avg') {
    for (let i = lo; i < hi; i++) {
      const raw = events[i][col];
      if (raw === null) continue;
      acc += typeof raw === 'number' ? raw : Number(raw);
      n++;
    }
  } else {
    const min = agg.fn === 'min';
    for (let i = lo; i < hi; i++) {
      const raw = events[i][col];
      if (raw === null) continue;
      // An int64 beyond 2^53 is held as its decimal text: Number() would round the answer of an int64 feature.
      if (typeof raw !== 'number') return exactExtreme(events, lo, hi, col, min);
      acc = n === 0 ? raw : min ? Math.min(acc, raw) : Math.max(acc, raw);
      n++;
    }
  }
  if (n === 0) return null;
  return agg.fn === 'avg' ? acc / n : acc;
}

/** min or max over window events [lo, hi) of an int64 column holding values beyond 2^53 (decimal text): compared exactly, the winner as stored. */
function exactExtreme(events: Entry[], lo: number, hi: number, col: number, min: boolean): unknown {
  let best: unknown = null;
  let bestBig = 0n;
  for (let i = lo; i < hi; i++) {
    const raw = events[i][col];
    if (raw === null) continue;
    const v = BigInt(raw as number | string);
    if (best === null || (min ? v < bestBig : v > bestBig)) {
      best = raw;
      bestBig = v;
    }
  }
  return best;
}
