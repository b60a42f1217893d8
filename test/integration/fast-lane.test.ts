/**
 * The fast lane of `GET /features/{entity}` (server.ts, features.ts) answers
 * past Fastify's routing. Over real HTTP, every answer must be the one the
 * Fastify route gives (`inject` never takes a lane): the same status, content
 * type and bytes, for lookups it answers and for the ones it must leave to
 * the route (errors, new query strings, odd paths, missing API keys).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';
import { PrivateRedis, redisServerInstalled, uniquePrefix } from '../redis-helpers.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');

async function setUp(apiKey?: string, redisUrl?: string): Promise<TestAsof> {
  // Config takes API keys as the comma-separated text of ASOF_API_KEYS.
  const s = await testAsof({ ...(apiKey ? { apiKeys: apiKey as never } : {}), ...(redisUrl ? { redisUrl, redisPrefix: uniquePrefix('lane') } : {}) }, { listen: true, now: () => NOW });
  const auth: Record<string, string> = apiKey ? { authorization: `Bearer ${apiKey}` } : {};
  const ok = async (method: string, url: string, body: unknown): Promise<void> => {
    const r = await s.req(method, url, body, auth);
    assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`);
  };
  await ok('PUT', '/tables/people', { kind: 'pk', primaryKey: ['name'], columns: [{ name: 'name', type: 'string', nullable: false }, { name: 'age', type: 'int32', nullable: true }, { name: 'at', type: 'timestamp', nullable: true }] });
  await ok('PUT', '/tables/cards', { kind: 'pk', primaryKey: ['id'], eventTime: 'ts', columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, { name: 'limit', type: 'float64', nullable: true }] });
  await ok('POST', '/tables/people/rows', { rows: [{ name: 'ann', age: 41, at: NOW - 5000 }, { name: 'bo b', age: null, at: null }, { name: 'zoë/1', age: 7, at: NOW - 1 }, { name: '100%', age: 1, at: NOW }] });
  await ok('POST', '/tables/cards/rows', { rows: Array.from({ length: 20 }, (_, i) => ({ id: i * 1000, ts: NOW - i * 60_000, limit: i * 1.5 })) });
  await ok('PUT', '/feature-views/person', { source: 'people', entity: 'name', features: [{ name: 'age', column: 'age' }, { name: 'at', column: 'at' }] });
  await ok('PUT', '/feature-views/card', { source: 'cards', entity: 'id', ttl: '5m', features: [{ name: 'limit', column: 'limit' }] });
  return s;
}

async function laneCount(s: TestAsof, headers: Record<string, string>): Promise<number> {
  const text = await (await fetch(s.url + '/metrics', { headers })).text();
  return Number(/^asof_http_fast_lane_total (\d+)$/m.exec(text)![1]);
}

/** The Fastify route's answer (inject takes no lane) against two answers over HTTP (the second after the query string is known). */
async function sameAsRoute(s: TestAsof, path: string, headers: Record<string, string> = {}): Promise<number> {
  const want = await s.http.inject({ method: 'GET', url: path, headers });
  let status = 0;
  for (let round = 0; round < 2; round++) {
    const res = await fetch(s.url + path, { headers });
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, want.statusCode, `${path} (round ${round}): status`);
    assert.equal(res.headers.get('content-type'), want.headers['content-type'], `${path}: content type`);
    assert.equal(body.toString('utf8'), want.body, `${path} (round ${round}): body`);
    assert.equal(Number(res.headers.get('content-length')), body.length, `${path}: content length`);
    status = res.status;
  }
  return status;
}

