/**
 * Windowed views materialized from large commits: many events of one entity
 * in one write, late, out of order, in the future and beyond the window.
 *
 * - Work: the materializer adds a commit's events to an entity's window
 *   state in time linear in the state plus the commit (sorted once, merged),
 *   counted as element accesses of the state's window list through a proxy.
 *   Inserting them one at a time in order was quadratic (a 90k-event write
 *   took minutes and held the event loop all along).
 * - Values: online answers (as the clock moves) and training sets (both
 *   point-in-time modes) equal a brute-force computation over the generated
 *   events (DESIGN.md's rule, written out below independently of the code).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EntityState } from '../../src/features/evaluator.js';
import type { OnlineStore } from '../../src/online/store.js';
import { rng } from '../../support/rng.js';
import { ok, testAsof, type TestAsof } from '../helpers.js';

const S = 1000;
const MIN = 60 * S;
const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

const EV = {
  kind: 'log',
  eventTime: 'ts',
  columns: [
    { name: 'user', type: 'string', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'amount', type: 'float64' },
    { name: 'merchant', type: 'string' },
  ],
};

/** Counts reads and writes of a list's elements (not of its length or methods). */
function counting<T extends unknown[]>(list: T, counter: { n: number }): T {
  const isIndex = (p: string | symbol) => typeof p === 'string' && p.length > 0 && p.charCodeAt(0) >= 48 && p.charCodeAt(0) <= 57;
  return new Proxy(list, {
    get(t, p, r) {
      if (isIndex(p)) counter.n++;
      return Reflect.get(t, p, r);
    },
    set(t, p, v, r) {
      if (isIndex(p)) counter.n++;
      return Reflect.set(t, p, v, r);
    },
  });
}

test('a commit of k out-of-order events into an entity holding n: O(n + k) accesses of its window state, not O(n * k)', async () => {
  const asof = await testAsof({}, { now: () => T0 });
  try {
    await ok(asof.req('PUT', '/tables/ev', EV), 201);
    await ok(asof.req('PUT', '/feature-views/w', { source: 'ev', entity: 'user', features: [{ name: 'n', agg: { fn: 'count', window: '90d' } }, { name: 'total', agg: { fn: 'sum', column: 'amount', window: '90d' } }] }), 201);
    const n = 2000;
    const k = 2000;
    // n events in order at even seconds, then k at odd seconds in between, shuffled (deterministically).
    await ok(asof.req('POST', '/tables/ev/rows', { rows: Array.from({ length: n }, (_, i) => ({ user: 'u', ts: T0 - (2 * (n - i)) * S, amount: 1 })) }));
    const late = Array.from({ length: k }, (_, i) => ({ user: 'u', ts: T0 - (2 * (k - i) + 1) * S, amount: 2 }));
    const shuffle = rng(5);
    for (let i = k - 1; i > 0; i--) {
      const j = Math.floor(shuffle() * (i + 1));
      [late[i], late[j]] = [late[j], late[i]];
    }
    const store = asof.services.onlineStore as OnlineStore;
    // The materializer decodes the entity's state to apply the second write to it.
    const readEncoded = store.readEncoded.bind(store);
    const accesses = { n: 0 };
    let seen = 0;
    store.readEncoded = async (ns, keys) => {
      const r = await readEncoded(ns, keys);
      const decode = (e: number): EntityState => {
        const s = r.decode(e);
        if (s.w) {
          seen = s.w.length;
          s.w = counting(s.w, accesses);
        }
        return s;
      };
      return { ...r, decode };
    };
    await ok(asof.req('POST', '/tables/ev/rows', { rows: late }));
    store.readEncoded = readEncoded;
    assert.equal(seen, n, 'the state held the first write\'s events when the second came');
    // Merging reads and moves each entry a bounded number of times (and the store encodes each once); one insertion at a time is about n * k / 2.
    assert.ok(accesses.n <= 10 * (n + k), `${accesses.n} accesses of the window state for n = ${n}, k = ${k}`);
    const got = await ok(asof.req('GET', '/features/u?view=w'));
    assert.deepEqual(got.features, { 'w:n': n + k, 'w:total': n + 2 * k });
  } finally {
    await asof.destroy();
  }
});

interface Event {
  user: string;
  ts: number;
  amount: number | null;
  merchant: string | null;
  commit: number;
  offset: number;
}

const WINDOWS: Record<string, number> = { '10s': 10 * S, '1m': MIN, '1h': 60 * MIN };
const TTL = 5 * MIN;
const FEATURES = [
  { name: 'amount', column: 'amount' },
  { name: 'n10s', agg: { fn: 'count', window: '10s' } },
  { name: 'na1m', agg: { fn: 'count', column: 'amount', window: '1m' } },
  { name: 'sum1m', agg: { fn: 'sum', column: 'amount', window: '1m' } },
  { name: 'avg1h', agg: { fn: 'avg', column: 'amount', window: '1h' } },
  { name: 'min1m', agg: { fn: 'min', column: 'amount', window: '1m' } },
  { name: 'max1h', agg: { fn: 'max', column: 'amount', window: '1h' } },
  { name: 'last1m', agg: { fn: 'last', column: 'merchant', window: '1m' } },
];

