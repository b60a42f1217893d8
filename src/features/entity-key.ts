/**
 * An entity as requests give it → the canonical key text of a view's entity
 * column: what the key index, the online store and `ViewEvaluator.entityOf`
 * use: the one conversion for every reader of an entity (online lookups on
 * every adapter, through online/plan.ts, and the audit's replay).
 */
import { fromText, type CompiledColumn } from '../engine/schema.js';

/** Integer text that is already the canonical key (no sign, zeros or digits beyond what a double holds exactly). */
const CANONICAL_INT = /^(?:0|-?[1-9]\d{0,14})$/;

/**
 * `entity` (a JSON value, or text from a URL) as the canonical key text of
 * `col`: the column's coercion of it (fromText first for text and numbers),
 * as text. Plain integer text for an integer column is already that text and
 * is returned as it is, unconverted. Throws the column's coercion error (its
 * `reason` says why) when the entity does not convert, a string with a lone
 * surrogate included: callers name the entity in their 400.
 */
export function entityKeyText(col: CompiledColumn, entity: unknown): string {
  if (typeof entity === 'string') {
    const kind = col.type.kind;
    if ((kind === 'int64' && CANONICAL_INT.test(entity)) || (kind === 'int32' && entity.length <= 10 && CANONICAL_INT.test(entity) && Math.abs(Number(entity)) <= 2147483647)) return entity;
  }
  const v = col.coerce(typeof entity === 'string' || typeof entity === 'number' ? fromText(col.type, entity) : entity);
  return typeof v === 'bigint' ? v.toString() : String(v);
}
