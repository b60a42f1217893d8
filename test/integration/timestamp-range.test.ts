/**
 * Timestamps are the instants of the years 0001 to 9999 in UTC, which RFC
 * 3339, protobuf Timestamps and Python's datetime all hold: each end is stored and returned in a form asof reads back, and
 * one millisecond beyond is refused on every path a time comes in by (REST
 * JSON, NDJSON and Arrow bodies, an ingest thread, gRPC WriteRows, CSV and
 * Parquet imports, request times, training-set entity rows, Feast keys),
 * naming its row and field and why, with nothing written.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as A from 'apache-arrow';
import { DuckDBInstance } from '@duckdb/node-api';
import { asofError, call, grpcAsof, stream, type GrpcAsof } from './grpc-helpers.js';
import { offThreadBodies } from '../../src/metrics.js';

const FIRST = '0001-01-01T00:00:00.000Z';
const LAST = '9999-12-31T23:59:59.999Z';
const FIRST_MS = -62_135_596_800_000;
const LAST_MS = 253_402_300_799_999;
const AFTER = /after 9999-12-31T23:59:59\.999Z/;
const BEFORE = /before 0001-01-01T00:00:00\.000Z/;

const EV = {
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'n', type: 'float64' },
  ],
};
/** Keyed by a timestamp: Feast entity keys of that type. */
const AT = { kind: 'pk', primaryKey: ['t'], columns: [{ name: 't', type: 'timestamp', nullable: false }, { name: 'n', type: 'float64' }] };
const ITEMS = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'emb', type: 'vector<2>', metric: 'l2' }] };

