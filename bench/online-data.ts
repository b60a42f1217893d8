/**
 * The data set of the online benchmarks (bench/online.ts and the callgrind
 * run of bench/cg-get.ts): a pk table of users with 20 columns of mixed
 * types and a feature view over all of them.
 */

/** A JSON call to an asof server; throws on a status that is not 2xx. */
export async function call(url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<any> {
  const res = await fetch(url + path, { method, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/** Users the online benchmarks load. */
export const ENTITIES = 100_000;
/**
 * Distinct entities the "hot" lookups cycle through (of ENTITIES): a working
 * set that fits the lookup cache, as skewed production traffic mostly does.
 * The "cold" runs cycle through the other ENTITIES - HOT, more than the
 * default cache holds, so every lookup is evaluated and rendered afresh
 * (cycling through all of them, as before 2026-12-06, answered the hot set,
 * admitted by the hot runs, from the cache: 10% of the cold lookups).
 */
export const HOT = 10_000;
/** Entities per `POST /features`. */
export const BATCH = 100;
/** The i-th entity looked up: a stride through the ids, so consecutive lookups touch rows far apart in memory, as real traffic does. */
export const entityId = (i: number): number => (i * 7919) % ENTITIES;

/** 20 columns of mixed types, as feature views usually carry. */
const COLUMNS = [
  ...Array.from({ length: 10 }, (_, i) => ({ name: `f${i}`, type: 'float64' })),
  ...Array.from({ length: 4 }, (_, i) => ({ name: `n${i}`, type: 'int64' })),
  ...Array.from({ length: 3 }, (_, i) => ({ name: `s${i}`, type: 'string' })),
  ...Array.from({ length: 2 }, (_, i) => ({ name: `b${i}`, type: 'bool' })),
  { name: 't0', type: 'timestamp' },
];
const WORDS = ['Lisbon', 'Porto', 'Berlin', 'Paris', 'São Paulo', 'Tokyo', 'premium', 'basic'];

function userRow(id: number): Record<string, unknown> {
  const row: Record<string, unknown> = { user: id };
  for (let i = 0; i < 10; i++) row[`f${i}`] = Math.round(((id * (i + 7)) % 100_000) * 1.37) / 100;
  for (let i = 0; i < 4; i++) row[`n${i}`] = (id * (i + 3)) % 1_000_003;
  for (let i = 0; i < 3; i++) row[`s${i}`] = WORDS[(id + i) % WORDS.length];
  row.b0 = id % 2 === 0;
  row.b1 = id % 3 === 0;
  row.t0 = Date.parse('2026-01-01T00:00:00Z') + id * 1000;
  return row;
}

/** The users table with `count` rows (ids 0..count-1), then the view `user_features` over every column. */
export async function loadUsers(url: string, count: number, batch = 5000, headers: Record<string, string> = {}): Promise<void> {
  await call(url, 'PUT', '/tables/users', { kind: 'pk', primaryKey: ['user'], columns: [{ name: 'user', type: 'int64', nullable: false }, ...COLUMNS.map((c) => ({ ...c, nullable: true }))] }, headers);
  for (let b = 0; b < count; b += batch) {
    const rows = [];
    for (let id = b; id < Math.min(count, b + batch); id++) rows.push(userRow(id));
    await call(url, 'POST', '/tables/users/rows', { rows }, headers);
  }
  await call(url, 'PUT', '/feature-views/user_features', { source: 'users', entity: 'user', features: COLUMNS.map((c) => ({ name: c.name, column: c.name })) }, headers);
}

/**
 * Waits until the users just loaded are tiered (ASOF_TIER_AFTER, 10 s by
 * default): copying 100k rows into Lance is a one-off cost of the load, on
 * other threads of the asof process, and it fell into the first rounds
 * (25-45 µs of CPU per lookup on top, 2026-12-06).
 */
export async function tiered(url: string): Promise<void> {
  for (let waited = 0; waited < 120_000; waited += 500) {
    const t = await call(url, 'GET', '/tables/users');
    if (t.tieredOffset === t.latestOffset) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Every feature of the view, as `?features=` takes them. */
export const FEATURES = COLUMNS.map((c) => `user_features:${c.name}`).join(',');
