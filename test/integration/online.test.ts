/**
 * Feature views and online serving over REST, with the embedded store and an
 * injected clock: statuses, ttl, sliding windows, aggregates against a
 * brute-force computation, read-your-writes, backfill, redefinition, errors.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ok, testAsof, type TestAsof } from '../helpers.js';

const MIN = 60_000;
const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

const TX = {
  kind: 'log',
  eventTime: 'ts',
  columns: [
    { name: 'card', type: 'string', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'amount', type: 'float64' },
    { name: 'merchant', type: 'string' },
  ],
};
const USERS = {
  kind: 'pk',
  primaryKey: ['user'],
  eventTime: 'updated',
  columns: [
    { name: 'user', type: 'int64', nullable: false },
    { name: 'updated', type: 'timestamp' },
    { name: 'country', type: 'string' },
    { name: 'score', type: 'float64' },
  ],
};

/** An asof whose clock the test moves. */
async function clocked(start = T0): Promise<{ asof: TestAsof; clock: { t: number } }> {
  const clock = { t: start };
  const asof = await testAsof({}, { now: () => clock.t });
  return { asof, clock };
}

describe('statuses, ttl and event times', () => {
  let asof: TestAsof;
  let clock: { t: number };
  before(async () => {
    ({ asof, clock } = await clocked());
    await ok(asof.req('PUT', '/tables/users', USERS), 201);
    await ok(asof.req('POST', '/tables/users/rows', { rows: [{ user: 1, updated: T0 - 10 * MIN, country: 'PT', score: 0.5 }, { user: 2, updated: T0 - 50 * MIN, country: null, score: 1 }] }));
    await ok(asof.req('PUT', '/feature-views/user', { source: 'users', entity: 'user', ttl: '1h', features: [{ name: 'country', column: 'country' }, { name: 'score', column: 'score' }] }), 201);
  });
  after(() => asof.destroy());

  test('PRESENT, NULL_VALUE and NOT_FOUND, with event times and the token', async () => {
    const one = await ok(asof.req('GET', '/features/1?view=user'));
    assert.deepEqual(one, {
      entity: '1',
      features: { 'user:country': 'PT', 'user:score': 0.5 },
      statuses: { 'user:country': 'PRESENT', 'user:score': 'PRESENT' },
      eventTimes: { 'user:country': iso(T0 - 10 * MIN), 'user:score': iso(T0 - 10 * MIN) },
      token: { users: 1 },
    });
    const two = await ok(asof.req('GET', '/features/2?features=user:score,user:country'));
    assert.deepEqual(Object.keys(two.features), ['user:score', 'user:country'], 'features come in request order');
    assert.deepEqual(two.statuses, { 'user:score': 'PRESENT', 'user:country': 'NULL_VALUE' });
    assert.equal(two.features['user:country'], null);
    const none = await ok(asof.req('GET', '/features/3?view=user'));
    assert.deepEqual(none.statuses, { 'user:country': 'NOT_FOUND', 'user:score': 'NOT_FOUND' });
    assert.deepEqual(none.features, { 'user:country': null, 'user:score': null });
    assert.deepEqual(none.eventTimes, { 'user:country': null, 'user:score': null });
  });

  test('ttl: a value older than now - ttl is OUTSIDE_MAX_AGE, from the exact moment it passes', async () => {
    clock.t = T0 + 10 * MIN; // user 2 is 60 minutes old: still inside
    assert.equal((await ok(asof.req('GET', '/features/2?view=user'))).statuses['user:score'], 'PRESENT');
    clock.t = T0 + 10 * MIN + 1;
    const old = await ok(asof.req('GET', '/features/2?view=user'));
    assert.deepEqual(old.statuses, { 'user:country': 'OUTSIDE_MAX_AGE', 'user:score': 'OUTSIDE_MAX_AGE' });
    assert.deepEqual(old.features, { 'user:country': null, 'user:score': null });
    assert.equal(old.eventTimes['user:score'], iso(T0 - 50 * MIN), 'the event time still says how old the value is');
    assert.equal((await ok(asof.req('GET', '/features/1?view=user'))).statuses['user:score'], 'PRESENT');
    // A fresh write brings it back.
    await ok(asof.req('POST', '/tables/users/rows', { rows: [{ user: 2, updated: clock.t, country: 'DE', score: 2 }] }));
    assert.deepEqual((await ok(asof.req('GET', '/features/2?view=user'))).features, { 'user:country': 'DE', 'user:score': 2 });
  });

  test('a pk delete makes the entity NOT_FOUND; a pk row without event time is timed by its commit', async () => {
    await ok(asof.req('POST', '/tables/users/rows', { rows: [{ user: 1 }], op: 'delete' }));
    assert.equal((await ok(asof.req('GET', '/features/1?view=user'))).statuses['user:score'], 'NOT_FOUND');
    clock.t += 1234;
    await ok(asof.req('POST', '/tables/users/rows', { rows: [{ user: 5, score: 3 }] }));
    assert.equal((await ok(asof.req('GET', '/features/5?view=user'))).eventTimes['user:score'], iso(clock.t));
  });
});

