/**
 * POST /training-sets over REST: where entity rows come from (inline, a
 * table, CSV / NDJSON / Parquet uploads), output formats, column naming, and
 * the 400s a user meets. Expected values here are written out by hand from
 * the few rows the test writes.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as A from 'apache-arrow';
import { DuckDBInstance } from '@duckdb/node-api';
import { testAsof, type TestAsof } from '../helpers.js';

const H = (h: number, m = 0) => `2024-03-01T${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:00.000Z`;

describe('POST /training-sets', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    const { engine, registry, ingest } = asof.services;
    await engine.defineTable('rides', {
      kind: 'log',
      eventTime: 'ts',
      columns: [
        { name: 'driver', type: 'string', nullable: false },
        { name: 'ts', type: 'timestamp', nullable: false },
        { name: 'fare', type: 'float64', nullable: true },
        { name: 'city', type: 'string', nullable: true },
      ],
    });
    await engine.defineTable('drivers', {
      kind: 'pk',
      primaryKey: ['driver'],
      eventTime: 'since',
      columns: [
        { name: 'driver', type: 'string', nullable: false },
        { name: 'city', type: 'string', nullable: true },
        { name: 'since', type: 'timestamp', nullable: true },
      ],
    });
    await ingest.write('rides', [
      { driver: '007', ts: H(9), fare: 10, city: 'Lisbon' },
      { driver: '007', ts: H(11), fare: 30, city: 'Porto' },
      { driver: '7', ts: H(9, 30), fare: 99, city: 'Faro' },
    ]);
    await ingest.write('drivers', [{ driver: '007', city: 'Braga', since: H(0) }]);
    await registry.defineView('ride_stats', { source: 'rides', entity: 'driver', features: [{ name: 'fare', column: 'fare' }, { name: 'city', column: 'city' }, { name: 'rides_2h', agg: { fn: 'count', window: '2h' } }] });
    await registry.defineView('driver_profile', { source: 'drivers', entity: 'driver', features: [{ name: 'city', column: 'city' }] });
    await registry.defineService('model_v1', { features: ['ride_stats:fare', 'ride_stats:rides_2h'] });
    await engine.defineTable('labels', {
      kind: 'log',
      eventTime: 'at',
      columns: [
        { name: 'driver', type: 'string', nullable: false },
        { name: 'at', type: 'timestamp', nullable: false },
        { name: 'churned', type: 'bool', nullable: true },
      ],
    });
    await ingest.write('labels', [
      { driver: '007', at: H(10), churned: false },
      { driver: '007', at: H(12), churned: true },
    ]);
  });
  after(() => asof.destroy());

  const ROWS = [
    { driver: '007', timestamp: H(10), churned: false },
    { driver: '007', timestamp: H(12), churned: true },
    { driver: '7', timestamp: H(8), churned: null },
  ];
  const WANT = [
    { driver: '007', timestamp: H(10), churned: false, fare: 10, rides_2h: 1 },
    { driver: '007', timestamp: H(12), churned: true, fare: 30, rides_2h: 1 },
    { driver: '7', timestamp: H(8), churned: null, fare: null, rides_2h: 0 },
  ];

  test('inline rows: entity row columns first, then features; label columns pass through', async () => {
    const res = await asof.req('POST', '/training-sets', { entities: { rows: ROWS }, features: ['ride_stats:fare', 'ride_stats:rides_2h'] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.rows, WANT);
    assert.deepEqual(res.body.token, { rides: 2 });
  });

  test('a service instead of features; event_timestamp (Feast\'s name) as the time column; epoch ms accepted', async () => {
    const rows = ROWS.map(({ timestamp, ...r }) => ({ ...r, event_timestamp: Date.parse(timestamp) }));
    const res = await asof.req('POST', '/training-sets', { entities: { rows }, service: 'model_v1' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.rows, WANT.map(({ timestamp, ...r }) => ({ driver: r.driver, event_timestamp: timestamp, churned: r.churned, fare: r.fare, rides_2h: r.rides_2h })));
  });

  test('entity rows from a labels table (its eventTime is the time column)', async () => {
    const res = await asof.req('POST', '/training-sets', { entities: { table: 'labels' }, features: ['ride_stats:fare'] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.rows, [
      { driver: '007', at: H(10), churned: false, fare: 10 },
      { driver: '007', at: H(12), churned: true, fare: 30 },
    ]);
    assert.deepEqual(res.body.token, { labels: 1, rides: 2 });
  });

  test('two features named alike need fullFeatureNames; with it they are view__feature', async () => {
    const features = ['ride_stats:city', 'driver_profile:city'];
    const clash = await asof.req('POST', '/training-sets', { entities: { rows: ROWS.slice(0, 1) }, features });
    assert.equal(clash.status, 400);
    assert.equal(clash.body.error.code, 'ASOF_INVALID_ARGUMENT');
    assert.equal(clash.body.error.details[0].field, 'fullFeatureNames');
    const ok = await asof.req('POST', '/training-sets', { entities: { rows: ROWS.slice(0, 1) }, features, fullFeatureNames: true });
    assert.deepEqual(ok.body.rows, [{ driver: '007', timestamp: H(10), churned: false, ride_stats__city: 'Lisbon', driver_profile__city: 'Braga' }]);
  });

  test('uploads: CSV (keys stay text: "007" is not 7), NDJSON and Parquet give the same answer as inline rows', async () => {
    const features = 'ride_stats:fare,ride_stats:rides_2h';
    const csv = 'driver,timestamp,churned\n007,2024-03-01T10:00:00Z,false\n007,2024-03-01 12:00:00,true\n7,2024-03-01T08:00:00Z,\n';
    const r1 = await asof.req('POST', `/training-sets?features=${features}`, csv, { 'content-type': 'text/csv' });
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.deepEqual(r1.body.rows, WANT);

    const ndjson = ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n';
    const r2 = await asof.req('POST', `/training-sets?features=${features}`, ndjson, { 'content-type': 'application/x-ndjson' });
    assert.deepEqual(r2.body.rows, WANT, JSON.stringify(r2.body));

    const path = join(tmpdir(), `labels-${process.pid}.parquet`);
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    try {
      await c.run(`COPY (SELECT * FROM (VALUES ('007', TIMESTAMPTZ '${H(10)}', false), ('007', TIMESTAMPTZ '${H(12)}', true), ('7', TIMESTAMPTZ '${H(8)}', NULL)) v(driver, "timestamp", churned)) TO '${path}' (FORMAT parquet)`);
      const r3 = await asof.req('POST', `/training-sets?features=${features}`, await readFile(path), { 'content-type': 'application/vnd.apache.parquet' });
      assert.equal(r3.status, 200, JSON.stringify(r3.body));
      assert.deepEqual(r3.body.rows, WANT);
      const r4 = await asof.req('POST', `/training-sets?features=${features}&fileFormat=parquet`, await readFile(path), { 'content-type': 'application/octet-stream' });
      assert.deepEqual(r4.body.rows, WANT);
    } finally {
      c.closeSync();
      db.closeSync();
      await rm(path, { force: true });
    }
  });

  test('an NDJSON entity file with a line longer than ASOF_MAX_BODY_BYTES is a 413 naming its row', async () => {
    const small = await testAsof({ maxBodyBytes: 4096 });
    try {
      await small.services.engine.defineTable('rides', { kind: 'log', eventTime: 'ts', columns: [{ name: 'driver', type: 'string', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }] });
      await small.services.registry.defineView('ride_stats', { source: 'rides', entity: 'driver', features: [{ name: 'rides_2h', agg: { fn: 'count', window: '2h' } }] });
      const ndjson = `${JSON.stringify(ROWS[0])}\n${JSON.stringify({ ...ROWS[1], note: 'x'.repeat(5000) })}\n`;
      const r = await small.req('POST', '/training-sets?features=ride_stats:rides_2h', ndjson, { 'content-type': 'application/x-ndjson' });
      assert.equal(r.status, 413, JSON.stringify(r.body));
      assert.deepEqual(r.body.error.details, { row: 1, line: 2, maxLineBytes: 4096 });
    } finally {
      await small.destroy();
    }
  });

  test('formats: csv, ndjson, arrow and parquet carry the same rows', async () => {
    const body = (format: string) => ({ entities: { rows: ROWS }, features: ['ride_stats:fare', 'ride_stats:rides_2h'], format });
    const csv = await asof.http.inject({ method: 'POST', url: '/training-sets', payload: body('csv') });
    assert.equal(csv.headers['content-type'], 'text/csv; charset=utf-8');
    assert.equal(csv.body, `driver,timestamp,churned,fare,rides_2h\n007,${H(10)},false,10,1\n007,${H(12)},true,30,1\n7,${H(8)},,,0\n`);

    const nd = await asof.http.inject({ method: 'POST', url: '/training-sets', payload: body('ndjson') });
    assert.deepEqual(nd.body.trim().split('\n').map((l) => JSON.parse(l)), WANT);

    const arrow = await asof.http.inject({ method: 'POST', url: '/training-sets', payload: body('arrow') });
    assert.equal(arrow.headers['content-type'], 'application/vnd.apache.arrow.stream');
    const table = A.tableFromIPC(arrow.rawPayload);
    assert.deepEqual(table.schema.fields.map((f) => `${f.name}:${f.type}`), ['driver:Utf8', 'timestamp:Timestamp<MILLISECOND, UTC>', 'churned:Bool', 'fare:Float64', 'rides_2h:Int64']);
    assert.deepEqual(
      table.toArray().map((r) => ({ driver: r.driver, timestamp: new Date(Number(r.timestamp)).toISOString(), churned: r.churned, fare: r.fare, rides_2h: r.rides_2h === null ? null : Number(r.rides_2h) })),
      WANT,
    );

    const pq = await asof.http.inject({ method: 'POST', url: '/training-sets', payload: body('parquet') });
    const path = join(tmpdir(), `out-${process.pid}.parquet`);
    await writeFile(path, pq.rawPayload);
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    try {
      const desc = (await c.runAndReadAll(`DESCRIBE SELECT * FROM '${path}'`)).getRowObjectsJS().map((r) => `${r.column_name}:${r.column_type}`);
      assert.deepEqual(desc, ['driver:VARCHAR', 'timestamp:TIMESTAMP WITH TIME ZONE', 'churned:BOOLEAN', 'fare:DOUBLE', 'rides_2h:BIGINT']);
      const rows = (await c.runAndReadAll(`SELECT driver, strftime("timestamp" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ') AS "timestamp", churned, fare, rides_2h::INTEGER AS rides_2h FROM '${path}'`)).getRowObjectsJS();
      assert.deepEqual(rows, WANT);
    } finally {
      c.closeSync();
      db.closeSync();
      await rm(path, { force: true });
    }
  });

  test('an empty file of entity rows gives an empty training set; an empty inline list is a 400', async () => {
    const res = await asof.req('POST', '/training-sets', { entities: { rows: [] }, features: ['ride_stats:fare'] });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.details[0].field, 'entities.rows');
    const csv = await asof.req('POST', '/training-sets?features=ride_stats:fare', 'driver,timestamp\n', { 'content-type': 'text/csv' });
    assert.equal(csv.status, 200, JSON.stringify(csv.body));
    assert.deepEqual(csv.body.rows, []);
  });

  test('entity rows without the entity column: the same 400 naming it, whether they come inline, as CSV or as NDJSON', async () => {
    const want = { code: 'ASOF_INVALID_ARGUMENT', message: 'the entity rows have no column "driver", the entity of feature view "ride_stats"', field: 'entities' };
    const answers = [
      await asof.req('POST', '/training-sets', { entities: { rows: [{ u: 'a', timestamp: H(1), label: 1 }] }, features: ['ride_stats:fare'] }),
      await asof.req('POST', '/training-sets?features=ride_stats:fare', `u,timestamp,label\na,${H(1)},1\n`, { 'content-type': 'text/csv' }),
      await asof.req('POST', '/training-sets?features=ride_stats:fare', `{"u":"a","timestamp":"${H(1)}","label":1}\n`, { 'content-type': 'application/x-ndjson' }),
    ];
    for (const r of answers) {
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.deepEqual({ code: r.body.error.code, message: r.body.error.message, field: r.body.error.details[0].field }, want);
    }
  });

  test('mistakes answer 400 (or 404) naming what is wrong, and write nothing', async () => {
    const post = (b: unknown) => asof.req('POST', '/training-sets', b);
    const cases: [unknown, number, string, RegExp][] = [
      [{ entities: { rows: [{ driver: '007' }] }, features: ['ride_stats:fare'] }, 400, 'entities', /timestamp/],
      [{ entities: { rows: [{ timestamp: H(1) }] }, features: ['ride_stats:fare'] }, 400, 'entities', /no column "driver"/],
      [{ entities: { rows: [{ driver: '007', timestamp: 'yesterday' }] }, features: ['ride_stats:fare'] }, 400, 'timestamp', /entity row 0/],
      [{ entities: { rows: [{ driver: '007', timestamp: H(1), event_timestamp: H(1) }] }, features: ['ride_stats:fare'] }, 400, 'entities', /both/],
      [{ entities: { rows: [{ driver: '007', timestamp: H(1), fare: 1 }] }, features: ['ride_stats:fare'] }, 400, 'features', /already a column/],
      [{ entities: { rows: ROWS }, features: ['ride_stats:fare', 'ride_stats:fare'] }, 400, 'features', /twice/],
      [{ entities: { rows: ROWS }, features: ['ride_stats'] }, 400, 'features', /view:feature/],
      [{ entities: { rows: ROWS } }, 400, 'features', /exactly one/],
      [{ entities: { rows: ROWS }, features: ['ride_stats:fare'], format: 'xlsx' }, 400, 'body.format', /./],
      [{ entities: { rows: ROWS }, features: ['ride_stats:fare'], pointInTime: 'soon' }, 400, 'body.pointInTime', /./],
    ];
    for (const [body, status, field, message] of cases) {
      const res = await post(body);
      assert.equal(res.status, status, JSON.stringify(body));
      assert.ok(res.body.error.details.some((d: { field: string }) => d.field === field), `${JSON.stringify(body)} → ${JSON.stringify(res.body.error)}`);
      assert.match(res.body.error.message, message);
    }
    assert.equal((await post({ entities: { rows: ROWS }, features: ['nope:fare'] })).body.error.code, 'ASOF_FEATURE_VIEW_NOT_FOUND');
    assert.equal((await post({ entities: { table: 'nope' }, features: ['ride_stats:fare'] })).body.error.code, 'ASOF_TABLE_NOT_FOUND');
    const media = await asof.req('POST', '/training-sets?features=ride_stats:fare', 'x', { 'content-type': 'text/plain' });
    assert.equal(media.status, 415);
    const badCsv = await asof.req('POST', '/training-sets?features=ride_stats:fare', 'driver,timestamp\n007,not a time\n', { 'content-type': 'text/csv' });
    assert.equal(badCsv.status, 400);
    assert.equal(badCsv.body.error.details[0].row, 0);
    // An inline answer's file is removed when its stream closes, which may be just after the answer arrives (seen at load 40): wait for it, up to a deadline.
    const { readdir } = await import('node:fs/promises');
    let scratch = await readdir(join(asof.dataDir, 'training-sets', 'scratch'));
    for (const deadline = Date.now() + 10_000; scratch.length && Date.now() < deadline; scratch = await readdir(join(asof.dataDir, 'training-sets', 'scratch'))) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(scratch, [], 'uploads and inline answers leave nothing behind');
  });
});
