/**
 * The event rows bench:ingest and bench:tiering both send: one definition, so
 * the two benches load the same shape (8 columns, RFC 3339 timestamps), and
 * its first 5 columns (EVENTS_5), the narrower shape a new user's first table
 * tends to have: with fewer values per row, asof's per-row costs weigh more
 * against the reference's parse.
 */

/** Rows per JSON batch. */
export const ROWS = 1000;

export const EVENTS = {
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'kind', type: 'string' },
    { name: 'amount', type: 'float64' },
    { name: 'country', type: 'string' },
    { name: 'device', type: 'string' },
    { name: 'score', type: 'float32' },
    { name: 'flagged', type: 'bool' },
  ],
};

/** The first 5 columns of EVENTS (user, ts, kind, amount, country). */
export const EVENTS_5 = { ...EVENTS, columns: EVENTS.columns.slice(0, 5) };

const KINDS = ['click', 'view', 'purchase', 'refund'];
export const COUNTRIES = ['PT', 'DE', 'FR', 'US', 'BR', 'JP'];
const DEVICES = ['ios', 'android', 'web'];

/** Batch `b` of ROWS events: deterministic, one second apart from 2026-01-01 (UTC). */
export function eventRows(b: number): Record<string, unknown>[] {
  const base = Date.parse('2026-01-01T00:00:00Z') + b * ROWS * 1000;
  return Array.from({ length: ROWS }, (_, i) => ({
    user: (b * 7919 + i * 31) % 100_000,
    ts: new Date(base + i * 1000).toISOString(),
    kind: KINDS[i % 4],
    amount: Math.round(((i * 37) % 10_000) * 1.31) / 100,
    country: COUNTRIES[(b + i) % 6],
    device: DEVICES[i % 3],
    score: (i % 100) / 128,
    flagged: i % 17 === 0,
  }));
}

/** Batch `b` of eventRows cut to EVENTS_5's columns. */
export function eventRows5(b: number): Record<string, unknown>[] {
  return eventRows(b).map(({ user, ts, kind, amount, country }) => ({ user, ts, kind, amount, country }));
}
