/**
 * What a decision request must be, and when two name the same decision: its
 * id, its trail page, its entity as the canonical key of its views' entity
 * columns, and whether a repeated recorded lookup asks what the first one
 * did. Used by the audit service (service.ts) for every adapter.
 */
import { AsofError } from '../errors.js';
import { shownJson } from '../engine/coerce.js';
import type { CompiledColumn } from '../engine/schema.js';
import type { FeatureViewDef } from '../features/definitions.js';
import { entityKeyText } from '../features/entity-key.js';
import { canonicalJson, type Decision, type FeatureSelection } from './decisions.js';

/** A decision id: 1 to 200 printable ASCII characters, no spaces. */
const ID = /^[\x21-\x7e]{1,200}$/;

export function checkId(id: string, field: string): void {
  if (!ID.test(id)) throw new AsofError('ASOF_INVALID_ARGUMENT', `decision id ${JSON.stringify(id)} must be 1 to 200 printable ASCII characters without spaces`, [{ field, reason: 'bad decision id' }]);
}

/** Trail records per page at most. */
const MAX_TRAIL_PAGE = 10_000;

/** A trail page as every adapter must ask for it: from >= 0, 1 <= limit <= 10,000 (unset: the defaults). */
export function checkPage(page: { trailFrom?: number; trailLimit?: number }): void {
  const { trailFrom: from, trailLimit: limit } = page;
  if (from !== undefined && !(Number.isSafeInteger(from) && from >= 0)) throw new AsofError('ASOF_INVALID_ARGUMENT', `trailFrom must be a whole number >= 0, got ${from}`, [{ field: 'trailFrom', reason: 'not an index' }]);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= MAX_TRAIL_PAGE)) throw new AsofError('ASOF_INVALID_ARGUMENT', `trailLimit must be a whole number from 1 to ${MAX_TRAIL_PAGE}, got ${limit}`, [{ field: 'trailLimit', reason: 'out of range' }]);
}

/**
 * The entity as the canonical key text of the views' entity columns
 * (features/entity-key.ts, the conversion lookups use): what a decision
 * stores and compares, whichever adapter or form gave it. A key a column
 * refuses (an int64 JSON number beyond 2^53 among them) is a 400 naming
 * `field`. Views whose columns key it differently (an int64 view and a string
 * view read together) store it as given, which the replay converts per view.
 */
export function canonicalEntity(cols: CompiledColumn[], entity: unknown, field: string): string {
  const keys = new Set<string>();
  for (const col of cols) {
    try {
      keys.add(entityKeyText(col, entity));
    } catch (e) {
      const reason = (e as { reason?: string }).reason ?? String(e);
      throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${shownJson(entity)} is not a valid ${col.name}: ${reason}`, [{ field, reason }]);
    }
  }
  if (keys.size === 1) return [...keys][0];
  return typeof entity === 'string' ? entity : typeof entity === 'number' || typeof entity === 'bigint' || typeof entity === 'boolean' ? String(entity) : JSON.stringify(entity);
}

/** Whether stored entity text (canonical, or as given before canonical keys were stored) is `key` under the views' columns. */
export function sameEntity(stored: string, key: string, cols: CompiledColumn[]): boolean {
  if (stored === key) return true;
  try {
    return canonicalEntity(cols, stored, 'entity') === key;
  } catch {
    return false;
  }
}

/**
 * Why lookup `d` is not the one decision `x` recorded (undefined: it is): the
 * same id may only repeat a recorded lookup of the same entity and selection
 * whose features, in order, are defined as they were then (their view's
 * source, entity and ttl, and the feature itself), so that its recorded
 * answer is an answer to this request. A completed lookup repeats too.
 */
export function otherLookup(d: Decision, x: Decision, cols: CompiledColumn[]): string | undefined {
  if (x.recordedBy === 'api') return 'it was posted (POST /decisions), not recorded by a lookup';
  if (!sameEntity(x.entity, d.entity, cols)) return 'its lookup was for another entity';
  if (canonicalJson(x.selection) !== canonicalJson(d.selection)) return 'its lookup was for another selection';
  if (x.features.length !== d.features.length || x.features.some((ref, i) => ref !== d.features[i] || featureDefinition(x.views, ref) !== featureDefinition(d.views, ref))) {
    return 'the features its lookup read have been redefined since';
  }
  return undefined;
}

/** What the answer for `view:feature` depends on in its definition, as canonical JSON. */
export function featureDefinition(views: Record<string, FeatureViewDef>, ref: string): string {
  const at = ref.lastIndexOf(':');
  const v = views[ref.slice(0, at)];
  const name = ref.slice(at + 1);
  return canonicalJson(v && { source: v.source, entity: v.entity, ttl: v.ttl ?? null, feature: v.features.find((f) => f.name === name) ?? null });
}

/** The one form of a selection registry.resolve has checked (it refuses more than one), as stored in a decision. */
export function plainSelection(s: FeatureSelection): FeatureSelection {
  if (s.features?.length) return { features: [...s.features] };
  if (s.view) return { view: s.view };
  return s.service ? { service: s.service } : {};
}

/**
 * A posted decision's served values name only features it decided on (`view:feature` refs of its selection): the
 * audit compares each feature's served value, status and event time with the replayed one, so a key that is none
 * of them (a typo, a bare feature name, a feature left out of the selection) would be stored and never compared,
 * and the audit would answer a match for a value nobody checked. 400 naming every such key; a subset of the
 * features is taken (a feature left out is not compared: served.ts comparedFeatures).
 */
export function checkServedKeys(served: { features: Record<string, unknown>; statuses?: Record<string, unknown>; eventTimes?: Record<string, unknown> }, refs: string[]): void {
  const known = new Set(refs);
  const unknown: { field: string; map: string; key: string }[] = [];
  for (const map of ['features', 'statuses', 'eventTimes'] as const) {
    for (const key of Object.keys(served[map] ?? {})) if (!known.has(key)) unknown.push({ field: `served.${map}.${key}`, map: `served.${map}`, key });
  }
  if (unknown.length === 0) return;
  const shown = refs.length > 10 ? `${refs.slice(0, 10).join(', ')}, … (${refs.length})` : refs.join(', ');
  const first = unknown[0];
  throw new AsofError(
    'ASOF_INVALID_ARGUMENT',
    `${first.map} names "${first.key}", which is not a feature of the decision (its features: ${shown}): served values are compared feature by feature with the replay, so each key must be one of its \`view:feature\` refs`,
    unknown.map((u) => ({ field: u.field, reason: `not a feature of the decision (its features: ${shown})` })),
  );
}
