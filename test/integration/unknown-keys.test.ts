/**
 * Every request object is strict: a key a route's body or query does not
 * take (a misspelled `Op`, `Metric`, `pointIntime`, `frm`) is a 400
 * ASOF_INVALID_ARGUMENT naming it (`body.Op`, "unrecognized key"), and a
 * refused write writes nothing. Before, such keys were dropped and the
 * request did something else (an upsert asked as a delete, a cosine column
 * asked as l2, event semantics asked as known).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';

const DRIVERS = { kind: 'pk', primaryKey: ['driver_id'], columns: [{ name: 'driver_id', type: 'int64', nullable: false }, { name: 'rating', type: 'float64' }] };
const TRIPS = {
  kind: 'log',
  eventTime: 'ts',
  columns: [
    { name: 'driver_id', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'fare', type: 'float64' },
  ],
};

/** The one detail of a refused unknown key: its field, and a reason that says so. */
function refusedKey(r: { status: number; body: any }, field: string): void {
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
  const d = r.body.error.details.find((x: { field: string }) => x.field === field);
  assert.ok(d, `no detail names ${field}: ${JSON.stringify(r.body.error.details)}`);
  assert.match(d.reason, /^unrecognized key/);
  // The message names the first problem.
  if (d === r.body.error.details[0]) assert.ok(r.body.error.message.includes(field), r.body.error.message);
}