test('GET /features/{entity}: the fast lane answers exactly as the route, and leaves the rest to it', async () => {
  const s = await setUp();
  try {
    const lanes0 = await laneCount(s, {});
    const answered: string[] = [
      '/features/ann?view=person',
      '/features/nobody?view=person',
      '/features/bo%20b?view=person',
      `/features/${encodeURIComponent('zoë/1')}?view=person`,
      `/features/${encodeURIComponent('100%')}?features=person:age`,
      '/features/3000?view=card',
      '/features/19000?view=card',
      '/features/5?features=card:limit,person:age',
      '/features/ann?features=person:at,person:age',
    ];
    for (const path of answered) assert.equal(await sameAsRoute(s, path), 200, path);
    const lanes1 = await laneCount(s, {});
    // Each path's second round is answered in the lane (its query string was validated in the first).
    assert.ok(lanes1 - lanes0 >= answered.length, `lane answered ${lanes1 - lanes0} of ${answered.length}`);

    const refused: [string, number][] = [
      ['/features/abc?view=card', 400],
      ['/features/1.5?view=card', 400],
      ['/features/ann?view=nope', 404],
      ['/features/ann?features=person:nope', 404],
      ['/features/ann?view=person&features=person:age', 400],
      ['/features/ann', 400],
      ['/features/ann/?view=person', 404],
      ['/features/%E0%A4%A?view=person', 400],
      [`/features/${'x'.repeat(101)}?view=person`, 414],
    ];
    for (const [path, status] of refused) assert.equal(await sameAsRoute(s, path), status, path);
    assert.equal(await laneCount(s, {}), lanes1, 'errors are the route\'s to answer');

    // A write is in the next read, whichever way the read goes.
    const before = await (await fetch(s.url + '/features/ann?view=person')).json();
    assert.equal(before.features['person:age'], 41);
    await s.req('POST', '/tables/people/rows', { rows: [{ name: 'ann', age: 42, at: NOW }] });
    const after = await (await fetch(s.url + '/features/ann?view=person')).json();
    assert.equal(after.features['person:age'], 42);
    assert.notDeepEqual(after.token, before.token);
    assert.equal(await sameAsRoute(s, '/features/ann?view=person'), 200);
  } finally {
    await s.destroy();
  }
});

test('GET /features/{entity}: with API keys the lane answers only authenticated requests', async () => {
  const s = await setUp('k-123');
  try {
    const good = { authorization: 'Bearer k-123' };
    const lanes0 = await laneCount(s, good);
    assert.equal(await sameAsRoute(s, '/features/ann?view=person', good), 200);
    assert.equal(await sameAsRoute(s, '/features/ann?view=person', { 'x-api-key': 'k-123' }), 200);
    const lanes1 = await laneCount(s, good);
    assert.ok(lanes1 - lanes0 >= 2, `lane answered ${lanes1 - lanes0}`);
    assert.equal(await sameAsRoute(s, '/features/ann?view=person'), 401);
    assert.equal(await sameAsRoute(s, '/features/ann?view=person', { authorization: 'Bearer k-124' }), 401);
    assert.equal(await laneCount(s, good), lanes1);
  } finally {
    await s.destroy();
  }
});

test('GET /features/{entity} with Redis: the lane waits for the read; a failed read goes to the route (503), and lookups come back with Redis', async (t) => {
  if (!redisServerInstalled()) {
    if (process.env.CI === 'true') throw new Error('redis-server is not installed, and CI=true requires it');
    return t.skip('redis-server is not installed');
  }
  const redis = await PrivateRedis.start();
  const s = await setUp(undefined, redis.url);
  try {
    const lanes0 = await laneCount(s, {});
    for (const path of ['/features/ann?view=person', '/features/nobody?view=person', '/features/19000?view=card', '/features/5?features=card:limit,person:age']) {
      assert.equal(await sameAsRoute(s, path), 200, path);
    }
    assert.ok((await laneCount(s, {})) - lanes0 >= 4);

    await redis.stop();
    const lanes1 = await laneCount(s, {});
    const res = await fetch(s.url + '/features/ann?view=person');
    const body = await res.json();
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.equal(body.error.code, 'ASOF_BACKEND_UNAVAILABLE');
    assert.equal(await laneCount(s, {}), lanes1, 'the failure was answered by the route');

    await redis.restart();
    // Redis came back empty: asof rebuilds the views from the changelog by itself.
    const deadline = Date.now() + 15_000;
    let status = 0;
    while (Date.now() < deadline && (status = (await fetch(s.url + '/features/ann?view=person')).status) !== 200) await new Promise((r) => setTimeout(r, 100));
    assert.equal(status, 200);
    assert.equal(await sameAsRoute(s, '/features/ann?view=person'), 200);
  } finally {
    await s.destroy();
    await redis.stop().catch(() => undefined);
  }
});
