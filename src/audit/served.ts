/**
 * A posted decision's served values: checked and put in stored form on the way
 * in, and compared with the replay on the way out. Used by the audit service
 * (service.ts) for every adapter.
 */
import { AsofError, type FieldIssue } from '../errors.js';
import { bentNumberReason, bentNumbers } from '../engine/json-safety.js';
import { formatTimestamp, parseTimestamp, timestampProblem } from '../engine/schema.js';
import type { FeatureStatus } from '../features/evaluator.js';
import { canonicalJson, type ServedValues } from './decisions.js';

/** Served values as posted: event times as RFC 3339 or epoch ms. */
export interface ServedInput {
  features: Record<string, unknown>;
  statuses?: Record<string, FeatureStatus>;
  eventTimes?: Record<string, string | number | null>;
}

/**
 * `served` as stored: values as sent, event times as RFC 3339 UTC with
 * milliseconds (the form a recorded lookup stores and the replay answers), so
 * one instant is one text whatever offset or form it came in. An event time
 * that is no timestamp is a 400 naming `served.eventTimes.<ref>`; so is a value
 * a float64 would bend (12345678901234567890, seen in `text`, the JSON body the
 * input was parsed from, when there was one): stored as sent or refused, as in
 * a json column.
 */
export function storedServed(served: ServedInput, text: string | undefined): ServedValues {
  const bent = text === undefined ? [] : bentNumbers(text).filter((b) => b.path[0] === 'served' && b.path[1] === 'features' && b.path.length >= 3);
  if (bent.length > 0) {
    throw new AsofError('ASOF_INVALID_ARGUMENT', `served.features hold a number a float64 does not keep: ${bentNumberReason(bent[0], bent[0].path.slice(2))}`, bent.map((b) => ({ field: b.path.join('.'), reason: bentNumberReason(b, b.path.slice(3)) })));
  }
  const eventTimes: Record<string, string | null> = {};
  const issues: FieldIssue[] = [];
  for (const [ref, v] of Object.entries(served.eventTimes ?? {})) {
    if (v === null) {
      eventTimes[ref] = null;
      continue;
    }
    const ms = parseTimestamp(v);
    if (ms === undefined) issues.push({ field: `served.eventTimes.${ref}`, reason: timestampProblem(v, JSON.stringify(v)) });
    else eventTimes[ref] = formatTimestamp(ms);
  }
  if (issues.length > 0) throw new AsofError('ASOF_INVALID_ARGUMENT', `invalid ${issues[0].field}: ${issues[0].reason}`, issues);
  return { features: served.features, statuses: served.statuses ?? {}, eventTimes };
}

export interface Difference {
  feature: string;
  /** What was reported: a part not reported is absent (not compared). */
  served: { value?: unknown; status?: string; eventTime?: string | null };
  reconstructed: { value: unknown; status: string; eventTime: string | null };
}

/**
 * The features a decision's served values report (a value, a status or an
 * event time), in the decision's order: those the audit compares. A recorded
 * lookup reports every feature; a posted subset only its own.
 */
export function comparedFeatures(served: ServedValues | null, refs: string[]): string[] {
  if (!served) return [];
  return refs.filter((ref) => Object.hasOwn(served.features, ref) || Object.hasOwn(served.statuses, ref) || Object.hasOwn(served.eventTimes, ref));
}

/** Per compared feature: what was reported of it (value, status, event time) against the reconstruction; a part not reported is not compared. */
export function diffServed(served: ServedValues, r: ServedValues, compared: string[]): Difference[] {
  const out: Difference[] = [];
  for (const ref of compared) {
    const s: Difference['served'] = {};
    if (Object.hasOwn(served.features, ref)) s.value = served.features[ref];
    if (Object.hasOwn(served.statuses, ref)) s.status = served.statuses[ref];
    if (Object.hasOwn(served.eventTimes, ref)) s.eventTime = served.eventTimes[ref];
    const rec = { value: r.features[ref] ?? null, status: r.statuses[ref], eventTime: r.eventTimes[ref] ?? null };
    const same =
      (!('value' in s) || canonicalJson(s.value ?? null) === canonicalJson(rec.value)) &&
      (s.status === undefined || s.status === rec.status) &&
      (s.eventTime === undefined || sameInstant(s.eventTime, rec.eventTime));
    if (!same) out.push({ feature: ref, served: s, reconstructed: rec });
  }
  return out;
}

/**
 * Event times are instants: equal when both are null or both name the same
 * instant. Stored text is RFC 3339 UTC, except in decisions posted before
 * event times were checked, which hold what was sent (another offset, or text
 * that is no time at all, compared as text).
 */
function sameInstant(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  const x = parseTimestamp(a);
  return x !== undefined ? x === parseTimestamp(b) : a === b;
}