describe('windowed aggregates', () => {
  test('a 10-minute count read at 12:10 covers (12:00, 12:10] and slides with the clock, with no new event', async () => {
    const { asof, clock } = await clocked(Date.parse('2026-03-01T12:10:00.000Z'));
    try {
      await ok(asof.req('PUT', '/tables/tx', TX), 201);
      const at = (hhmmss: string) => Date.parse(`2026-03-01T${hhmmss}Z`);
      await ok(asof.req('POST', '/tables/tx/rows', { rows: ['11:59:59.999', '12:00:00.000', '12:00:00.001', '12:04:00.000', '12:10:00.000'].map((ts) => ({ card: 'c', ts: `2026-03-01T${ts}Z`, amount: 1 })) }));
      await ok(asof.req('PUT', '/feature-views/card', { source: 'tx', entity: 'card', features: [{ name: 'n10m', agg: { fn: 'count', window: '10m' } }, { name: 'sum10m', agg: { fn: 'sum', column: 'amount', window: '10m' } }] }), 201);
      const count = async () => (await ok(asof.req('GET', '/features/c?features=card:n10m'))).features['card:n10m'];
      assert.equal(await count(), 3);
      for (const [time, want] of [['12:10:00.001', 2], ['12:14:00.000', 1], ['12:14:00.001', 1], ['12:19:59.999', 1], ['12:20:00.000', 0]] as const) {
        clock.t = at(time);
        assert.equal(await count(), want, `at ${time}`);
      }
      const gone = await ok(asof.req('GET', '/features/c?view=card'));
      assert.deepEqual([gone.features, gone.statuses], [{ 'card:n10m': 0, 'card:sum10m': null }, { 'card:n10m': 'PRESENT', 'card:sum10m': 'NULL_VALUE' }]);
      const unknown = await ok(asof.req('GET', '/features/nobody?view=card'));
      assert.deepEqual([unknown.features, unknown.statuses], [{ 'card:n10m': 0, 'card:sum10m': null }, { 'card:n10m': 'NOT_FOUND', 'card:sum10m': 'NOT_FOUND' }], 'count of none is 0, as in training sets');
    } finally {
      await asof.destroy();
    }
  });

  test('count, sum, avg, min, max and last over generated events equal a brute-force computation, as time moves', async () => {
    const { asof, clock } = await clocked(T0);
    try {
      await ok(asof.req('PUT', '/tables/tx', TX), 201);
      const windows = ['30s', '10m', '1h', '1d'];
      const ms: Record<string, number> = { '30s': 30_000, '10m': 10 * MIN, '1h': 60 * MIN, '1d': 1440 * MIN };
      const features = windows.flatMap((w) => [
        { name: `n_${w}`, agg: { fn: 'count', window: w } },
        { name: `na_${w}`, agg: { fn: 'count', column: 'amount', window: w } },
        { name: `sum_${w}`, agg: { fn: 'sum', column: 'amount', window: w } },
        { name: `avg_${w}`, agg: { fn: 'avg', column: 'amount', window: w } },
        { name: `min_${w}`, agg: { fn: 'min', column: 'amount', window: w } },
        { name: `max_${w}`, agg: { fn: 'max', column: 'amount', window: w } },
        { name: `last_${w}`, agg: { fn: 'last', column: 'merchant', window: w } },
      ]);
      // Half the events exist before the view (backfill), half arrive after (live).
      let seed = 11;
      const rand = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32;
      const events: { card: string; ts: number; amount: number | null; merchant: string | null; commit: number; offset: number }[] = [];
      let offset = 0;
      const ingest = async (n: number) => {
        for (let i = 0; i < n; i++) {
          clock.t += Math.floor(rand() * 20_000);
          const late = rand() < 0.2 ? Math.floor(rand() * 30 * MIN) : Math.floor(rand() * 1000);
          const e = { card: `c${Math.floor(rand() * 3)}`, ts: clock.t - late, amount: rand() < 0.15 ? null : Math.floor(rand() * 1000) / 8, merchant: rand() < 0.2 ? null : `m${Math.floor(rand() * 4)}` };
          const w = await ok(asof.req('POST', '/tables/tx/rows', { rows: [e] }));
          events.push({ ...e, commit: clock.t, offset: offset++ });
          assert.equal(w.firstOffset, offset - 1);
        }
      };
      await ingest(60);
      await ok(asof.req('PUT', '/feature-views/agg', { source: 'tx', entity: 'card', features }), 201);
      await ingest(60);
      const expected = (card: string, t: number) => {
        const mine = events.filter((e) => e.card === card && e.commit <= t);
        const out: Record<string, unknown> = {};
        for (const w of windows) {
          const inWin = mine.filter((e) => e.ts > t - ms[w] && e.ts <= t).sort((a, b) => a.ts - b.ts || a.offset - b.offset);
          const amounts = inWin.map((e) => e.amount).filter((a): a is number => a !== null);
          const merchants = inWin.map((e) => e.merchant).filter((m) => m !== null);
          out[`agg:n_${w}`] = inWin.length;
          out[`agg:na_${w}`] = amounts.length;
          out[`agg:sum_${w}`] = amounts.length ? amounts.reduce((a, b) => a + b, 0) : null;
          out[`agg:avg_${w}`] = amounts.length ? amounts.reduce((a, b) => a + b, 0) / amounts.length : null;
          out[`agg:min_${w}`] = amounts.length ? Math.min(...amounts) : null;
          out[`agg:max_${w}`] = amounts.length ? Math.max(...amounts) : null;
          out[`agg:last_${w}`] = merchants.length ? merchants[merchants.length - 1] : null;
        }
        return out;
      };
      const end = clock.t;
      for (const t of [end, end + 15_000, end + 5 * MIN, end + 31 * MIN, end + 2 * 3_600_000, end + 2 * 86_400_000]) {
        clock.t = t;
        const { results } = await ok(asof.req('POST', '/features', { entities: ['c0', 'c1', 'c2'], view: 'agg' }));
        results.forEach((r: any, i: number) => assert.deepEqual(r.features, expected(`c${i}`, t), `card c${i} at +${t - end} ms`));
      }
    } finally {
      await asof.destroy();
    }
  });
});

