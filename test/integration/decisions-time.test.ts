/**
 * A posted decision's decidedAt may not be later than the server's now: its
 * replay (without a token) is what the store knew at decidedAt, so a time still
 * to come would take in writes made after the post and its audit would change
 * over time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, testAsof } from '../helpers.js';

test('decidedAt later than now is a 400 naming decidedAt; now and earlier are recorded', async () => {
  const clock = { t: 1_700_000_000_000 };
  const asof = await testAsof({}, { now: () => clock.t });
  try {
    await ok(asof.req('PUT', '/tables/users', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64' }] }), 201);
    await ok(asof.req('PUT', '/feature-views/u', { source: 'users', entity: 'id', features: [{ name: 'score', column: 'score' }] }), 201);
    await ok(asof.req('POST', '/tables/users/rows', { rows: [{ id: 'a', score: 1 }] }));
    const future = await asof.req('POST', '/decisions', { id: 'later', entity: 'a', view: 'u', outcome: 'x', decidedAt: clock.t + 60_000 });
    assert.equal(future.status, 400, JSON.stringify(future.body));
    assert.equal(future.body.error.code, 'ASOF_INVALID_ARGUMENT');
    assert.equal(future.body.error.details[0].field, 'decidedAt');
    assert.equal((await asof.req('GET', '/audit/decisions/later')).status, 404);
    const rfc = await asof.req('POST', '/decisions', { id: 'later-rfc', entity: 'a', view: 'u', outcome: 'x', decidedAt: new Date(clock.t + 1).toISOString() });
    assert.equal(rfc.status, 400, JSON.stringify(rfc.body));

    await ok(asof.req('POST', '/decisions', { id: 'now', entity: 'a', view: 'u', outcome: 'x', decidedAt: clock.t }), 201);
    await ok(asof.req('POST', '/decisions', { id: 'past', entity: 'a', view: 'u', outcome: 'x', decidedAt: clock.t - 1 }), 201);
    // Its audit does not change with writes made after it.
    const before = await ok(asof.req('GET', '/audit/decisions/now'));
    clock.t += 1000;
    await ok(asof.req('POST', '/tables/users/rows', { rows: [{ id: 'a', score: 2 }] }));
    const after = await ok(asof.req('GET', '/audit/decisions/now'));
    assert.deepEqual(after.reconstructed, before.reconstructed);
    assert.deepEqual(after.reconstructed.features, { 'u:score': 1 });
  } finally {
    await asof.destroy();
  }
});
