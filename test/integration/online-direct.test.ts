/**
 * Views over pk tables with the embedded store are served straight from the
 * table's latest rows (materializer.ts, "direct"), not from a copy in the
 * store. They must answer exactly what a stored copy answers: the same
 * values, statuses, event times and tokens, after any mix of upserts,
 * deletes, ttl expiry and a restart from snapshot and changelog. The
 * reference is the stored path: the same writes, at the same clock, into an
 * asof whose online store is the real Redis at 127.0.0.1:6379 (which copies
 * every state; required when CI=true).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';
import { deletePrefix, SHARED_REDIS_URL, sharedRedisOrSkip, uniquePrefix } from '../redis-helpers.js';
import { rng } from './training-fixtures.js';

const WITH_EVENT_TIME = {
  kind: 'pk',
  primaryKey: ['id'],
  eventTime: 'at',
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'at', type: 'timestamp', nullable: false },
    { name: 'x', type: 'float64' },
    { name: 's', type: 'string' },
  ],
};
const WITHOUT_EVENT_TIME = {
  kind: 'pk',
  primaryKey: ['name'],
  columns: [
    { name: 'name', type: 'string', nullable: false },
    { name: 'x', type: 'float64' },
    { name: 'tags', type: 'list<string>' },
  ],
};
const IDS = 60;
const NAMES = Array.from({ length: 40 }, (_, i) => (i % 5 === 0 ? String(i) : `n${i}`));

async function define(a: TestAsof): Promise<void> {
  for (const [name, body] of [['withet', WITH_EVENT_TIME], ['plain', WITHOUT_EVENT_TIME]] as const) {
    const r = await a.req('PUT', `/tables/${name}`, body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  await a.services.registry.defineView('ev', { source: 'withet', entity: 'id', ttl: '10m', features: [{ name: 'x', column: 'x' }, { name: 's', column: 's' }, { name: 'at', column: 'at' }] });
  await a.services.registry.defineView('pv', { source: 'plain', entity: 'name', ttl: '5m', features: [{ name: 'x', column: 'x' }, { name: 'tags', column: 'tags' }] });
  await a.services.registry.defineView('pv_all', { source: 'plain', entity: 'name', features: [{ name: 'tags', column: 'tags' }] });
}

/** Every lookup the test compares: each view, every key (some never written), batch and single. */
async function answers(a: TestAsof): Promise<unknown[]> {
  const out: unknown[] = [];
  const ids = Array.from({ length: IDS + 5 }, (_, i) => i);
  const names = [...NAMES, 'never'];
  for (const [view, entities] of [['ev', ids], ['pv', names], ['pv_all', names]] as const) {
    const r = await a.req('POST', '/features', { entities, view });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(r.body);
  }
  // Two views of one table and one of another in one request (plan groups), and single lookups.
  const mixed = await a.req('POST', '/features', { entities: names, features: ['pv:x', 'pv_all:tags'] });
  out.push(mixed.body);
  for (const id of [0, 7, IDS + 1]) out.push((await a.req('GET', `/features/${id}?view=ev`)).body);
  return out;
}

