/**
 * The Feast quickstart, reproduced: import Feast's driver_stats.parquet,
 * define `driver_hourly_stats` (ttl 1 day), and ask for drivers 1001, 1002
 * and 1003 at Feast's three moments. The expected values are computed by
 * DuckDB straight from the Parquet file, not by asof.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { testAsof, type TestAsof } from '../helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/feast-driver-stats/driver_stats.parquet', import.meta.url));
const FEATURES = ['conv_rate', 'acc_rate', 'avg_daily_trips'];
// Feast's quickstart entity dataframe (times are UTC).
const ENTITY_DF = [
  { driver_id: 1001, event_timestamp: '2021-04-12T10:59:42Z', label_driver_reported_satisfaction: 1, val_to_add: 1, val_to_add_2: 10 },
  { driver_id: 1002, event_timestamp: '2021-04-12T08:12:10Z', label_driver_reported_satisfaction: 5, val_to_add: 2, val_to_add_2: 20 },
  { driver_id: 1003, event_timestamp: '2021-04-12T16:40:26Z', label_driver_reported_satisfaction: 3, val_to_add: 3, val_to_add_2: 30 },
];

describe('the Feast quickstart (driver_stats.parquet)', () => {
  let asof: TestAsof;
  let db: DuckDBInstance;
  let duck: DuckDBConnection;
  const file = `read_parquet('${FIXTURE.replaceAll("'", "''")}', file_row_number = true)`;

  before(async () => {
    asof = await testAsof();
    db = await DuckDBInstance.create(':memory:');
    duck = await db.connect();
  });
  after(async () => {
    duck?.closeSync();
    db?.closeSync();
    await asof.destroy();
  });

  test('the file imports through POST /tables/{table}/import with its timestamps intact', async () => {
    const put = await asof.req('PUT', '/tables/driver_stats', {
      kind: 'log',
      eventTime: 'event_timestamp',
      columns: [
        { name: 'event_timestamp', type: 'timestamp', nullable: false },
        { name: 'driver_id', type: 'int64', nullable: false },
        { name: 'conv_rate', type: 'float32' },
        { name: 'acc_rate', type: 'float32' },
        { name: 'avg_daily_trips', type: 'int32' },
        { name: 'created', type: 'timestamp' },
      ],
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const imp = await asof.req('POST', '/tables/driver_stats/import', readFileSync(FIXTURE), { 'content-type': 'application/vnd.apache.parquet' });
    assert.equal(imp.status, 200, JSON.stringify(imp.body));
    assert.deepEqual([imp.body.rows, imp.body.count, imp.body.firstOffset, imp.body.lastOffset], [1807, 1807, 0, 1806]);

    const log = await asof.req('GET', '/tables/driver_stats/changelog?from=0&limit=10000');
    const stored = log.body.records.map((r: any) => r.row);
    const want = (await duck.runAndReadAll(`SELECT strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ') AS event_timestamp, driver_id, conv_rate, acc_rate, avg_daily_trips, strftime(created, '%Y-%m-%dT%H:%M:%S.%gZ') AS created FROM ${file} ORDER BY file_row_number`)).getRowObjectsJS();
    assert.equal(stored.length, want.length);
    stored.forEach((s: any, i: number) => assert.deepEqual(s, { ...want[i], driver_id: Number(want[i].driver_id) }, `row ${i}`));
  });

  test('driver_hourly_stats at Feast\'s three moments equals DuckDB over the file', async () => {
    await asof.services.registry.defineView('driver_hourly_stats', { source: 'driver_stats', entity: 'driver_id', ttl: '1d', features: FEATURES.map((f) => ({ name: f, column: f })) });
    const expected: Record<string, unknown>[] = [];
    for (const e of ENTITY_DF) {
      const t = Date.parse(e.event_timestamp);
      // The latest row at or before t within one day; equal times go to the later row in the file (import keeps file order).
      const rows = (await duck.runAndReadAll(`SELECT conv_rate, acc_rate, avg_daily_trips FROM ${file} WHERE driver_id = ${e.driver_id} AND epoch_ms(event_timestamp) <= ${t} AND epoch_ms(event_timestamp) >= ${t - 86_400_000} ORDER BY event_timestamp DESC, file_row_number DESC LIMIT 1`)).getRowObjectsJS();
      expected.push({ ...e, event_timestamp: new Date(t).toISOString(), ...(rows[0] ?? { conv_rate: null, acc_rate: null, avg_daily_trips: null }) });
    }
    assert.ok(expected.every((x) => x.conv_rate !== null), 'each driver has a value within the day');

    const res = await asof.req('POST', '/training-sets', { entities: { rows: ENTITY_DF }, features: FEATURES.map((f) => `driver_hourly_stats:${f}`) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.rows, expected);
    assert.deepEqual(Object.keys(res.body.rows[0]), [...Object.keys(ENTITY_DF[0]), ...FEATURES], 'entity row columns first, then the features');

    // The same entity rows uploaded as Parquet (as a pandas user would write them), answered as Parquet.
    const entities = join(tmpdir(), `feast-entities-${process.pid}.parquet`);
    const out = join(tmpdir(), `feast-out-${process.pid}.parquet`);
    try {
      const values = ENTITY_DF.map((e) => `(${e.driver_id}, TIMESTAMPTZ '${e.event_timestamp}', ${e.label_driver_reported_satisfaction}, ${e.val_to_add}, ${e.val_to_add_2})`).join(', ');
      await duck.run(`COPY (SELECT * FROM (VALUES ${values}) v(driver_id, event_timestamp, label_driver_reported_satisfaction, val_to_add, val_to_add_2)) TO '${entities}' (FORMAT parquet)`);
      const url = `/training-sets?features=${FEATURES.map((f) => `driver_hourly_stats:${f}`).join(',')}&format=parquet`;
      const up = await asof.http.inject({ method: 'POST', url, payload: readFileSync(entities), headers: { 'content-type': 'application/vnd.apache.parquet' } });
      assert.equal(up.statusCode, 200, up.body.slice(0, 300));
      assert.equal(up.headers['content-type'], 'application/vnd.apache.parquet');
      await writeFile(out, up.rawPayload);
      const back = (await duck.runAndReadAll(`SELECT driver_id, strftime(event_timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ') AS event_timestamp, label_driver_reported_satisfaction, val_to_add, val_to_add_2, conv_rate, acc_rate, avg_daily_trips FROM read_parquet('${out}')`)).getRowObjectsJS();
      assert.deepEqual(
        back.map((r) => ({ ...r, driver_id: Number(r.driver_id), label_driver_reported_satisfaction: Number(r.label_driver_reported_satisfaction), val_to_add: Number(r.val_to_add), val_to_add_2: Number(r.val_to_add_2) })),
        expected,
      );
    } finally {
      await rm(entities, { force: true });
      await rm(out, { force: true });
    }
  });
});
