/**
 * POST /tables/{table}/import: CSV, NDJSON and Parquet files into a table,
 * every row validated before any is written.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { testAsof, type TestAsof } from '../helpers.js';

const PEOPLE = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'name', type: 'string' },
    { name: 'score', type: 'float64' },
    { name: 'active', type: 'bool' },
    { name: 'born', type: 'timestamp' },
    { name: 'tags', type: 'list<string>' },
    { name: 'meta', type: 'json' },
  ],
};

describe('POST /tables/{table}/import', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    assert.equal((await asof.req('PUT', '/tables/people', PEOPLE)).status, 201);
  });
  after(() => asof.destroy());

  const rowsOf = async () => (await asof.req('GET', '/tables/people/changelog?from=0')).body.records.map((r: any) => [r.changeType, r.row]);
  const latest = async () => (await asof.req('GET', '/tables/people')).body.latestOffset;

  test('CSV: quoted cells, empty cells as null, timestamps with and without a zone (UTC), nested values as JSON', async () => {
    const csv = [
      'id,name,score,active,born,tags,meta',
      '1,"Smith, Ann",1.5,true,1990-05-01 10:00:00,"[""a"",""b""]","{""k"":1}"',
      '2,"say ""hi""",,false,1991-01-02T03:04:05+02:00,,',
      '9007199254740993,Zed,-2,1,1992-12-31,[],null',
    ].join('\r\n');
    const res = await asof.req('POST', '/tables/people/import', csv, { 'content-type': 'text/csv' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual([res.body.rows, res.body.count, res.body.firstOffset, res.body.lastOffset], [3, 3, 0, 2]);
    assert.deepEqual(await rowsOf(), [
      ['+I', { id: 1, name: 'Smith, Ann', score: 1.5, active: true, born: '1990-05-01T10:00:00.000Z', tags: ['a', 'b'], meta: { k: 1 } }],
      ['+I', { id: 2, name: 'say "hi"', score: null, active: false, born: '1991-01-02T01:04:05.000Z', tags: null, meta: null }],
      ['+I', { id: '9007199254740993', name: 'Zed', score: -2, active: true, born: '1992-12-31T00:00:00.000Z', tags: [], meta: null }],
    ]);
  });

  test('NDJSON and Parquet (upserts: an existing key is updated)', async () => {
    const nd = '{"id": 1, "name": "Ann", "born": "1990-05-01T10:00:00Z"}\n\n{"id": 3, "tags": ["x"], "meta": [1, 2]}\n';
    const r1 = await asof.req('POST', '/tables/people/import', nd, { 'content-type': 'application/x-ndjson' });
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.deepEqual([r1.body.rows, r1.body.count], [2, 3], 'an update writes -U and +U');

    const path = join(tmpdir(), `people-${process.pid}.parquet`);
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    try {
      await c.run(`COPY (SELECT 4::BIGINT AS id, 'Dee' AS name, 0.25::FLOAT AS score, true AS active, TIMESTAMPTZ '2000-01-01 00:00:00.123+00' AS born, ['p', 'q'] AS tags) TO '${path}' (FORMAT parquet)`);
      const r2 = await asof.req('POST', '/tables/people/import', await readFile(path), { 'content-type': 'application/vnd.apache.parquet' });
      assert.equal(r2.status, 200, JSON.stringify(r2.body));
    } finally {
      c.closeSync();
      db.closeSync();
      await rm(path, { force: true });
    }
    const row = async (id: number) => (await asof.req('GET', `/tables/people/rows/${id}`)).body.row;
    assert.deepEqual(await row(1), { id: 1, name: 'Ann', score: null, active: null, born: '1990-05-01T10:00:00.000Z', tags: null, meta: null });
    assert.deepEqual(await row(3), { id: 3, name: null, score: null, active: null, born: null, tags: ['x'], meta: [1, 2] });
    assert.deepEqual(await row(4), { id: 4, name: 'Dee', score: 0.25, active: true, born: '2000-01-01T00:00:00.123Z', tags: ['p', 'q'], meta: null });
  });

  test('one bad row imports nothing; the answer names the rows', async () => {
    const before = await latest();
    const csv = 'id,score\n10,1\n11,abc\n12,2\n13,\nx,3\n';
    const res = await asof.req('POST', '/tables/people/import', csv, { 'content-type': 'text/csv' });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'ASOF_INVALID_ROW');
    assert.deepEqual(res.body.error.details.map((d: any) => [d.row, d.field]), [[1, 'score'], [4, 'id']]);
    assert.equal(await latest(), before, 'nothing written');

    const unknown = await asof.req('POST', '/tables/people/import', 'id,nickname\n20,z\n', { 'content-type': 'text/csv' });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error.details[0].reason, /unknown column/);
    assert.equal(await latest(), before);

    // NDJSON: refused at the row that names the key, before the reader goes on (it kept every distinct key of the file).
    const nd = await asof.req('POST', '/tables/people/import', '{"id": 20}\n{"id": 21}\n{"id": 22, "nickname": "z"}\n', { 'content-type': 'application/x-ndjson' });
    assert.equal(nd.status, 400);
    assert.deepEqual(nd.body.error.details.map((d: any) => [d.row, d.field]), [[2, 'nickname']]);
    assert.match(nd.body.error.details[0].reason, /unknown column/);
    assert.equal(await latest(), before);
  });

  test('CSV values are stored as written or refused: dates that do not exist and non-decimal numbers are a 400 naming row and column', async () => {
    assert.equal((await asof.req('PUT', '/tables/counts', { kind: 'log', eventTime: 'at', columns: [{ name: 'n', type: 'int32' }, { name: 'x', type: 'float64' }, { name: 'at', type: 'timestamp', nullable: false }] })).status, 201);
    const countsEnd = async () => (await asof.req('GET', '/tables/counts')).body.latestOffset;
    const cases: [string, string, string][] = [
      ['at', '2021-02-30', 'Feb 30 (was stored as Mar 2)'],
      ['at', '2021-04-31T00:00:00', 'Apr 31 (was stored as May 1)'],
      ['at', '2021-01-01 24:00:00', 'hour 24 (was stored as the next day)'],
      ['n', '0x10', 'hexadecimal (was stored as 16)'],
      ['n', '0b11', 'binary (was stored as 3)'],
      ['n', '1e1', 'an exponent for an integer (was stored as 10)'],
      ['x', '0x10', 'hexadecimal for a float'],
    ];
    for (const [column, value, what] of cases) {
      const csv = `n,x,at\n1,1.5,2021-01-01\n${column === 'n' ? value : 2},${column === 'x' ? value : 2.5},${column === 'at' ? value : '2021-01-02 00:00:00'}\n`;
      const res = await asof.req('POST', '/tables/counts/import', csv, { 'content-type': 'text/csv' });
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'ASOF_INVALID_ROW');
      assert.deepEqual(res.body.error.details.map((d: any) => [d.row, d.field]), [[1, column]], what);
      assert.ok(res.body.error.details[0].reason.includes(JSON.stringify(value)), `${what}: the reason quotes the cell: ${res.body.error.details[0].reason}`);
      assert.equal(await countsEnd(), -1, `${what}: nothing written`);
    }
    const fine = await asof.req('POST', '/tables/counts/import', 'n,x,at\n-7,1e1,2024-02-29 23:59:59\n', { 'content-type': 'text/csv' });
    assert.equal(fine.status, 200, JSON.stringify(fine.body));
    assert.deepEqual((await asof.req('GET', '/tables/counts/changelog?from=0')).body.records.map((r: any) => r.row), [{ n: -7, x: 10, at: '2024-02-29T23:59:59.000Z' }]);
  });

  test('op=delete removes the listed keys', async () => {
    const res = await asof.req('POST', '/tables/people/import?op=delete', 'id\n3\n4\n', { 'content-type': 'text/csv' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.count, 2);
    assert.equal((await asof.req('GET', '/tables/people/rows/3')).status, 404);
  });

  test('unknown table 404, unknown media type 415, a broken file 400', async () => {
    assert.equal((await asof.req('POST', '/tables/nope/import', 'id\n1\n', { 'content-type': 'text/csv' })).status, 404);
    assert.equal((await asof.req('POST', '/tables/people/import', 'id\n1\n', { 'content-type': 'text/plain' })).status, 415);
    assert.equal((await asof.req('POST', '/tables/people/import', { rows: [] })).status, 415);
    const broken = await asof.req('POST', '/tables/people/import', Buffer.from('not parquet at all'), { 'content-type': 'application/vnd.apache.parquet' });
    assert.equal(broken.status, 400);
    assert.equal(broken.body.error.code, 'ASOF_INVALID_ARGUMENT');
  });

  test('an NDJSON line longer than the body limit answers 413 naming its row, writing nothing; one within it imports', async () => {
    const small = await testAsof({ maxBodyBytes: 4096 });
    try {
      await small.req('PUT', '/tables/people', PEOPLE);
      const ok = JSON.stringify({ id: 1, name: 'a'.repeat(4000) });
      const long = JSON.stringify({ id: 3, name: 'b'.repeat(10_000) });
      for (const tail of ['\n', '']) {
        // The long line ends the file without a newline too: the reader must not wait for one.
        const res = await small.req('POST', '/tables/people/import', `${ok}\n\n{"id": 2}\n${long}${tail}`, { 'content-type': 'application/x-ndjson' });
        assert.equal(res.status, 413, JSON.stringify(res.body));
        assert.equal(res.body.error.code, 'ASOF_PAYLOAD_TOO_LARGE');
        assert.deepEqual(res.body.error.details, { row: 2, line: 4, maxLineBytes: 4096 });
        assert.match(res.body.error.message, /^row 2: NDJSON line 4 is longer than 4096 bytes/);
        assert.equal((await small.req('GET', '/tables/people')).body.latestOffset, -1, 'nothing written');
      }
      const res = await small.req('POST', '/tables/people/import', `${ok}\r\n{"id": 2}`, { 'content-type': 'application/x-ndjson' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.rows, 2);
    } finally {
      await small.destroy();
    }
  });

  test('the upload limit answers 413', async () => {
    const small = await testAsof({ maxUploadBytes: 100 });
    try {
      await small.req('PUT', '/tables/people', PEOPLE);
      const res = await small.req('POST', '/tables/people/import', 'id\n' + '1\n'.repeat(100), { 'content-type': 'text/csv' });
      assert.equal(res.status, 413);
      assert.equal(res.body.error.code, 'ASOF_PAYLOAD_TOO_LARGE');
    } finally {
      await small.destroy();
    }
  });
});