test('pk views served from the table answer exactly what a stored copy (Redis) answers, live and after a restart', async (t) => {
  if (!(await sharedRedisOrSkip())) return t.skip('Redis does not answer at 127.0.0.1:6379');
  let clock = Date.parse('2026-03-01T00:00:00Z');
  const now = (): number => clock;
  const prefix = uniquePrefix('direct');
  // snapshotEvery small: the restart loads a snapshot (rows without versions) and replays the changelog after it.
  let direct = await testAsof({ snapshotEvery: 50 }, { now });
  const stored = await testAsof({ redisUrl: SHARED_REDIS_URL, redisPrefix: prefix }, { now });
  try {
    await define(direct);
    await define(stored);
    assert.equal(direct.services.materializer.runner(direct.services.registry.view('ev'))?.direct !== undefined, true, 'embedded: pk views are direct');
    assert.equal(stored.services.materializer.runner(stored.services.registry.view('ev'))?.direct, undefined, 'Redis: pk views are stored');
    const random = rng(4242);
    const r = (): number => random.next();
    const both = async (method: string, url: string, body: unknown): Promise<void> => {
      const a = await direct.req(method, url, body);
      const b = await stored.req(method, url, body);
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.deepEqual(a.body, b.body);
    };
    let compared = 0;
    for (let round = 0; round < 60; round++) {
      const rows = Array.from({ length: 1 + Math.floor(r() * 12) }, () => ({
        id: Math.floor(r() * IDS),
        // Event times mostly in the past few minutes, some older than the ttl, a few in the future.
        at: clock + Math.floor((r() - 0.85) * 20 * 60_000),
        x: r() < 0.15 ? null : Math.round(r() * 1e6) / 100,
        s: r() < 0.2 ? null : `s${Math.floor(r() * 5)}`,
      }));
      await both('POST', '/tables/withet/rows', { rows });
      const named = Array.from({ length: 1 + Math.floor(r() * 6) }, () => ({ name: NAMES[Math.floor(r() * NAMES.length)], x: r() < 0.1 ? null : r() * 100, tags: r() < 0.3 ? null : ['a', String(round)] }));
      await both('POST', '/tables/plain/rows', { rows: named });
      if (r() < 0.3) await both('POST', '/tables/withet/rows', { op: 'delete', rows: [{ id: Math.floor(r() * IDS) }] });
      if (r() < 0.3) await both('POST', '/tables/plain/rows', { op: 'delete', rows: [{ name: NAMES[Math.floor(r() * NAMES.length)] }] });
      clock += Math.floor(r() * 4 * 60_000);
      if (round % 3 === 0) {
        const [a, b] = [await answers(direct), await answers(stored)];
        assert.deepEqual(a, b, `round ${round}`);
        compared++;
        // Asked again at the same time: cached evaluations must give the same bytes.
        assert.deepEqual(await answers(direct), a);
      }
    }
    assert.equal(compared, 20);
    // The answers cover every status (so the comparison is not of empty answers).
    const statuses = new Set(JSON.stringify(await answers(direct)).match(/"(PRESENT|NOT_FOUND|NULL_VALUE|OUTSIDE_MAX_AGE)"/g));
    assert.equal(statuses.size, 4, [...statuses].join());
    // The view's watermark is the table's last offset.
    const info = await direct.req('GET', '/feature-views/ev');
    assert.equal(info.body.online.watermark, direct.services.engine.table('withet').endOffset - 1);
    assert.equal(info.body.online.status, 'serving');

    await direct.close();
    direct = await testAsof({ snapshotEvery: 50 }, { now, dataDir: direct.dataDir });
    assert.deepEqual(await answers(direct), await answers(stored), 'after a restart');
    clock += 3 * 60_000;
    await both('POST', '/tables/withet/rows', { rows: [{ id: 3, at: clock, x: 1.5, s: 'after' }] });
    assert.deepEqual(await answers(direct), await answers(stored), 'a write after the restart');
  } finally {
    await direct.destroy();
    await stored.destroy();
    await deletePrefix(SHARED_REDIS_URL, prefix);
  }
});

test('a pk view defined over a table with history is ready at once and keeps no copy in the store', async () => {
  const a = await testAsof();
  try {
    await a.req('PUT', '/tables/plain', WITHOUT_EVENT_TIME);
    const rows = Array.from({ length: 5000 }, (_, i) => ({ name: `k${i}`, x: i }));
    assert.equal((await a.req('POST', '/tables/plain/rows', { rows })).status, 200);
    await a.services.registry.defineView('pv', { source: 'plain', entity: 'name', features: [{ name: 'x', column: 'x' }] });
    // Nothing was copied into the embedded store for it.
    assert.equal(await a.services.onlineStore.meta('pv@1'), undefined);
    const got = await a.req('POST', '/features', { entities: ['k0', 'k4999', 'k5000'], view: 'pv' });
    assert.deepEqual(got.body.results.map((e: any) => [e.features['pv:x'], e.statuses['pv:x']]), [[0, 'PRESENT'], [4999, 'PRESENT'], [null, 'NOT_FOUND']]);
    // Read-your-writes: an acknowledged upsert and delete show in the next read.
    await a.req('POST', '/tables/plain/rows', { rows: [{ name: 'k0', x: -1 }] });
    await a.req('POST', '/tables/plain/rows', { op: 'delete', rows: [{ name: 'k4999' }] });
    const next = await a.req('POST', '/features', { entities: ['k0', 'k4999'], view: 'pv' });
    assert.deepEqual(next.body.results.map((e: any) => [e.features['pv:x'], e.statuses['pv:x']]), [[-1, 'PRESENT'], [null, 'NOT_FOUND']]);
    // 5,000 inserts (0-4999), the upsert's -U/+U (5000, 5001), the delete (5002).
    assert.equal(next.body.results[0].token.plain, 5002);
  } finally {
    await a.destroy();
  }
});
