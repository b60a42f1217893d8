/**
 * Lookups of in-process state gathered per event-loop turn (OnlineService.evaluateSoon, which
 * `GET /features/{entity}` answers through): every lookup of a turn gets its own answer, the
 * same as evaluating it alone, a bad key fails only its own lookup, and lookups of state that is
 * not in-process (Redis) are not held back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';
import { deletePrefix, SHARED_REDIS_URL, sharedRedisOrSkip, uniquePrefix } from '../redis-helpers.js';
import { toObjects } from '../../src/online/service.js';

async function define(a: TestAsof, kind: 'pk' | 'log'): Promise<void> {
  const columns = [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'at', type: 'timestamp', nullable: false },
    { name: 'x', type: 'float64' },
  ];
  assert.equal((await a.req('PUT', '/tables/t', kind === 'pk' ? { kind, primaryKey: ['id'], eventTime: 'at', columns } : { kind, eventTime: 'at', columns })).status, 201);
  const rows = Array.from({ length: 40 }, (_, id) => ({ id, at: Date.parse('2026-03-01T00:00:00Z') + id * 1000, x: id % 7 === 0 ? null : id * 1.25 }));
  assert.equal((await a.req('POST', '/tables/t/rows', { rows })).status, 200);
  await a.services.registry.defineView('v', { source: 't', entity: 'id', features: [{ name: 'x', column: 'x' }, { name: 'at', column: 'at' }] });
}

for (const kind of ['pk', 'log'] as const) {
  test(`lookups of one turn (embedded store, ${kind} source) each get their own answer; a bad key fails only its own`, async () => {
    const a = await testAsof();
    try {
      await define(a, kind);
      const online = a.services.online;
      const plan = await online.plan({ view: 'v' });
      // Entities 0..44 (40..44 never written), in a scrambled order, and one key that is not an int64, all queued in one turn.
      const entities: unknown[] = Array.from({ length: 45 }, (_, i) => (i * 17) % 45);
      entities.splice(20, 0, 'not-a-number');
      let settled = 0;
      let settledBeforeTurnEnd = -1;
      setImmediate(() => (settledBeforeTurnEnd = settled));
      const pending = entities.map((e) => online.evaluateSoon([e], plan).then((ev) => toObjects([e], ev)[0], (err: unknown) => err));
      for (const p of pending) void p.then(() => settled++);
      const got = await Promise.all(pending);
      assert.equal(settledBeforeTurnEnd, 0, 'the lookups wait for the end of the turn they were asked in');
      for (let i = 0; i < entities.length; i++) {
        if (entities[i] === 'not-a-number') {
          assert.equal((got[i] as { code?: string }).code, 'ASOF_INVALID_ARGUMENT');
          continue;
        }
        const alone = toObjects([entities[i]], await online.evaluate([entities[i]], plan))[0];
        assert.deepEqual(got[i], alone, `entity ${String(entities[i])}`);
      }
      // And through the route: concurrent GETs answer what each answers alone.
      const answers = await Promise.all([3, 5, 41, 7].map((id) => a.req('GET', `/features/${id}?view=v`)));
      for (const [i, id] of [3, 5, 41, 7].entries()) assert.deepEqual(answers[i].body, toObjects([String(id)], await online.evaluate([String(id)], plan))[0]);
    } finally {
      await a.destroy();
    }
  });
}

test('lookups of state that is not in-process (Redis) are evaluated at once, not held for the turn', async (t) => {
  if (!(await sharedRedisOrSkip())) return t.skip('Redis does not answer at 127.0.0.1:6379');
  const prefix = uniquePrefix('soon');
  const a = await testAsof({ redisUrl: SHARED_REDIS_URL, redisPrefix: prefix });
  try {
    await define(a, 'pk');
    const online = a.services.online;
    const plan = await online.plan({ view: 'v' });
    // Not held for the turn: the store read starts within the call (the reader then sends it on its own flush).
    const evaluate = online.evaluate.bind(online);
    let started = 0;
    online.evaluate = (...args) => (started++, evaluate(...args));
    const pending = online.evaluateSoon([3], plan);
    assert.equal(started, 1);
    online.evaluate = evaluate;
    assert.equal(toObjects([3], await pending)[0].features['v:x'], 3.75);
    // A key that does not convert is the caller's 400, as a rejected promise (never a throw), and only its own; over HTTP too.
    const bad = online.evaluateSoon(['1.5'], plan);
    const good = online.evaluateSoon([5], plan);
    await assert.rejects(bad, (e: { code?: string }) => e.code === 'ASOF_INVALID_ARGUMENT');
    assert.equal(toObjects([5], await good)[0].features['v:x'], 6.25);
    const r = await a.req('GET', '/features/1.5?view=v');
    assert.equal(r.status, 400);
    assert.equal((r.body as { error: { code: string } }).error.code, 'ASOF_INVALID_ARGUMENT');
  } finally {
    await a.destroy();
    // The shared Redis outlives the test: leave nothing of it behind.
    await deletePrefix(SHARED_REDIS_URL, prefix);
  }
});
