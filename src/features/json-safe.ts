/**
 * Making values JSON-safe, as an entity's state (evaluator.ts) holds them:
 * int64 beyond 2^53 as decimal strings, undefined as null.
 */

/** `jsonSafe` over values in place; primitives other than bigint (nearly every value) are left without a call. */
export function safeAll(values: unknown[]): unknown[] {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === undefined || typeof v === 'bigint' || (v !== null && typeof v === 'object')) values[i] = jsonSafe(v);
  }
  return values;
}

/** bigint → decimal string, so states survive JSON. Everything else is already JSON-safe. */
export function jsonSafe(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object') return v;
  // Lists and structs may hold int64 values beyond 2^53 too.
  if (Array.isArray(v)) return v.some((x) => typeof x === 'bigint' || (x !== null && typeof x === 'object')) ? v.map(jsonSafe) : v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = jsonSafe(x);
  return out;
}
