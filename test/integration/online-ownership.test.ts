/**
 * Primaries sharing one Redis prefix (FORMAT.md, "Ownership"): each table and
 * view name is leased to one primary. Primaries with different names share a
 * prefix (and a replica serves them all); a name another primary holds is
 * refused at start-up (a real process that exits) and at definition (409, nothing
 * written); a primary whose lease was taken stops writing at once (the check is
 * in the write's own script) and answers 503 until the name is free again; a
 * clean shutdown frees its names at once, a lease of a process that died lapses.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { Engine } from '../../src/engine/engine.js';
import { silentLogger } from '../../src/logger.js';
import { tempDir, testAsof, until, type TestAsof } from '../helpers.js';
import { fetchJson, killAll, readyChild, startChild } from '../child-server.js';
import { deletePrefix, SHARED_REDIS_URL, sharedRedisOrSkip, uniquePrefix } from '../redis-helpers.js';

const KEYED = (value: string) => ({ kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: value, type: 'float64' }] });
const VIEW = (source: string, value: string) => ({ source, entity: 'id', features: [{ name: value, column: value }] });

/** A data folder holding table `name` (KEYED), made without any server, as another primary's folder would be. */
async function folderWithTable(name: string): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const dir = await tempDir();
  const engine = await Engine.open({ dataDir: dir.path, logger: silentLogger });
  await engine.defineTable(name, KEYED('x') as never);
  await engine.close();
  return dir;
}

