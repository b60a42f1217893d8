/**
 * A number inside a json value that a float64 does not hold as sent
 * (12345678901234567890, stored as 12345678901234567000) is refused on the
 * import paths too, as `POST /tables/{table}/rows` refuses it: CSV cells,
 * NDJSON lines and Parquet nested or JSON values, through
 * `POST /tables/{table}/import` and `asof ingest --data-dir`. The answer
 * names row and column, and nothing is imported.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { tempDir, testAsof, type TestAsof } from '../helpers.js';
import { runCli } from '../child-server.js';

const J = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'j', type: 'json', nullable: true },
    { name: 'lj', type: 'list<json>', nullable: true },
    { name: 'st', type: 'struct<a:json,b:float64>', nullable: true },
    { name: 'f', type: 'float64', nullable: true },
  ],
};
const CSV = { 'content-type': 'text/csv' };
const BIG = '12345678901234567890';
/** Why BIG is refused, as POST /tables/{table}/rows words it (exact-numbers.test.ts). */
const BENT = `${BIG} would be stored as 12345678901234567000, as a JSON number is held as a float64 (integers beyond 2^53 must be sent as strings)`;
/** A CSV cell holding `json`, quoted. */
const cell = (json: string): string => `"${json.replaceAll('"', '""')}"`;

/** A Parquet file written by DuckDB from `select`. */
async function parquet(select: string): Promise<Buffer> {
  const path = join(tmpdir(), `asof-safety-${process.pid}-${Math.random().toString(36).slice(2)}.parquet`);
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    await c.run(`COPY (${select}) TO '${path}' (FORMAT parquet)`);
    return await readFile(path);
  } finally {
    c.closeSync();
    db.closeSync();
    await rm(path, { force: true });
  }
}

describe('import: json numbers a float64 does not hold are refused', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    assert.equal((await asof.req('PUT', '/tables/j', J)).status, 201);
  });
  after(() => asof.destroy());

  const latest = async (): Promise<number> => (await asof.req('GET', '/tables/j')).body.latestOffset;
  /** A 400 ASOF_INVALID_ROW naming `row` and `field` first, and nothing written; its message. */
  const refused = async (res: { status: number; body: any }, row: number, field: string, before: number): Promise<string> => {
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'ASOF_INVALID_ROW', JSON.stringify(res.body));
    assert.deepEqual([res.body.error.details[0].row, res.body.error.details[0].field], [row, field], JSON.stringify(res.body));
    assert.equal(await latest(), before, 'a refused import writes nothing');
    return res.body.error.message;
  };

  test('CSV: in a json cell, a list<json> item or a struct json field; the row and column are named', async () => {
    const before = await latest();
    const cases: [string, number, string, string][] = [
      [`id,j\n1,1\n2,${cell(`{"x":${BIG}}`)}\n`, 1, 'j', `at x: ${BENT}`],
      [`id,j\n1,${BIG}\n`, 0, 'j', BENT],
      [`id,lj\n1,[]\n2,[]\n3,${cell(`[1,{"y":-${BIG}}]`)}\n`, 2, 'lj[]', `at y: -${BIG} would be stored as -12345678901234567000, as a JSON number is held as a float64 (integers beyond 2^53 must be sent as strings)`],
      [`id,st\n1,${cell(`{"a":{"z":[${BIG}]},"b":1}`)}\n`, 0, 'st.a', `at z.0: ${BENT}`],
    ];
    for (const [csv, row, field, reason] of cases) {
      const m = await refused(await asof.req('POST', '/tables/j/import', csv, CSV), row, field, before);
      assert.equal(m, `row ${row}: column "${field}": ${reason}; nothing was imported`);
    }
    // A bad row after good ones is named among the validator's own issues, in row order.
    const mixed = await asof.req('POST', '/tables/j/import', `id,j,f\n1,${cell(`{"x":${BIG}}`)},1\n2,1,nope\n`, CSV);
    await refused(mixed, 0, 'j', before);
    assert.deepEqual(mixed.body.error.details.map((d: any) => [d.row, d.field]), [[0, 'j'], [1, 'f']]);
  });

  test('CSV: numbers a float64 holds, big ones as strings, and float64 fields with 17+ digits still import, as sent', async () => {
    const csv = `id,j,st\n7,${cell(`{"x":"${BIG}","y":1e300,"z":0.5}`)},${cell('{"a":[1,2],"b":0.1000000000000000055511151231257827}')}\n`;
    const r = await asof.req('POST', '/tables/j/import', csv, CSV);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const row = (await asof.req('GET', '/tables/j/rows/7')).body.row;
    assert.deepEqual([row.j, row.st], [{ x: BIG, y: 1e300, z: 0.5 }, { a: [1, 2], b: 0.1 }]);
  });

  test('NDJSON file: a bent number in a json column is named by row and column', async () => {
    const before = await latest();
    const nd = `{"id":1,"j":1}\n\n{"id":2,"j":{"x":${BIG}}}\n`;
    const m = await refused(await asof.req('POST', '/tables/j/import', nd, { 'content-type': 'application/x-ndjson' }), 1, 'j', before);
    assert.equal(m, `row 1: column "j": at x: ${BENT}; nothing was imported`);
  });

  test('Parquet: a UBIGINT inside a struct, and a JSON value, into a json column are refused', async () => {
    const before = await latest();
    const PQ = { 'content-type': 'application/vnd.apache.parquet' };
    const nested = await parquet(`SELECT * FROM (VALUES (1::BIGINT, {'x': 1::UBIGINT}), (2::BIGINT, {'x': ${BIG}::UBIGINT})) t(id, j)`);
    assert.equal(await refused(await asof.req('POST', '/tables/j/import', nested, PQ), 1, 'j', before), `row 1: column "j": at x: ${BENT}; nothing was imported`);
    const json = await parquet(`SELECT 1::BIGINT AS id, '${BIG}'::JSON AS j`);
    assert.equal(await refused(await asof.req('POST', '/tables/j/import', json, PQ), 0, 'j', before), `row 0: column "j": ${BENT}; nothing was imported`);
    // One a float64 holds imports as sent.
    const fine = await parquet(`SELECT 8::BIGINT AS id, '{"x":"${BIG}","y":1e300,"z":[0.5]}'::JSON AS j`);
    const r = await asof.req('POST', '/tables/j/import', fine, PQ);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual((await asof.req('GET', '/tables/j/rows/8')).body.row.j, { x: BIG, y: 1e300, z: [0.5] });
  });
});

describe('asof ingest --data-dir: json numbers a float64 does not hold', () => {
  test('a CSV json cell holding one exits 1 with the same message, and nothing is written', async () => {
    const dir = await tempDir('asof-safety-');
    try {
      const setup = await testAsof({}, { dataDir: dir.path });
      await setup.services.engine.defineTable('j', J as never);
      await setup.close();
      const file = join(dir.path, 'rows.csv');
      await writeFile(file, `id,j\n1,1\n2,${cell(`{"x":${BIG}}`)}\n`);
      const r = await runCli(['ingest', 'j', file, '--data-dir', dir.path]);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.includes(`row 1: column "j": at x: ${BENT}; nothing was imported`), r.stderr);
      const check = await testAsof({}, { dataDir: dir.path });
      try {
        assert.equal(check.services.engine.table('j').endOffset, 0, 'nothing written');
      } finally {
        await check.close();
      }
    } finally {
      await dir.cleanup();
    }
  });
});