describe('timestamps: the years 0001 to 9999', () => {
  let asof: GrpcAsof;
  before(async () => {
    asof = await grpcAsof({ ingestThreads: 1 });
    for (const [name, def] of [['ev', EV], ['at', AT], ['items', ITEMS]] as const) assert.equal((await asof.req('PUT', `/tables/${name}`, def)).status, 201);
    assert.equal((await asof.req('PUT', '/feature-views/e', { source: 'ev', entity: 'id', features: [{ name: 'n', column: 'n' }] })).status, 201);
    assert.equal((await asof.req('PUT', '/feature-views/bt', { source: 'at', entity: 't', features: [{ name: 'n', column: 'n' }] })).status, 201);
    assert.equal((await asof.req('POST', '/tables/items/rows', { rows: [{ id: 'a', emb: [1, 0] }] })).status, 200);
  });
  after(() => asof.destroy());

  const latest = async (t = 'ev'): Promise<number> => (await asof.req('GET', `/tables/${t}`)).body.latestOffset;
  /** A REST answer that must be a 400 with `code` whose first detail names `field` (and `row`, when given) and matches `why`. */
  const refused = (r: { status: number; body: any }, code: string, field: string, why: RegExp, row?: number): void => {
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, code, JSON.stringify(r.body));
    const d = r.body.error.details[0];
    assert.equal(d.field, field, JSON.stringify(r.body));
    if (row !== undefined) assert.equal(d.row, row, JSON.stringify(r.body));
    assert.match(d.reason, why);
  };

  test('each end is stored and returned as RFC 3339, and what is returned writes back as the same instant', async () => {
    const from = (await latest()) + 1;
    const sent = [FIRST_MS, '0001-01-01T01:00:00+01:00', LAST, '9999-12-31T22:59:59.999-01:00'];
    const w = await asof.req('POST', '/tables/ev/rows', { rows: sent.map((ts, id) => ({ id, ts })) });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    const page = await asof.req('GET', `/tables/ev/changelog?from=${from}`);
    const returned = page.body.records.map((r: any) => r.row.ts);
    assert.deepEqual(returned, [FIRST, FIRST, LAST, LAST]);
    const back = await asof.req('POST', '/tables/ev/rows', { rows: returned.map((ts: string, id: number) => ({ id, ts })) });
    assert.equal(back.status, 200, JSON.stringify(back.body));
    const again = await asof.req('GET', `/tables/ev/changelog?from=${from + sent.length}`);
    assert.deepEqual(again.body.records.map((r: any) => r.row.ts), returned);
  });

  test('REST JSON, NDJSON and Arrow: a millisecond beyond either end is a 400 naming the row, the column and why; nothing is written', async () => {
    const end = await latest();
    const beyond: [unknown, RegExp][] = [
      [LAST_MS + 1, AFTER],
      [FIRST_MS - 1, BEFORE],
      ['0001-01-01T00:00:00+01:00', BEFORE],
      // Year 0000: RFC 3339 writes it, but a protobuf Timestamp (gRPC, Feast) and Python's datetime cannot hold it.
      ['0000-06-15T00:00:00Z', BEFORE],
      [-62_150_000_000_000, BEFORE],
      ['9999-12-31T23:59:59.999-00:01', AFTER],
      ['253402300800000', AFTER],
    ];
    for (const [ts, why] of beyond) {
      const rows = [{ id: 1, ts: 0 }, { id: 2, ts }];
      refused(await asof.req('POST', '/tables/ev/rows', { rows }), 'ASOF_INVALID_ROW', 'ts', why, 1);
      const nd = rows.map((r) => JSON.stringify(r)).join('\n');
      refused(await asof.req('POST', '/tables/ev/rows', nd, { 'content-type': 'application/x-ndjson' }), 'ASOF_INVALID_ROW', 'ts', why, 1);
    }
    const arrow = (ts: A.Vector) => Buffer.from(A.tableToIPC(new A.Table({ id: A.vectorFromArray([1n, 2n], new A.Int64()), ts }), 'stream'));
    const ms = A.vectorFromArray([0, LAST_MS + 1], new A.TimestampMillisecond());
    const us = A.makeVector({ type: new A.TimestampMicrosecond(), data: BigInt64Array.of(0n, BigInt(FIRST_MS - 1) * 1000n) } as never) as A.Vector;
    for (const [v, why] of [[ms, AFTER], [us, BEFORE]] as const) {
      refused(await asof.req('POST', '/tables/ev/rows', arrow(v), { 'content-type': 'application/vnd.apache.arrow.stream' }), 'ASOF_INVALID_ROW', 'ts', why, 1);
    }
    assert.equal(await latest(), end);
  });

  test('a large body parsed on an ingest thread: the ends are stored there, a row beyond is the same 400 as a small body gives', async () => {
    const rows = Array.from({ length: 600 }, (_, i) => ({ id: i, ts: i % 2 ? LAST : FIRST_MS, n: i / 3 }));
    const before = offThreadBodies.parsed;
    const good = await asof.req('POST', '/tables/ev/rows', { rows });
    assert.equal(good.status, 200, JSON.stringify(good.body));
    assert.equal(offThreadBodies.parsed - before, 1, 'parsed on the thread');
    const stored = await asof.req('GET', `/tables/ev/changelog?from=${good.body.firstOffset}&limit=2`);
    assert.deepEqual(stored.body.records.map((r: any) => r.row.ts), [FIRST, LAST]);

    const end = await latest();
    rows[417] = { ...rows[417], ts: LAST_MS + 1 };
    const big = await asof.req('POST', '/tables/ev/rows', { rows });
    const small = await asof.req('POST', '/tables/ev/rows', { rows: rows.slice(417, 418) });
    refused(big, 'ASOF_INVALID_ROW', 'ts', AFTER, 417);
    assert.deepEqual(big.body.error.details[0].reason, small.body.error.details[0].reason);
    assert.equal(await latest(), end);
  });

  test('gRPC WriteRows: a Timestamp beyond 9999 (typed rows and ndjson) is INVALID_ARGUMENT naming the row and column', async () => {
    const end = await latest();
    const forms = [
      { rows: [{ columns: { id: { int64_value: '1' }, ts: { timestamp_value: { seconds: 0 } } } }, { columns: { id: { int64_value: '2' }, ts: { timestamp_value: { seconds: String(Math.floor(LAST_MS / 1000) + 1), nanos: 0 } } } }] },
      { ndjson: Buffer.from(`{"id":1,"ts":0}\n{"id":2,"ts":${LAST_MS + 1}}\n`) },
    ];
    for (const form of forms) {
      const { err } = await stream(asof.ingest, 'WriteRows', [{ table: 'ev', ...form }]);
      assert.ok(err, 'refused');
      const e = asofError(err);
      assert.equal(e.code, 'ASOF_INVALID_ROW');
      assert.deepEqual([e.details.details[0].row, e.details.details[0].field], [1, 'ts']);
      assert.match(e.details.details[0].reason, AFTER);
    }
    assert.equal(await latest(), end);
  });

  test('CSV and Parquet imports: a time beyond either end is a 400 naming the row and column; nothing is imported', async () => {
    const end = await latest();
    const csv = `id,ts\n1,2020-01-01T00:00:00Z\n2,${LAST_MS + 1}\n`;
    refused(await asof.req('POST', '/tables/ev/import', csv, { 'content-type': 'text/csv' }), 'ASOF_INVALID_ROW', 'ts', AFTER, 1);
    const path = join(tmpdir(), `timestamp-range-${process.pid}.parquet`);
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    try {
      await c.run(`COPY (SELECT * FROM (VALUES (1::BIGINT, TIMESTAMPTZ '2020-01-01 00:00:00+00'), (2::BIGINT, TIMESTAMPTZ '0001-01-01 00:00:00+01')) v(id, ts)) TO '${path}' (FORMAT parquet)`);
      refused(await asof.req('POST', '/tables/ev/import', await readFile(path), { 'content-type': 'application/vnd.apache.parquet' }), 'ASOF_INVALID_ROW', 'ts', BEFORE, 1);
    } finally {
      c.closeSync();
      db.closeSync();
      await rm(path, { force: true });
    }
    assert.equal(await latest(), end);
  });

  test('Parquet (imports and entity rows): a time finer than a millisecond rounds down as on every other path, and ±infinity is refused, not read as null', async () => {
    const path = join(tmpdir(), `timestamp-finer-${process.pid}.parquet`);
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    const write = (values: string) => c.run(`COPY (SELECT * FROM (VALUES ${values}) v(id, ts)) TO '${path}' (FORMAT parquet)`);
    const parquet = { 'content-type': 'application/vnd.apache.parquet' };
    try {
      const from = (await latest()) + 1;
      await write(`(1::BIGINT, TIMESTAMPTZ '1969-12-31 23:59:59.9995+00'), (2::BIGINT, TIMESTAMPTZ '2020-01-01 00:00:00.0015+00'), (3::BIGINT, TIMESTAMPTZ '9999-12-31 23:59:59.999999+00')`);
      const ok = await asof.req('POST', '/tables/ev/import', await readFile(path), parquet);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const json = await asof.req('POST', '/tables/ev/rows', { rows: [{ id: 1, ts: '1969-12-31T23:59:59.9995Z' }] });
      const rows = (await asof.req('GET', `/tables/ev/changelog?from=${from}`)).body.records.map((r: any) => r.row.ts);
      assert.deepEqual(rows, ['1969-12-31T23:59:59.999Z', '2020-01-01T00:00:00.001Z', LAST, '1969-12-31T23:59:59.999Z'], 'Parquet, then the same time as JSON');
      assert.equal(json.status, 200);

      for (const [inf, why] of [['infinity', /got (string )?"infinity"/], ['-infinity', /got (string )?"-infinity"/]] as const) {
        const end = await latest();
        await write(`(1::BIGINT, TIMESTAMPTZ '2020-01-01 00:00:00+00'), (2::BIGINT, TIMESTAMPTZ '${inf}')`);
        refused(await asof.req('POST', '/tables/ev/import', await readFile(path), parquet), 'ASOF_INVALID_ROW', 'ts', why, 1);
        assert.equal(await latest(), end);
        await c.run(`COPY (SELECT * FROM (VALUES (1::BIGINT, TIMESTAMPTZ '2020-01-01 00:00:00+00'), (1::BIGINT, TIMESTAMPTZ '${inf}')) v(id, timestamp)) TO '${path}' (FORMAT parquet)`);
        refused(await asof.req('POST', '/training-sets?features=e:n', await readFile(path), parquet), 'ASOF_INVALID_ARGUMENT', 'timestamp', why, 1);
      }
    } finally {
      c.closeSync();
      db.closeSync();
      await rm(path, { force: true });
    }
  });

  test('request times: decidedAt, an audit time, a vector search asOf, training-set entity rows and a Feast timestamp key are refused beyond either end, saying why', async () => {
    refused(await asof.req('POST', '/decisions', { id: 'beyond-9999', entity: 1, view: 'e', outcome: 'ok', decidedAt: LAST_MS + 1 }), 'ASOF_INVALID_ARGUMENT', 'decidedAt', AFTER);
    assert.equal((await asof.req('GET', '/audit/decisions/beyond-9999')).status, 404, 'not recorded');
    refused(await asof.req('GET', `/audit/entities/1?view=e&at=${LAST_MS + 1}`), 'ASOF_INVALID_ARGUMENT', 'query.at', AFTER);
    refused(await asof.req('GET', `/audit/decisions?from=${encodeURIComponent('0001-01-01T00:00:00+01:00')}`), 'ASOF_INVALID_ARGUMENT', 'query.from', BEFORE);
    refused(await asof.req('POST', '/vectors/search', { table: 'items', vector: [1, 0], k: 1, asOf: FIRST_MS - 1 }), 'ASOF_INVALID_ARGUMENT', 'asOf', BEFORE);
    refused(await asof.req('POST', '/training-sets', { entities: { rows: [{ id: 1, timestamp: 0 }, { id: 1, timestamp: LAST_MS + 1 }] }, features: ['e:n'] }), 'ASOF_INVALID_ARGUMENT', 'timestamp', AFTER, 1);
    refused(await asof.req('POST', '/training-sets?features=e:n', `id,timestamp\n1,0\n1,${LAST_MS + 1}\n`, { 'content-type': 'text/csv' }), 'ASOF_INVALID_ARGUMENT', 'timestamp', AFTER, 1);

    // gRPC: an audit time and a Feast unix_timestamp_val key beyond 9999.
    const audit = await call(asof.audit, 'GetEntityState', { entity: '1', view: 'e', at: { seconds: String(Math.floor(LAST_MS / 1000) + 1) } });
    assert.equal(asofError(audit.err!).code, 'ASOF_INVALID_ARGUMENT');
    assert.match(asofError(audit.err!).details[0].reason, AFTER);
    const feast = await call(asof.feast, 'GetOnlineFeatures', { features: { val: ['bt:n'] }, entities: { t: { val: [{ unix_timestamp_val: String(Math.floor(LAST_MS / 1000) + 1) }] } } });
    assert.equal(asofError(feast.err!).code, 'ASOF_INVALID_ARGUMENT');
    assert.match(asofError(feast.err!).message, AFTER);
    const feastRest = await asof.req('POST', '/get-online-features', { features: ['bt:n'], entities: { t: [FIRST_MS - 1] } });
    assert.equal(feastRest.status, 400, JSON.stringify(feastRest.body));
    assert.match(feastRest.body.error.message, BEFORE);
  });
});