/**
 * DESIGN.md "Feature values at time t", by brute force: the events visible at
 * t ("known": committed by t; "event": any, by event time), the column
 * feature from the one with the greatest (event time, offset) at or before t
 * (null when older than the ttl), aggregates over event times in (t - window, t].
 */
function brute(events: Event[], user: string, t: number, mode: 'known' | 'event'): Record<string, unknown> {
  const mine = events.filter((e) => e.user === user && e.ts <= t && (mode === 'event' || e.commit <= t)).sort((a, b) => a.ts - b.ts || a.offset - b.offset);
  const inWindow = (w: string) => mine.filter((e) => e.ts > t - WINDOWS[w]);
  const amounts = (w: string) => inWindow(w).flatMap((e) => (e.amount === null ? [] : [e.amount]));
  const latest = mine[mine.length - 1];
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const merchants = inWindow('1m').flatMap((e) => (e.merchant === null ? [] : [e.merchant]));
  return {
    amount: latest && latest.ts >= t - TTL ? latest.amount : null,
    n10s: inWindow('10s').length,
    na1m: amounts('1m').length,
    sum1m: amounts('1m').length ? sum(amounts('1m')) : null,
    avg1h: amounts('1h').length ? sum(amounts('1h')) / amounts('1h').length : null,
    min1m: amounts('1m').length ? Math.min(...amounts('1m')) : null,
    max1h: amounts('1h').length ? Math.max(...amounts('1h')) : null,
    last1m: merchants.length ? merchants[merchants.length - 1] : null,
  };
}

const USERS = ['hot', 'u1', 'u2', 'u3'];

for (const seed of [1, 2, 3]) {
  test(`seed ${seed}: large out-of-order commits — online answers as the clock moves, and training sets, equal a brute-force count over the events`, async () => {
    const clock = { t: T0 };
    const asof: TestAsof = await testAsof({}, { now: () => clock.t });
    const rand = rng(seed);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    try {
      await ok(asof.req('PUT', '/tables/ev', EV), 201);
      const events: Event[] = [];
      const probes: { user: string; t: number }[] = [];
      const check = async () => {
        const { results } = await ok(asof.req('POST', '/features', { entities: USERS, view: 'w' }));
        results.forEach((r: any, i: number) => {
          const want = Object.fromEntries(Object.entries(brute(events, USERS[i], clock.t, 'known')).map(([f, v]) => [`w:${f}`, v]));
          // An entity with no record yet is NOT_FOUND: counts 0, everything else null, as the brute force has it.
          assert.deepEqual(r.features, want, `${USERS[i]} at ${iso(clock.t)}`);
        });
        for (const user of USERS) probes.push({ user, t: clock.t });
      };
      for (let b = 0; b < 14; b++) {
        if (b === 5) await ok(asof.req('PUT', '/feature-views/w', { source: 'ev', entity: 'user', features: FEATURES, ttl: '5m' }), 201);
        const size = 1 + Math.floor(rand() * (b % 3 === 0 ? 600 : 60));
        const rows = [];
        for (let i = 0; i < size; i++) {
          const r = rand();
          // Mostly late by up to 90 s; some beyond every window, some within 2 s or 2 ms of the longest window's edge (1h),
          // some in the future, some on one shared millisecond (ties go to the offset).
          const ts =
            r < 0.6 ? clock.t - Math.floor(rand() * 90 * S)
            : r < 0.68 ? clock.t - 2 * 60 * MIN - Math.floor(rand() * 60 * MIN)
            : r < 0.72 ? clock.t - 60 * MIN + Math.floor(rand() * 2 * S)
            : r < 0.76 ? clock.t - 60 * MIN + Math.floor(rand() * 3)
            : r < 0.88 ? clock.t + Math.floor(rand() * 20 * S)
            : clock.t - 7 * S;
          const row = { user: rand() < 0.6 ? 'hot' : pick(USERS.slice(1)), ts, amount: rand() < 0.15 ? null : Math.floor(rand() * 800) / 8, merchant: rand() < 0.2 ? null : `m${Math.floor(rand() * 5)}` };
          rows.push(row);
        }
        const w = await ok(asof.req('POST', '/tables/ev/rows', { rows }));
        rows.forEach((row, i) => events.push({ ...row, commit: clock.t, offset: w.firstOffset + i }));
        if (b >= 5) await check();
        clock.t += Math.floor(rand() * 15 * S);
        if (b >= 5) await check();
      }
      // With no new events, windows slide past the future events, then empty; the ttl passes.
      for (const d of [5 * S, 21 * S, 61 * S, 6 * MIN, 2 * 60 * MIN]) {
        clock.t += d;
        await check();
      }
      for (const mode of ['known', 'event'] as const) {
        const rows = probes.map((p) => ({ user: p.user, timestamp: iso(p.t) }));
        const got = await ok(asof.req('POST', '/training-sets', { entities: { rows }, features: FEATURES.map((f) => `w:${f.name}`), pointInTime: mode }));
        assert.equal(got.rows.length, probes.length);
        got.rows.forEach((r: any, i: number) => {
          const { user, timestamp, ...values } = r;
          assert.deepEqual({ user, timestamp }, rows[i]);
          assert.deepEqual(values, brute(events, probes[i].user, probes[i].t, mode), `training set (${mode}): ${user} at ${timestamp}`);
        });
      }
    } finally {
      await asof.destroy();
    }
  });
}