describe('views: backfill, redefinition, read-your-writes', () => {
  let asof: TestAsof;
  let clock: { t: number };
  before(async () => {
    ({ asof, clock } = await clocked());
    await ok(asof.req('PUT', '/tables/tx', TX), 201);
    await ok(asof.req('PUT', '/tables/users', USERS), 201);
  });
  after(() => asof.destroy());

  test('creating a view backfills it from the existing changelog before answering 201', async () => {
    const rows = Array.from({ length: 500 }, (_, i) => ({ card: `k${i % 50}`, ts: T0 - (500 - i) * 1000, amount: i }));
    const w = await ok(asof.req('POST', '/tables/tx/rows', { rows }));
    const created = await ok(asof.req('PUT', '/feature-views/spend', { source: 'tx', entity: 'card', features: [{ name: 'last', column: 'amount' }, { name: 'n', agg: { fn: 'count', window: '1h' } }] }), 201);
    assert.deepEqual([created.version, created.online], [1, { store: 'embedded', status: 'serving', watermark: w.lastOffset }]);
    assert.deepEqual(created.features, [{ name: 'last', column: 'amount', type: 'float64' }, { name: 'n', agg: { fn: 'count', window: '1h' }, type: 'int64' }]);
    const r = await ok(asof.req('GET', '/features/k7?view=spend'));
    assert.deepEqual(r.features, { 'spend:last': 457, 'spend:n': 10 });
    assert.deepEqual(r.token, { tx: w.lastOffset });
  });

  test('an identical definition is a no-op (200, same version); a changed one re-materializes (200, next version)', async () => {
    const body = { source: 'tx', entity: 'card', features: [{ name: 'last', column: 'amount' }, { name: 'n', agg: { fn: 'count', window: '1h' } }] };
    const same = await ok(asof.req('PUT', '/feature-views/spend', body));
    assert.equal(same.version, 1);
    const changed = await ok(asof.req('PUT', '/feature-views/spend', { ...body, features: [{ name: 'n', agg: { fn: 'count', window: '2m' } }, { name: 'top', agg: { fn: 'max', column: 'amount', window: '1h' } }] }));
    assert.equal(changed.version, 2);
    const r = await ok(asof.req('GET', '/features/k7?view=spend'));
    // k7's events are at T0 - 43 s, - 93 s, - 143 s, ...: two in the last 2 minutes.
    assert.deepEqual(r.features, { 'spend:n': 2, 'spend:top': 457 }, 'the new definition, computed from the whole changelog');
    assert.equal((await asof.req('GET', '/features/k7?features=spend:last')).status, 404, 'features of the old definition are gone');
    assert.equal(await asof.services.onlineStore.meta('spend@1'), undefined, 'the old namespace was removed');
    const listed = await ok(asof.req('GET', '/feature-views'));
    assert.deepEqual(listed.views.map((v: any) => [v.name, v.version]), [['spend', 2]]);
  });

  test('a row acknowledged by ingest is in the next read; the token covers the write', async () => {
    await ok(asof.req('PUT', '/feature-views/profile', { source: 'users', entity: 'user', features: [{ name: 'score', column: 'score' }] }), 201);
    for (let i = 0; i < 30; i++) {
      clock.t += 10;
      const w = await ok(asof.req('POST', '/tables/users/rows', { rows: [{ user: 7, updated: clock.t, score: i }] }));
      const r = await ok(asof.req('GET', '/features/7?features=profile:score'));
      assert.equal(r.features['profile:score'], i);
      assert.ok(r.token.users >= w.token.users, `token ${r.token.users} covers write ${w.token.users}`);
    }
  });

  test('POST /features: entities in request order, typed or as text, features of two views (two tokens)', async () => {
    await ok(asof.req('POST', '/tables/users/rows', { rows: [{ user: 8, score: 0.125, country: 'FR' }] }));
    // Keys as text suit every view's entity type; JSON numbers suit numeric entities only.
    const res = await ok(asof.req('POST', '/features', { entities: ['8', '7', '404'], features: ['profile:score', 'spend:n'] }));
    assert.deepEqual(
      res.results.map((r: any) => [r.entity, r.features['profile:score'], r.statuses['profile:score'], r.statuses['spend:n']]),
      [
        ['8', 0.125, 'PRESENT', 'NOT_FOUND'],
        ['7', 29, 'PRESENT', 'NOT_FOUND'],
        ['404', null, 'NOT_FOUND', 'NOT_FOUND'],
      ],
    );
    assert.deepEqual(Object.keys(res.results[0].token).sort(), ['tx', 'users']);
    const typed = await ok(asof.req('POST', '/features', { entities: [8, 7], view: 'profile' }));
    assert.deepEqual(typed.results.map((r: any) => [r.entity, r.features['profile:score']]), [[8, 0.125], [7, 29]]);
    const mixed = await asof.req('POST', '/features', { entities: [8], features: ['profile:score', 'spend:n'] });
    assert.equal(mixed.status, 400, 'a number is not a valid key of the string-keyed view');
    const bad = await asof.req('POST', '/features', { entities: [8, 'eight'], view: 'profile' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.details[0].row, 1, 'the bad entity is named by its index');
  });

  test('feature services: define, list, look up through them, redefine', async () => {
    const created = await ok(asof.req('PUT', '/feature-services/scoring', { features: ['profile:score', 'spend:top'] }), 201);
    assert.deepEqual(created.features, ['profile:score', 'spend:top']);
    assert.deepEqual((await ok(asof.req('PUT', '/feature-services/scoring', { features: ['profile:score', 'spend:top'] }))).features, ['profile:score', 'spend:top']);
    const r = await ok(asof.req('GET', '/features/7?service=scoring'));
    assert.deepEqual(Object.keys(r.features), ['profile:score', 'spend:top']);
    await ok(asof.req('PUT', '/feature-services/scoring', { features: ['spend:top'] }));
    assert.deepEqual(Object.keys((await ok(asof.req('GET', '/features/7?service=scoring'))).features), ['spend:top']);
    assert.deepEqual((await ok(asof.req('GET', '/feature-services'))).services.map((s: any) => s.name), ['scoring']);
    assert.deepEqual((await ok(asof.req('GET', '/feature-services/scoring'))).features, ['spend:top']);
  });
});

describe('errors', () => {
  let asof: TestAsof;
  before(async () => {
    ({ asof } = await clocked());
    await ok(asof.req('PUT', '/tables/tx', TX), 201);
    await ok(asof.req('PUT', '/tables/users', USERS), 201);
    await ok(asof.req('PUT', '/feature-views/v', { source: 'tx', entity: 'card', features: [{ name: 'a', column: 'amount' }] }), 201);
  });
  after(() => asof.destroy());

  const BAD: [string, unknown, string, RegExp?][] = [
    ['unknown source table', { source: 'nope', entity: 'card', features: [{ name: 'a', column: 'amount' }] }, 'source', /nope/],
    ['unknown entity column', { source: 'tx', entity: 'who', features: [{ name: 'a', column: 'amount' }] }, 'entity', /who/],
    ['unknown feature column', { source: 'tx', entity: 'card', features: [{ name: 'a', column: 'amount' }, { name: 'b', column: 'price' }] }, 'features[1].column', /price/],
    ['unknown aggregate column', { source: 'tx', entity: 'card', features: [{ name: 'a', agg: { fn: 'sum', column: 'price', window: '1h' } }] }, 'features[0].agg.column', /price/],
    ['sum over a string', { source: 'tx', entity: 'card', features: [{ name: 'a', agg: { fn: 'sum', column: 'merchant', window: '1h' } }] }, 'features[0].agg.column', /numeric/],
    ['sum without a column', { source: 'tx', entity: 'card', features: [{ name: 'a', agg: { fn: 'sum', window: '1h' } }] }, 'features[0].agg.column'],
    ['window below 1s', { source: 'tx', entity: 'card', features: [{ name: 'a', agg: { fn: 'count', window: '500ms' } }] }, 'features[0].agg.window', /1s to 90d/],
    ['window beyond 90d', { source: 'tx', entity: 'card', features: [{ name: 'a', agg: { fn: 'count', window: '91d' } }] }, 'features[0].agg.window'],
    ['window not a duration', { source: 'tx', entity: 'card', features: [{ name: 'a', agg: { fn: 'count', window: 'soon' } }] }, 'features[0].agg.window'],
    ['aggregate over a pk table', { source: 'users', entity: 'user', features: [{ name: 'a', agg: { fn: 'count', window: '1h' } }] }, 'features[0].agg', /log table/],
    ['pk view keyed by another column', { source: 'users', entity: 'country', features: [{ name: 'a', column: 'score' }] }, 'entity', /primary key/],
    ['duplicate feature names', { source: 'tx', entity: 'card', features: [{ name: 'a', column: 'amount' }, { name: 'a', column: 'merchant' }] }, 'features[1].name', /duplicate/],
    ['bad ttl', { source: 'tx', entity: 'card', ttl: 'forever', features: [{ name: 'a', column: 'amount' }] }, 'ttl'],
    ['no features', { source: 'tx', entity: 'card', features: [] }, 'body.features'],
    ['a feature with both column and agg', { source: 'tx', entity: 'card', features: [{ name: 'a', column: 'amount', agg: { fn: 'count', window: '1h' } }] }, 'body.features[0]'],
    ['an unknown aggregate function', { source: 'tx', entity: 'card', features: [{ name: 'a', agg: { fn: 'median', window: '1h' } }] }, 'body.features[0].agg.fn'],
    ['an unknown field', { source: 'tx', entity: 'card', features: [{ name: 'a', column: 'amount' }], window: '1h' }, 'body.window'],
  ];
  for (const [name, body, field, message] of BAD) {
    test(`PUT /feature-views 400: ${name}`, async () => {
      const r = await asof.req('PUT', '/feature-views/bad', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error.code, /^ASOF_INVALID_(DEFINITION|ARGUMENT)$/);
      assert.ok(r.body.error.details.some((d: any) => d.field === field), `details name ${field}: ${JSON.stringify(r.body.error.details)}`);
      if (message) assert.match(r.body.error.message + JSON.stringify(r.body.error.details), message);
      assert.equal((await asof.req('GET', '/feature-views/bad')).status, 404, 'nothing was defined');
    });
  }

  const NOT_FOUND: [string, string, string][] = [
    ['GET', '/feature-views/nope', 'ASOF_FEATURE_VIEW_NOT_FOUND'],
    ['GET', '/feature-services/nope', 'ASOF_FEATURE_SERVICE_NOT_FOUND'],
    ['GET', '/features/x?view=nope', 'ASOF_FEATURE_VIEW_NOT_FOUND'],
    ['GET', '/features/x?service=nope', 'ASOF_FEATURE_SERVICE_NOT_FOUND'],
    ['GET', '/features/x?features=nope:a', 'ASOF_FEATURE_VIEW_NOT_FOUND'],
    ['GET', '/features/x?features=v:a,v:nope', 'ASOF_NOT_FOUND'],
  ];
  for (const [method, url, code] of NOT_FOUND) {
    test(`${method} ${url} is 404 ${code}`, async () => {
      const r = await asof.req(method, url);
      assert.deepEqual([r.status, r.body.error.code], [404, code]);
    });
  }

  const INVALID: [string, string, unknown, string][] = [
    ['GET', '/features/x', undefined, 'features'],
    ['GET', '/features/x?view=v&features=v:a', undefined, 'features'],
    ['GET', '/features/x?features=no-colon', undefined, 'features'],
    ['GET', '/features/x?view=v&bogus=d1', undefined, 'query.bogus'],
    ['GET', '/features/x?view=v&decision=has%20space', undefined, 'query.decision'],
    ['POST', '/features', { entities: [], view: 'v' }, 'body.entities'],
    ['POST', '/features', { entities: ['x'] }, 'features'],
    ['PUT', '/feature-services/s', { features: ['v:nope'] }, 'features'],
    ['PUT', '/feature-services/s', { features: ['v:a', 'v:a'] }, 'features'],
    ['PUT', '/feature-services/s', { features: [] }, 'body.features'],
  ];
  for (const [method, url, body, field] of INVALID) {
    test(`${method} ${url} ${body ? JSON.stringify(body) : ''} is 400 naming ${field}`, async () => {
      const r = await asof.req(method, url, body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.ok(r.body.error.details.some((d: any) => d.field === field), JSON.stringify(r.body.error.details));
    });
  }

  test('an entity that is not a valid key of the view is 400', async () => {
    await ok(asof.req('PUT', '/feature-views/u', { source: 'users', entity: 'user', features: [{ name: 's', column: 'score' }] }), 201);
    const r = await asof.req('GET', '/features/abc?view=u');
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /user/);
  });

  test('a string entity with a lone surrogate is 400 naming it, not NOT_FOUND: it can never be a stored key', async () => {
    // No adapter can carry one (JSON bodies refuse it, a URL or protobuf string cannot encode it); in-process callers of the service (vector search's hydration, the audit) can.
    const plan = await asof.services.online.plan({ view: 'v' });
    const err = await Promise.resolve()
      .then(() => asof.services.online.evaluate(['ok', 'a\ud800b'], plan))
      .then(() => undefined, (e: unknown) => e as { code?: string; details?: { row?: number; field?: string; reason?: string }[] });
    assert.equal(err?.code, 'ASOF_INVALID_ARGUMENT');
    assert.deepEqual([err.details?.[0].row, err.details?.[0].field], [1, 'entity']);
    assert.match(err.details?.[0].reason ?? '', /lone surrogate/);
    // The same well-formed key answers.
    const fine = await asof.services.online.evaluate(['a\ud83d\ude00b'], plan);
    assert.deepEqual(fine.statuses, ['NOT_FOUND']);
  });
});

test('after a restart the embedded store is rebuilt from the changelog: same answers', async () => {
  const { asof, clock } = await clocked();
  await ok(asof.req('PUT', '/tables/tx', TX), 201);
  await ok(asof.req('PUT', '/feature-views/v', { source: 'tx', entity: 'card', ttl: '1d', features: [{ name: 'last', column: 'merchant' }, { name: 'n', agg: { fn: 'count', window: '1h' } }] }), 201);
  await ok(asof.req('POST', '/tables/tx/rows', { rows: Array.from({ length: 40 }, (_, i) => ({ card: `c${i % 4}`, ts: T0 - i * MIN, merchant: `m${i}` })) }));
  const before = await ok(asof.req('POST', '/features', { entities: ['c0', 'c1', 'c2', 'c3', 'c4'], view: 'v' }));
  await asof.close();
  const again = await testAsof({}, { dataDir: asof.dataDir, now: () => clock.t });
  try {
    assert.deepEqual(await ok(again.req('POST', '/features', { entities: ['c0', 'c1', 'c2', 'c3', 'c4'], view: 'v' })), before);
    assert.equal((await ok(again.req('GET', '/feature-views/v'))).version, 1);
  } finally {
    await again.destroy();
  }
});

test('min and max over int64 values beyond 2^53 answer the exact value, as stored (not rounded through a double)', async () => {
  const now = Date.parse('2026-06-01T00:00:00Z');
  const a = await testAsof({}, { now: () => now });
  try {
    await ok(a.req('PUT', '/tables/big', { kind: 'log', eventTime: 'ts', columns: [{ name: 'k', type: 'string', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, { name: 'v', type: 'int64', nullable: true }] }), 201);
    await ok(a.req('PUT', '/feature-views/w', { source: 'big', entity: 'k', features: [{ name: 'mx', agg: { fn: 'max', column: 'v', window: '1d' } }, { name: 'mn', agg: { fn: 'min', column: 'v', window: '1d' } }] }), 201);
    const sent = ['9007199254740993', '9007199254740995', '-9007199254740997', 5, null];
    await ok(a.req('POST', '/tables/big/rows', { rows: sent.map((v, i) => ({ k: 'a', ts: now - 1000 * (i + 1), v })) }));
    // The oracle: the values compared as BigInt, answered as the API writes int64 (text beyond 2^53, a number within).
    const vals = sent.filter((v) => v !== null).map((v) => BigInt(v as string | number));
    const asAnswered = (b: bigint) => (b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString());
    const r = await ok(a.req('GET', '/features/a?view=w'));
    assert.deepEqual(r.features, { 'w:mx': asAnswered(vals.reduce((x, y) => (y > x ? y : x))), 'w:mn': asAnswered(vals.reduce((x, y) => (y < x ? y : x))) });
  } finally {
    await a.destroy();
  }
});