describe('primaries sharing a Redis prefix own their table and view names', () => {
  let enabled = false;
  let redis: Redis;
  const prefixes: string[] = [];
  const servers: TestAsof[] = [];
  const dirs: { cleanup: () => Promise<void> }[] = [];
  const prefix = (what: string) => {
    prefixes.push(uniquePrefix(what));
    return prefixes[prefixes.length - 1];
  };
  const start = async (...args: Parameters<typeof testAsof>) => {
    const a = await testAsof(...args);
    servers.push(a);
    return a;
  };

  before(async () => {
    enabled = await sharedRedisOrSkip();
    if (enabled) redis = new Redis(SHARED_REDIS_URL);
  });
  after(async () => {
    for (const s of servers) await s.destroy();
    await killAll();
    if (enabled) {
      for (const p of prefixes) await deletePrefix(SHARED_REDIS_URL, p);
      redis.disconnect();
    }
    for (const d of dirs) await d.cleanup();
  });
  const it = (name: string, fn: () => Promise<void>) => test(name, (t) => (enabled ? fn() : t.skip('Redis does not answer at 127.0.0.1:6379')));

  describe('two primaries (ta, va) and (tb, vb) and a replica on one prefix', () => {
    let P: string;
    let A: TestAsof;
    let B: TestAsof;
    before(async () => {
      if (!enabled) return;
      P = prefix('owners');
      const shared = { redisUrl: SHARED_REDIS_URL, redisPrefix: P };
      A = await start(shared);
      B = await start(shared);
      for (const [s, t, v, f] of [[A, 'ta', 'va', 'x'], [B, 'tb', 'vb', 'y']] as const) {
        assert.equal((await s.req('PUT', `/tables/${t}`, KEYED(f))).status, 201);
        assert.equal((await s.req('POST', `/tables/${t}/rows`, { rows: [{ id: 'k', [f]: f === 'x' ? 1 : 2 }] })).status, 200);
        assert.equal((await s.req('PUT', `/feature-views/${v}`, VIEW(t, f))).status, 201);
      }
    });

    it('both primaries serve, and the replica serves the views of both', async () => {
      const R = await start({ redisUrl: SHARED_REDIS_URL, redisPrefix: P, role: 'replica' });
      for (const s of [A, B, R]) assert.equal((await s.req('GET', '/readyz')).status, 200);
      const r = await R.req('POST', '/features', { entities: ['k'], features: ['va:x', 'vb:y'] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.results[0].features, { 'va:x': 1, 'vb:y': 2 });
      assert.deepEqual((await A.req('GET', '/features/k?view=va')).body.features, { 'va:x': 1 });
      assert.deepEqual((await B.req('GET', '/features/k?view=vb')).body.features, { 'vb:y': 2 });
    });

    it('a view or table name the other primary holds is refused with 409 naming the holder, and nothing is written', async () => {
      const before = { registry: await redis.hgetall(`${P}registry`), ns: await redis.hgetall(`${P}ns:va@1`) };
      const view = await B.req('PUT', '/feature-views/va', VIEW('tb', 'y'));
      assert.deepEqual([view.status, view.body.error?.code], [409, 'ASOF_CONFLICT'], JSON.stringify(view.body));
      const holder = (await redis.get(`${P}owner:view:va`))!;
      assert.match(holder, new RegExp(`^${hostname()}/${process.pid}/`), 'the lease names its holder');
      assert.match(view.body.error.message, /view "va"/);
      assert.match(view.body.error.message, new RegExp(`host ${hostname()}, pid ${process.pid}`));
      assert.equal(view.body.error.details.heldBy, holder);
      const table = await B.req('PUT', '/tables/ta', KEYED('z'));
      assert.deepEqual([table.status, table.body.error?.code], [409, 'ASOF_CONFLICT'], JSON.stringify(table.body));
      assert.match(table.body.error.message, /table "ta"/);
      assert.equal((await B.req('GET', '/feature-views/va')).status, 404);
      assert.equal((await B.req('GET', '/tables/ta')).status, 404);
      assert.deepEqual({ registry: await redis.hgetall(`${P}registry`), ns: await redis.hgetall(`${P}ns:va@1`) }, before);
      assert.equal(await redis.exists(`${P}ns:va@2`), 0);
    });

    it('a primary whose view lease another owner took writes nothing more to it, answers 503, and serves again once the name is free', async () => {
      const ns = `${P}ns:va@1`;
      await redis.set(`${P}owner:view:va`, 'elsewhere/4242/feedface', 'PX', 60_000);
      const held = await redis.hgetall(ns);
      const mirrored = await redis.hget(`${P}registry`, 'view:va');
      assert.equal((await A.req('POST', '/tables/ta/rows', { rows: [{ id: 'k', x: 7 }] })).status, 200, 'ingest still acknowledges (the changelog is the truth)');
      assert.deepEqual(await redis.hgetall(ns), held, 'the state in Redis is unchanged');
      const lookup = await A.req('GET', '/features/k?view=va');
      assert.deepEqual([lookup.status, lookup.body.error?.code], [503, 'ASOF_BACKEND_UNAVAILABLE'], JSON.stringify(lookup.body));
      assert.match(lookup.body.error.message, /host elsewhere, pid 4242/);
      await until('/readyz answers 503 naming the view', async () => {
        const r = await A.req('GET', '/readyz');
        return r.status === 503 && /view "va"/.test(r.body.error.message);
      }, 10_000);
      const redefined = await A.req('PUT', '/feature-views/va', { ...VIEW('ta', 'x'), ttl: '1d' });
      assert.deepEqual([redefined.status, redefined.body.error?.code], [409, 'ASOF_CONFLICT'], JSON.stringify(redefined.body));
      assert.deepEqual(await redis.hgetall(ns), held);
      assert.equal(await redis.hget(`${P}registry`, 'view:va'), mirrored);
      assert.equal(await redis.exists(`${P}ns:va@2`), 0);
      assert.equal((await B.req('GET', '/readyz')).status, 200, 'the other primary is not concerned');
      await redis.del(`${P}owner:view:va`);
      await until('A serves va again, with the write made meanwhile', async () => {
        const r = await A.req('GET', '/features/k?view=va');
        return r.status === 200 && r.body.features['va:x'] === 7;
      }, 15_000);
      assert.equal((await A.req('GET', '/readyz')).status, 200);
      assert.match((await redis.get(`${P}owner:view:va`))!, new RegExp(`/${process.pid}/`));
    });
  });

  it('a lease left by a primary that is gone lapses: a primary holding the name waits for it and starts', async () => {
    const P = prefix('lapse');
    const dir = await folderWithTable('tz');
    dirs.push(dir);
    await redis.set(`${P}owner:table:tz`, 'gone/1/dead', 'PX', 1500);
    const started = Date.now();
    const a = await start({ redisUrl: SHARED_REDIS_URL, redisPrefix: P }, { dataDir: dir.path });
    assert.ok(Date.now() - started >= 1000, 'it waited for the lease to lapse');
    assert.match((await redis.get(`${P}owner:table:tz`))!, new RegExp(`^${hostname()}/${process.pid}/`));
    await a.destroy();
    assert.equal(await redis.exists(`${P}owner:table:tz`), 0, 'closed, it released the name');
  });

  it('real processes: a second primary holding a table name the first holds refuses to start, naming it; the first stopped cleanly, the second starts at once', async () => {
    const P = prefix('procs');
    const env = { REDIS_URL: SHARED_REDIS_URL, ASOF_REDIS_PREFIX: P };
    const [dirA, dirB] = [await tempDir(), await folderWithTable('tx')];
    dirs.push(dirA, dirB);
    const first = await readyChild(dirA.path, env);
    assert.equal((await fetchJson(first.url, 'PUT', '/tables/tx', KEYED('x'))).status, 201);
    assert.equal((await fetchJson(first.url, 'PUT', '/feature-views/vx', VIEW('tx', 'x'))).status, 201);
    const second = await startChild(dirB.path, env);
    await assert.rejects(second.ready(), (e: Error) => {
      assert.match(e.message, /exited \(1\) before it was ready/);
      assert.match(e.message, /table "tx" is held in the shared Redis/);
      assert.match(e.message, new RegExp(`host ${hostname()}, pid ${first.proc.pid}`));
      return true;
    });
    await first.stop();
    assert.deepEqual([await redis.exists(`${P}owner:table:tx`), await redis.exists(`${P}owner:view:vx`)], [0, 0], 'a clean stop releases its names');
    const again = await readyChild(dirB.path, env);
    assert.doesNotMatch(again.output(), /waiting/, 'nothing to wait for');
    assert.match((await redis.get(`${P}owner:table:tx`))!, new RegExp(`/${again.proc.pid}/`));
    await again.stop();
  });
});
