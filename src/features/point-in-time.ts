/**
 * Which of an entity's records a read at time t applies, and in what order
 * (the point-in-time rule of evaluator.ts), and the reference evaluation.
 */
import { ChangeType } from '../engine/arrow-codec.js';
import type { Evaluated, PointInTime, SourceRecord, ViewEvaluator } from './evaluator.js';

/**
 * The records of one entity in the order `apply` must see them for a read at
 * `pointInTime`, limited to what is visible at t: "known" — committed by t, in
 * offset order; "event" — event time <= t, in (event time, offset) order, -U
 * records dropped (a pk version is its +I/+U, or -D for absent).
 * Input: the entity's records in offset order.
 */
export function applyOrder(ev: ViewEvaluator, records: SourceRecord[], t: number, mode: PointInTime): SourceRecord[] {
  if (mode === 'known') {
    const out: SourceRecord[] = [];
    for (const r of records) {
      if (r.commitTime > t) break;
      out.push(r);
    }
    return out;
  }
  const keyed = records.filter((r) => r.change !== ChangeType.UPDATE_BEFORE).map((r) => ({ r, et: ev.eventTimeOf(r) }));
  return keyed
    .filter((x) => x.et <= t)
    .sort((a, b) => a.et - b.et || a.r.offset - b.r.offset)
    .map((x) => x.r);
}

/**
 * Evaluates one entity at one time from its records (offset order): the
 * reference path that audit and tests use. Online serving gets the same answer
 * incrementally; training sets get it with cursors over many label times.
 */
export function evaluateAt(ev: ViewEvaluator, records: SourceRecord[], t: number, mode: PointInTime): Evaluated {
  return ev.evaluate(ev.applyAll(undefined, applyOrder(ev, records, t, mode), t), t);
}
