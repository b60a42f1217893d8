/**
 * Read replicas, as real processes: a primary (`asof serve`) and a replica
 * (`ASOF_ROLE=replica asof serve`, its own empty data folder), sharing one
 * Redis under a prefix of their own. The replica serves what the primary
 * ingested, with the primary's definitions and tokens, and refuses writes.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { tempDir, until } from '../helpers.js';
import { fetchJson as req, killAll, readyChild, type ChildServer } from '../child-server.js';
import { deletePrefix, SHARED_REDIS_URL, sharedRedisOrSkip, uniquePrefix } from '../redis-helpers.js';

describe('a read replica over the shared Redis', () => {
  let enabled = false;
  let primary: ChildServer | undefined;
  let replica: ChildServer | undefined;
  const dirs: { cleanup: () => Promise<void> }[] = [];
  const prefix = uniquePrefix('replica');
  const now = Date.now();

  before(async () => {
    enabled = await sharedRedisOrSkip();
    if (!enabled) return;
    const [a, b] = [await tempDir(), await tempDir()];
    dirs.push(a, b);
    const env = { REDIS_URL: SHARED_REDIS_URL, ASOF_REDIS_PREFIX: prefix };
    primary = await readyChild(a.path, env);
    const P = primary.url;
    assert.equal((await req(P, 'PUT', '/tables/tx', { kind: 'log', eventTime: 'ts', columns: [{ name: 'card', type: 'string', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, { name: 'amount', type: 'float64' }] })).status, 201);
    assert.equal((await req(P, 'PUT', '/tables/users', { kind: 'pk', primaryKey: ['user'], columns: [{ name: 'user', type: 'int64', nullable: false }, { name: 'tier', type: 'string' }] })).status, 201);
    await req(P, 'POST', '/tables/tx/rows', { rows: Array.from({ length: 20 }, (_, i) => ({ card: `c${i % 2}`, ts: now - (20 - i) * 1000, amount: i })) });
    await req(P, 'POST', '/tables/users/rows', { rows: [{ user: 1, tier: 'gold' }] });
    assert.equal((await req(P, 'PUT', '/feature-views/card', { source: 'tx', entity: 'card', features: [{ name: 'last', column: 'amount' }, { name: 'n', agg: { fn: 'count', window: '1d' } }] })).status, 201);
    assert.equal((await req(P, 'PUT', '/feature-views/user', { source: 'users', entity: 'user', features: [{ name: 'tier', column: 'tier' }] })).status, 201);
    assert.equal((await req(P, 'PUT', '/feature-services/risk', { features: ['card:n', 'user:tier'] })).status, 201);
    replica = await readyChild(b.path, { ...env, ASOF_ROLE: 'replica' });
  });
  after(async () => {
    await replica?.stop();
    await primary?.stop();
    await killAll();
    if (enabled) await deletePrefix(SHARED_REDIS_URL, prefix);
    for (const d of dirs) await d.cleanup();
  });
  const it = (name: string, fn: (P: string, R: string) => Promise<void>) => test(name, (t) => (enabled ? fn(primary!.url, replica!.url) : t.skip('Redis does not answer at 127.0.0.1:6379')));

  it('the replica answers lookups exactly as the primary does, token included', async (P, R) => {
    for (const path of ['/features/c1?view=card', '/features/1?view=user', '/features/nobody?features=card:n,card:last']) {
      const [p, r] = [await req(P, 'GET', path), await req(R, 'GET', path)];
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body, p.body, path);
    }
    const p = await req(P, 'POST', '/features', { entities: ['c0', 'c1'], features: ['card:last', 'card:n'] });
    assert.deepEqual((await req(R, 'POST', '/features', { entities: ['c0', 'c1'], features: ['card:last', 'card:n'] })).body, p.body);
    assert.deepEqual(p.body.results[1].features, { 'card:last': 19, 'card:n': 10 });
  });

  it('a write acknowledged by the primary is in the replica\'s next read', async (P, R) => {
    for (let i = 0; i < 10; i++) {
      const w = await req(P, 'POST', '/tables/tx/rows', { rows: [{ card: 'c0', ts: now + i, amount: 100 + i }] });
      const r = await req(R, 'GET', '/features/c0?features=card:last');
      assert.equal(r.body.features['card:last'], 100 + i);
      assert.ok(r.body.token.tx >= w.body.token.tx);
    }
  });

  it('views and services defined or redefined on the primary are served by the replica at once', async (P, R) => {
    assert.equal((await req(P, 'PUT', '/feature-views/card', { source: 'tx', entity: 'card', features: [{ name: 'top', agg: { fn: 'max', column: 'amount', window: '1d' } }] })).status, 200);
    const redefined = await req(R, 'GET', '/features/c0?view=card');
    assert.equal(redefined.status, 200, JSON.stringify(redefined.body));
    assert.deepEqual(redefined.body.features, { 'card:top': 109 });
    assert.equal((await req(P, 'PUT', '/feature-views/tiers', { source: 'users', entity: 'user', features: [{ name: 't', column: 'tier' }] })).status, 201);
    assert.deepEqual((await req(R, 'GET', '/features/1?view=tiers')).body.features, { 'tiers:t': 'gold' });
    assert.equal((await req(P, 'PUT', '/feature-services/gold', { features: ['tiers:t'] })).status, 201);
    assert.deepEqual((await req(R, 'GET', '/features/1?service=gold')).body.features, { 'tiers:t': 'gold' });
    const views = (await req(R, 'GET', '/feature-views')).body.views;
    assert.deepEqual(views.map((v: any) => [v.name, v.version, v.online.status]), [['card', 2, 'replica'], ['tiers', 1, 'replica'], ['user', 1, 'replica']]);
    assert.ok(views[0].online.watermark >= 29);
  });

  it('the replica refuses writes and definitions with 409, naming the primary', async (_P, R) => {
    const attempts: [string, string, unknown][] = [
      ['PUT', '/tables/x', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }] }],
      ['POST', '/tables/tx/rows', { rows: [{ card: 'c0', ts: now, amount: 1 }] }],
      ['PUT', '/feature-views/card', { source: 'tx', entity: 'card', features: [{ name: 'a', column: 'amount' }] }],
      ['PUT', '/feature-services/s', { features: ['card:top'] }],
    ];
    for (const [method, path, body] of attempts) {
      const r = await req(R, method, path, body);
      assert.deepEqual([r.status, r.body.error.code], [409, 'ASOF_CONFLICT'], `${method} ${path}`);
      assert.match(r.body.error.message, /replica/);
    }
  });

  it('after the shared Redis loses everything (a flush), the primary publishes its definitions again and the replica serves every view once rebuilt', async (P, R) => {
    const before = (await req(R, 'GET', '/feature-views')).body.views.map((v: any) => v.name);
    await deletePrefix(SHARED_REDIS_URL, prefix);
    // The primary notices the lost namespace on its next read and rebuilds it from the changelog; the replica waits for it.
    await until('the replica serves user:tier again', async () => {
      await req(P, 'GET', '/features/1?view=user');
      const r = await req(R, 'GET', '/features/1?view=user');
      return r.status === 200 && r.body.features['user:tier'] === 'gold';
    }, 20_000);
    await until('the replica serves card:top again', async () => {
      await req(P, 'GET', '/features/c0?view=card');
      const r = await req(R, 'GET', '/features/c0?view=card');
      return r.status === 200 && r.body.features['card:top'] === 109;
    }, 20_000);
    assert.deepEqual((await req(R, 'GET', '/feature-views')).body.views.map((v: any) => v.name), before);
    await until('the replica serves the service gold again', async () => {
      await req(P, 'GET', '/features/1?service=gold');
      const r = await req(R, 'GET', '/features/1?service=gold');
      return r.status === 200 && r.body.features['tiers:t'] === 'gold';
    }, 20_000);
  });

  // Last: the primary is stopped, so that its runners' checks cannot finish the "build" this test marks.
  it('while a view is being rebuilt (its namespace marked `_b`), the replica answers 503, not the older state being rebuilt', async (_P, R) => {
    await primary!.stop();
    const redis = new Redis(SHARED_REDIS_URL);
    try {
      const key = `${prefix}ns:user@1`;
      assert.equal(await redis.hget(key, '_b'), null);
      await redis.hset(key, '_b', '1');
      const r = await req(R, 'GET', '/features/1?view=user');
      assert.deepEqual([r.status, r.body.error?.code], [503, 'ASOF_BACKEND_UNAVAILABLE'], JSON.stringify(r.body));
      await redis.hdel(key, '_b');
      assert.deepEqual((await req(R, 'GET', '/features/1?view=user')).body.features, { 'user:tier': 'gold' });
    } finally {
      redis.disconnect();
    }
  });
});
