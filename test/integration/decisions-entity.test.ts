/**
 * A decision's entity is the canonical key of its views' entity column,
 * whichever form a request gave it in: an int64 "01001" is 1001, a
 * timestamp's RFC 3339 text is its epoch ms. A key the column refuses is a
 * 400 naming `entity` (and nothing is recorded), as a lookup's is.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ok, testAsof, type TestAsof } from '../helpers.js';

describe('a decision entity', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    await ok(asof.req('PUT', '/tables/drivers', { kind: 'pk', primaryKey: ['driver'], columns: [{ name: 'driver', type: 'int64', nullable: false }, { name: 'trips', type: 'int64', nullable: true }] }), 201);
    await ok(asof.req('PUT', '/feature-views/drv_v', { source: 'drivers', entity: 'driver', features: [{ name: 'trips', column: 'trips' }] }), 201);
    await ok(asof.req('PUT', '/tables/days', { kind: 'pk', primaryKey: ['day'], columns: [{ name: 'day', type: 'timestamp', nullable: false }, { name: 'n', type: 'int64', nullable: true }] }), 201);
    await ok(asof.req('PUT', '/feature-views/day_v', { source: 'days', entity: 'day', features: [{ name: 'n', column: 'n' }] }), 201);
    await ok(asof.req('POST', '/tables/drivers/rows', { rows: [{ driver: 1001, trips: 3 }, { driver: 1002, trips: 4 }] }));
    await ok(asof.req('POST', '/tables/days/rows', { rows: [{ day: '2024-03-01T00:00:00Z', n: 7 }] }));
  });
  after(() => asof.destroy());

  test('posted with a key its view refuses: 400 naming entity, nothing recorded', async () => {
    const r = await asof.req('POST', '/decisions', { id: 'p7', entity: 'abc', view: 'drv_v', outcome: 'x' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
    assert.equal(r.body.error.details[0].field, 'entity');
    assert.equal((await asof.req('GET', '/audit/decisions/p7')).status, 404);
  });

  test('posted as a JSON number beyond 2^53: refused as a lookup refuses it', async () => {
    const raw = '{"id":"big","entity":9007199254740993,"view":"drv_v","outcome":"x"}';
    const r = await asof.req('POST', '/decisions', raw, { 'content-type': 'application/json' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(r.body.error.message, /integers beyond 2\^53 must be sent as strings/);
    assert.equal(r.body.error.details[0].field, 'entity');
    const lookup = await asof.req('POST', '/features', '{"entities":[9007199254740993],"view":"drv_v"}', { 'content-type': 'application/json' });
    assert.equal(lookup.status, 400);
    assert.equal((await asof.req('GET', '/audit/decisions/big')).status, 404);
  });

  test('a recorded lookup of "01001" is 1001: retried as 1001 it answers its first answer; ?entity= finds it either way', async () => {
    const first = await ok(asof.req('GET', '/features/01001?view=drv_v&decision=lead-zero'));
    await ok(asof.req('POST', '/tables/drivers/rows', { rows: [{ driver: 1001, trips: 9 }] }));
    const again = await ok(asof.req('GET', '/features/1001?view=drv_v&decision=lead-zero'));
    assert.deepEqual(again.features, first.features);
    const batch = await ok(asof.req('POST', '/features', { entities: [1001], view: 'drv_v', decisions: ['lead-zero'] }));
    assert.deepEqual(batch.results[0].features, first.features);
    const d = await ok(asof.req('GET', '/audit/decisions/lead-zero'));
    assert.equal(d.decision.entity, '1001');
    for (const q of ['1001', '01001']) {
      const l = await ok(asof.req('GET', `/audit/decisions?entity=${q}`));
      assert.deepEqual(l.decisions.map((x: { id: string }) => x.id), ['lead-zero'], q);
    }
    // Completing it by POST with the number form agrees with the lookup.
    const done = await asof.req('POST', '/decisions', { id: 'lead-zero', entity: 1001, view: 'drv_v', outcome: 'ok' });
    assert.equal(done.status, 200, JSON.stringify(done.body));
  });

  test('a timestamp key is its epoch ms, given as RFC 3339 or as a number', async () => {
    const first = await ok(asof.req('POST', '/features', { entities: ['2024-03-01T00:00:00Z'], view: 'day_v', decisions: ['ts-key'] }));
    const again = await ok(asof.req('POST', '/features', { entities: [1709251200000], view: 'day_v', decisions: ['ts-key'] }));
    assert.equal(again.results[0].features['day_v:n'], 7);
    assert.deepEqual([again.results[0].features, again.results[0].token], [first.results[0].features, first.results[0].token]);
    const d = await ok(asof.req('GET', '/audit/decisions/ts-key'));
    assert.equal(d.decision.entity, '1709251200000');
    assert.deepEqual(d.reconstructed.features, { 'day_v:n': 7 });
    const l = await ok(asof.req('GET', '/audit/decisions?entity=2024-03-01T00:00:00.000Z'));
    assert.deepEqual(l.decisions.map((x: { id: string }) => x.id), ['ts-key']);
    const posted = await asof.req('POST', '/decisions', { id: 'ts-post', entity: '2024-03-01T00:00:00Z', view: 'day_v', outcome: 'x' });
    assert.equal(posted.status, 201, JSON.stringify(posted.body));
    assert.equal(posted.body.entity, '1709251200000');
  });
});

test('a posted attribute number a float64 would bend is refused, as in a json column; one it holds is stored as sent', async () => {
  const asof = await testAsof();
  try {
    await ok(asof.req('PUT', '/tables/users', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64' }] }), 201);
    await ok(asof.req('PUT', '/feature-views/u', { source: 'users', entity: 'id', features: [{ name: 'score', column: 'score' }] }), 201);
    const json = { 'content-type': 'application/json' };
    const bent = await asof.req('POST', '/decisions', '{"id":"attr-big","entity":"a","view":"u","outcome":"x","attributes":{"n":12345678901234567890}}', json);
    assert.equal(bent.status, 400, JSON.stringify(bent.body));
    assert.equal(bent.body.error.code, 'ASOF_INVALID_ARGUMENT');
    assert.equal(bent.body.error.details[0].field, 'attributes.n');
    assert.match(bent.body.error.message, /integers beyond 2\^53 must be sent as strings/);
    assert.equal((await asof.req('GET', '/audit/decisions/attr-big')).status, 404);
    const kept = await asof.req('POST', '/decisions', '{"id":"attr-ok","entity":"a","view":"u","outcome":"x","attributes":{"n":"12345678901234567890","m":[1.5,1e300]}}', json);
    assert.equal(kept.status, 201, JSON.stringify(kept.body));
    assert.deepEqual(kept.body.attributes, { n: '12345678901234567890', m: [1.5, 1e300] });
  } finally {
    await asof.destroy();
  }
});

test('posted served values name only features of the decision: another key is a 400 naming it, and nothing is recorded', async () => {
  const asof = await testAsof();
  try {
    await ok(asof.req('PUT', '/tables/users', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64' }, { name: 'name', type: 'string' }] }), 201);
    await ok(asof.req('PUT', '/feature-views/u', { source: 'users', entity: 'id', features: [{ name: 'score', column: 'score' }, { name: 'name', column: 'name' }] }), 201);
    // Before: stored as sent, and never compared (the audit compares the selection's features only), so a typo passed for a match.
    const cases: [Record<string, unknown>, Record<string, unknown>, string][] = [
      [{ view: 'u' }, { features: { 'u:score': 1, 'u:nope': 2 } }, 'served.features.u:nope'],
      [{ view: 'u' }, { features: { score: 1 } }, 'served.features.score'],
      [{ features: ['u:score'] }, { features: { 'u:score': 1, 'u:name': 'x' } }, 'served.features.u:name'],
      [{ view: 'u' }, { features: { 'u:score': 1 }, statuses: { 'u:score': 'PRESENT', 'v:score': 'PRESENT' } }, 'served.statuses.v:score'],
      [{ view: 'u' }, { features: { 'u:score': 1 }, eventTimes: { 'u:sco': null } }, 'served.eventTimes.u:sco'],
    ];
    for (const [selection, served, field] of cases) {
      const r = await asof.req('POST', '/decisions', { id: 'typo', entity: 'a', ...selection, outcome: 'x', served });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
      assert.deepEqual(r.body.error.details.map((d: { field: string }) => d.field), [field]);
      const key = field.split('.').slice(2).join('.');
      assert.ok(r.body.error.message.startsWith(`${field.split('.').slice(0, 2).join('.')} names "${key}", which is not a feature of the decision (its features: `), r.body.error.message);
      assert.equal((await asof.req('GET', '/audit/decisions/typo')).status, 404, 'nothing recorded');
    }
    // Completing a recorded lookup with such a key: the same 400 (not the 409 of values that differ), and the lookup's record is unchanged.
    await ok(asof.req('GET', '/features/a?view=u&decision=rec'));
    const done = await asof.req('POST', '/decisions', { id: 'rec', entity: 'a', view: 'u', outcome: 'x', served: { features: { 'u:score': null, 'u:name': null, 'u:extra': 1 } } });
    assert.equal(done.status, 400, JSON.stringify(done.body));
    assert.equal((await ok(asof.req('GET', '/audit/decisions/rec'))).decision.outcome, null);
    // Keys of the selection are taken, a subset too; the audit compares them.
    const good = await asof.req('POST', '/decisions', { id: 'fine', entity: 'a', features: ['u:score', 'u:name'], outcome: 'x', served: { features: { 'u:score': 1.5 }, statuses: { 'u:score': 'PRESENT' }, eventTimes: { 'u:score': null } } });
    assert.equal(good.status, 201, JSON.stringify(good.body));
    assert.deepEqual((await ok(asof.req('GET', '/audit/decisions/fine'))).served.features, { 'u:score': 1.5 });
  } finally {
    await asof.destroy();
  }
});