describe('unknown keys in request bodies and queries', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    assert.equal((await asof.req('PUT', '/tables/drivers', DRIVERS)).status, 201);
    assert.equal((await asof.req('PUT', '/tables/trips', TRIPS)).status, 201);
    assert.equal((await asof.req('POST', '/tables/drivers/rows', { rows: [{ driver_id: 5, rating: 4.5 }] })).status, 200);
    assert.equal((await asof.req('POST', '/tables/trips/rows', { rows: [{ driver_id: 5, ts: 1_700_000_000_000, fare: 10 }] })).status, 200);
    assert.equal((await asof.req('PUT', '/feature-views/trip_stats', { source: 'trips', entity: 'driver_id', features: [{ name: 'fare', column: 'fare' }] })).status, 201);
  });
  after(() => asof.destroy());

  const latest = async (table: string): Promise<number> => (await asof.req('GET', `/tables/${table}`)).body.latestOffset;

  test('POST /tables/{table}/rows: a misspelled op, an idempotencyKey in the body, an unknown query parameter: 400, nothing written', async () => {
    const end = await latest('drivers');
    refusedKey(await asof.req('POST', '/tables/drivers/rows', { rows: [{ driver_id: 5 }], Op: 'delete' }), 'body.Op');
    refusedKey(await asof.req('POST', '/tables/drivers/rows', { rows: [{ driver_id: 6, rating: 1 }], idempotencyKey: 'k1' }), 'body.idempotencyKey');
    refusedKey(await asof.req('POST', '/tables/drivers/rows?opp=delete', { rows: [{ driver_id: 7, rating: 1 }] }), 'query.opp');
    refusedKey(await asof.req('POST', '/tables/drivers/rows?opp=delete', '{"driver_id":8,"rating":1}\n', { 'content-type': 'application/x-ndjson' }), 'query.opp');
    assert.equal(await latest('drivers'), end, 'no refused write wrote');
    // The row the misspelled delete named is still there, unchanged.
    assert.deepEqual((await asof.req('GET', '/tables/drivers/rows/5')).body.row, { driver_id: 5, rating: 4.5 });
  });

  test('PUT /tables/{table}: a misspelled column or definition key is refused and defines nothing', async () => {
    const vec = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'e', type: 'vector<2>', Metric: 'l2' }] };
    refusedKey(await asof.req('PUT', '/tables/pkt2', vec), 'body.columns[1].Metric');
    const ev = { kind: 'pk', primaryKey: ['id'], eventtime: 'ts', columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'ts', type: 'timestamp' }] };
    refusedKey(await asof.req('PUT', '/tables/pkt2', ev), 'body.eventtime');
    assert.equal((await asof.req('GET', '/tables/pkt2')).status, 404);
    // The reason lists the keys the object takes.
    const r = await asof.req('PUT', '/tables/pkt2', vec);
    assert.match(r.body.error.details[0].reason, /known: name, type, nullable, metric/);
  });

  test('table definition errors name columns one way: columns[i].field, from the schema check and the definition check alike', async () => {
    const badType = await asof.req('PUT', '/tables/t3', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'v', type: 'vectr<2>' }] });
    assert.equal(badType.status, 400);
    assert.deepEqual(badType.body.error.details.map((d: any) => d.field), ['columns[1].type']);
    const badMetric = await asof.req('PUT', '/tables/t3', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'v', type: 'vector<2>', metric: 'l3' }] });
    assert.deepEqual(badMetric.body.error.details.map((d: any) => d.field), ['body.columns[1].metric']);
  });

  test('GET changelog, GET a table, GET /healthz: an unknown query parameter is a 400 (a route without parameters takes none)', async () => {
    refusedKey(await asof.req('GET', '/tables/drivers/changelog?frm=1'), 'query.frm');
    refusedKey(await asof.req('GET', '/tables/drivers?x=1'), 'query.x');
    refusedKey(await asof.req('GET', '/healthz?_=1700000000000'), 'query._');
    assert.equal((await asof.req('GET', '/tables/drivers/changelog?from=0&limit=1')).status, 200);
  });

  test('POST /training-sets: a misspelled body key, a query beside a JSON body, an unknown upload parameter', async () => {
    const rows = [{ driver_id: 5, timestamp: '2024-01-01T00:00:00Z' }];
    refusedKey(await asof.req('POST', '/training-sets', { entities: { rows }, features: ['trip_stats:fare'], pointIntime: 'known' }), 'body.pointIntime');
    refusedKey(await asof.req('POST', '/training-sets', { entities: { rows }, features: ['trip_stats:fare'], fullfeaturenames: true }), 'body.fullfeaturenames');
    refusedKey(await asof.req('POST', '/training-sets', { entities: { rows }, features: ['trip_stats:fare'], asOf: 1 }), 'body.asOf');
    const q = await asof.req('POST', '/training-sets?pointInTime=known', { entities: { rows }, features: ['trip_stats:fare'] });
    assert.equal(q.status, 400);
    assert.deepEqual(q.body.error.details.map((d: any) => d.field), ['query.pointInTime']);
    const csv = 'driver_id,timestamp\n5,2024-01-01T00:00:00Z\n';
    const up = await asof.req('POST', '/training-sets?features=trip_stats:fare&foo=1&pointintime=known', csv, { 'content-type': 'text/csv' });
    refusedKey(up, 'query.foo');
    refusedKey(up, 'query.pointintime');
    assert.equal((await asof.req('POST', '/training-sets?features=trip_stats:fare&pointInTime=known', csv, { 'content-type': 'text/csv' })).status, 200);
  });

  test('POST /tables/{table}/import: an unknown query parameter is refused before anything is written', async () => {
    const end = await latest('drivers');
    refusedKey(await asof.req('POST', '/tables/drivers/import?opp=delete', 'driver_id,rating\n9,1\n', { 'content-type': 'text/csv' }), 'query.opp');
    assert.equal(await latest('drivers'), end);
  });

  test('PUT /feature-views/{view}: a misspelled feature or aggregate key is refused and defines nothing', async () => {
    refusedKey(await asof.req('PUT', '/feature-views/v2', { source: 'trips', entity: 'driver_id', features: [{ name: 'n', agg: { fn: 'count', window: '1h', Column: 'fare' } }] }), 'body.features[0].agg.Column');
    refusedKey(await asof.req('PUT', '/feature-views/v2', { source: 'trips', entity: 'driver_id', features: [{ name: 'f', column: 'fare', ttl: '1h' }] }), 'body.features[0].ttl');
    assert.equal((await asof.req('GET', '/feature-views/v2')).status, 404);
  });

  test("POST /get-online-features: Feast's request keys only; request_context (a Feast field asof has no use for) is accepted", async () => {
    refusedKey(await asof.req('POST', '/get-online-features', { features: ['trip_stats:fare'], entities: { driver_id: [5] }, full_feature_name: true }), 'body.full_feature_name');
    const r = await asof.req('POST', '/get-online-features', { features: ['trip_stats:fare'], entities: { driver_id: [5] }, request_context: { x: [1] } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.metadata.feature_names, ['driver_id', 'fare']);
  });
});
