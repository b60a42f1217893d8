/**
 * A JSON number literal a float64 does not hold as sent is refused where an
 * int32, int64 or timestamp goes, not stored as the whole number JSON.parse
 * made of it (`1.0000000000000000001` was stored as int64 1,
 * `1700000000000.00000001` as that whole millisecond): over REST JSON (on the
 * event loop and on an ingest thread), NDJSON, gRPC WriteRows' ndjson, a
 * delete's key, and CSV, NDJSON and Parquet imports (CSV list and json cells
 * and Parquet nested values are read as JSON text). Each refusal names row and column, and nothing is written; literals
 * a float64 holds (`1`, `1.0`, `1e3`, `-0`, 2^53 - 1) are stored, and float
 * columns take the nearest double, as documented.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { asofError, grpcAsof, stream, type GrpcAsof } from './grpc-helpers.js';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { offThreadBodies } from '../../src/metrics.js';

const T = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'i', type: 'int32' },
    { name: 'n', type: 'int64' },
    { name: 'ts', type: 'timestamp' },
    { name: 'f', type: 'float64' },
    { name: 'xs', type: 'list<int64>' },
    { name: 'j', type: 'json' },
  ],
};
const JSON_CT = { 'content-type': 'application/json' };
const NDJSON_CT = { 'content-type': 'application/x-ndjson' };
const CSV_CT = { 'content-type': 'text/csv' };

describe('number literals a float64 bends are refused where an integer or timestamp goes', () => {
  let asof: GrpcAsof;
  before(async () => {
    // One ingest thread: bodies of 32 KiB or more are parsed there.
    asof = await grpcAsof({ ingestThreads: 1 });
    assert.equal((await asof.req('PUT', '/tables/t', T)).status, 201);
    // Only scalar columns: its large bodies can go to the ingest thread.
    assert.equal((await asof.req('PUT', '/tables/c', { ...T, columns: T.columns.slice(0, 5) })).status, 201);
  });
  after(() => asof.destroy());

  const latest = async (): Promise<number> => (await asof.req('GET', '/tables/t')).body.latestOffset;
  const stored = async (id: number): Promise<Record<string, unknown>> => {
    const r = await asof.req('GET', `/tables/t/rows/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.row;
  };
  /** A 400 ASOF_INVALID_ROW naming `row` and `field`, and nothing written; its message. */
  const refused = async (res: { status: number; body: any }, row: number, field: string, at: number): Promise<string> => {
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'ASOF_INVALID_ROW', JSON.stringify(res.body));
    assert.deepEqual([res.body.error.details[0].row, res.body.error.details[0].field], [row, field], JSON.stringify(res.body));
    assert.equal(await latest(), at, 'a refused request writes nothing');
    return res.body.error.message;
  };

  test('REST JSON and NDJSON: int64, int32, timestamp and list<int64> refuse a literal read as a whole number; nothing is written', async () => {
    const at = await latest();
    const body = (cells: string): string => `{"rows":[{"id":1,"n":1},{"id":2,${cells}}]}`;
    assert.equal(
      await refused(await asof.req('POST', '/tables/t/rows', body('"n":1.0000000000000000001'), JSON_CT), 1, 'n', at),
      'row 1: column "n": expected int64, got 1.0000000000000000001, which is not a whole number (a JSON number is held as a float64, which would store it as 1: refused rather than rounded); nothing was written',
    );
    assert.equal(
      await refused(await asof.req('POST', '/tables/t/rows', body('"ts":1700000000000.00000001'), JSON_CT), 1, 'ts', at),
      'row 1: column "ts": epoch milliseconds must be a whole number, got 1700000000000.00000001 (a JSON number is held as a float64, which would store it as 1700000000000: refused rather than rounded); nothing was written',
    );
    assert.match(await refused(await asof.req('POST', '/tables/t/rows', body('"i":41.999999999999999999'), JSON_CT), 1, 'i', at), /expected int32, got 41\.999999999999999999, which is not a whole number .* store it as 42/);
    assert.match(await refused(await asof.req('POST', '/tables/t/rows', body('"xs":[1,-3.0000000000000000001]'), JSON_CT), 1, 'xs[]', at), /got -3\.0000000000000000001, which is not a whole number/);
    // Just under 2^53 the fraction is lost too; 2^53 + 1 is refused by int64's own rule.
    assert.match(await refused(await asof.req('POST', '/tables/t/rows', body('"n":9007199254740990.6'), JSON_CT), 1, 'n', at), /would store it as 9007199254740991/);
    assert.match(await refused(await asof.req('POST', '/tables/t/rows', body('"n":9007199254740993'), JSON_CT), 1, 'n', at), /integers beyond 2\^53 must be sent as strings/);
    // NDJSON: the row counts non-blank lines.
    const nd = await refused(await asof.req('POST', '/tables/t/rows', '{"id":1}\n\n{"id":2,"n":1e-400}\n', NDJSON_CT), 1, 'n', at);
    assert.match(nd, /^row 1: column "n": expected int64, got 1e-400, which is not a whole number .* store it as 0/);
  });

  test('a delete\'s key is checked too: a bent key would delete another row', async () => {
    assert.equal((await asof.req('POST', '/tables/t/rows', { rows: [{ id: 1, n: 5 }] })).status, 200);
    const at = await latest();
    const m = await refused(await asof.req('POST', '/tables/t/rows', '{"op":"delete","rows":[{"id":1.0000000000000000001}]}', JSON_CT), 0, 'id', at);
    assert.match(m, /expected int64, got 1\.0000000000000000001/);
    assert.equal((await stored(1)).n, 5);
  });

  test('a large body on an ingest thread: a bent literal in row 700 is refused as on the event loop; long float64 literals are parsed on the thread', async () => {
    const rowsWith = (last: string): string => `{"rows":[${Array.from({ length: 1000 }, (_, k) => (k === 700 ? last : `{"id":${k + 10},"n":${k},"ts":${1700000000000 + k},"f":${(k + 0.1234567890123457).toPrecision(17)}}`)).join(',')}]}`;
    const good = rowsWith('{"id":710,"n":7,"ts":1700000000000.000000000000000}');
    assert.ok(good.length > 32 * 1024);
    const parsed = offThreadBodies.parsed;
    const r = await asof.req('POST', '/tables/c/rows', good, JSON_CT);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(offThreadBodies.parsed - parsed, 1, 'parsed on the thread, though its text has long literals');
    const row = async (id: number): Promise<unknown> => (await asof.req('GET', `/tables/c/rows/${id}`)).body.row;
    assert.deepEqual(await row(710), { id: 710, i: null, n: 7, ts: '2023-11-14T22:13:20.000Z', f: null });
    assert.equal(((await row(11)) as { f: number }).f, 1.1234567890123457);
    const at = (await asof.req('GET', '/tables/c')).body.latestOffset;
    const declined = offThreadBodies.declined;
    const bad = await asof.req('POST', '/tables/c/rows', rowsWith('{"id":710,"n":7.00000000000000000001}'), JSON_CT);
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.deepEqual([bad.body.error.details[0].row, bad.body.error.details[0].field], [700, 'n']);
    assert.match(bad.body.error.message, /^row 700: column "n": expected int64, got 7\.00000000000000000001, which is not a whole number/);
    assert.equal(offThreadBodies.declined - declined, 1, 'the thread handed it back');
    assert.equal((await asof.req('GET', '/tables/c')).body.latestOffset, at, 'nothing was written');
  });

  test('gRPC WriteRows ndjson is refused the same way; nothing is written', async () => {
    const at = await latest();
    const { err } = await stream(asof.ingest, 'WriteRows', [{ table: 't', ndjson: '{"id":3,"ts":1000.0000000000000000001}\n' }]);
    assert.ok(err);
    const e = asofError(err);
    assert.equal(e.code, 'ASOF_INVALID_ROW');
    assert.match(e.message, /^message 0: row 0: column "ts": epoch milliseconds must be a whole number, got 1000\.0000000000000000001 .*would store it as 1000/);
    assert.equal(await latest(), at);
  });

  test('literals a float64 holds are stored: 1.0, 1e3, -0 and 2^53 - 1 as integers, 0.1 and long decimals in float64 as the nearest double', async () => {
    const r = await asof.req('POST', '/tables/t/rows', '{"rows":[{"id":20,"n":1.0,"i":1e3,"ts":-0,"f":0.1},{"id":21,"n":9007199254740991,"i":-0,"ts":1e3,"f":0.1000000000000000055511151231257827,"xs":[1,2.0,3e0]}]}', JSON_CT);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await stored(20), { id: 20, i: 1000, n: 1, ts: '1970-01-01T00:00:00.000Z', f: 0.1, xs: null, j: null });
    assert.deepEqual(await stored(21), { id: 21, i: 0, n: 9007199254740991, ts: '1970-01-01T00:00:01.000Z', f: 0.1, xs: [1, 2, 3], j: null });
  });

  test('CSV import: a list or json cell with a literal a float64 bends is refused naming row and column; nothing is imported', async () => {
    const at = await latest();
    const header = 'id,i,n,ts,f,xs,j';
    const csv = (last: string): string => [header, '30,1,2,1700000000000,0.5,"[1,2]","{""a"":1}"', last].join('\n');
    const list = await asof.req('POST', '/tables/t/import', csv('31,,,,,"[4,5.0000000000000000001]",'), CSV_CT);
    assert.equal(list.status, 400, JSON.stringify(list.body));
    assert.deepEqual(list.body.error.details, [{ row: 1, field: 'xs[]', reason: 'expected int64, got 5.0000000000000000001, which is not a whole number (a JSON number is held as a float64, which would store it as 5: refused rather than rounded)' }]);
    assert.match(list.body.error.message, /^row 1: column "xs\[\]": expected int64, got 5\.0000000000000000001.*nothing was imported$/);
    const json = await asof.req('POST', '/tables/t/import', csv('31,,,,,,"{""a"":[12345678901234567890]}"'), CSV_CT);
    assert.equal(json.status, 400, JSON.stringify(json.body));
    assert.deepEqual([json.body.error.details[0].row, json.body.error.details[0].field], [1, 'j']);
    assert.match(json.body.error.message, /at a\.0: 12345678901234567890 would be stored as 12345678901234567000/);
    // Scalar cells are read from their exact text: a fraction is refused by the column's own rule.
    const scalar = await asof.req('POST', '/tables/t/import', csv('31,,1.0000000000000000001,1700000000000.00000001,,,'), CSV_CT);
    assert.equal(scalar.status, 400, JSON.stringify(scalar.body));
    assert.deepEqual(scalar.body.error.details.map((d: { row: number; field: string }) => [d.row, d.field]), [[1, 'n'], [1, 'ts']]);
    assert.equal(await latest(), at, 'nothing was imported');
  });

  test('NDJSON import: a bent literal is refused naming row and column, the file imports nothing; one a float64 holds imports', async () => {
    const at = await latest();
    const bad = await asof.req('POST', '/tables/t/import', '{"id":40,"n":1}\n{"id":41,"f":0.1000000000000000055511151231257827}\n\n{"id":42,"n":1.0000000000000000001}\n', NDJSON_CT);
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.deepEqual(bad.body.error.details, [{ row: 2, field: 'n', reason: 'expected int64, got 1.0000000000000000001, which is not a whole number (a JSON number is held as a float64, which would store it as 1: refused rather than rounded)' }]);
    assert.equal(await latest(), at, 'nothing was imported');
    const good = await asof.req('POST', '/tables/t/import', '{"id":40,"n":1.0}\n{"id":41,"f":0.1000000000000000055511151231257827,"ts":1e3}\n', NDJSON_CT);
    assert.equal(good.status, 200, JSON.stringify(good.body));
    assert.deepEqual([(await stored(40)).n, (await stored(41)).f, (await stored(41)).ts], [1, 0.1, '1970-01-01T00:00:01.000Z']);
  });

  test('a delete import: a key a float64 bends is refused, not taken for the whole key it would read as; nothing is deleted', async () => {
    assert.equal((await asof.req('POST', '/tables/t/rows', '{"rows":[{"id":1,"n":7}]}', JSON_CT)).status, 200);
    const at = await latest();
    const r = await asof.req('POST', '/tables/t/import?op=delete', '{"id":1.0000000000000000001}\n', NDJSON_CT);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.deepEqual(r.body.error.details, [{ row: 0, field: 'id', reason: 'expected int64, got 1.0000000000000000001, which is not a whole number (a JSON number is held as a float64, which would store it as 1: refused rather than rounded)' }]);
    assert.match(r.body.error.message, /; nothing was imported$/);
    assert.equal(await latest(), at, 'nothing was deleted');
    assert.equal((await stored(1)).n, 7);
  });

  test('CSV import: a json cell that is not JSON is the string it is, long digits and all, not read as numbers', async () => {
    const text = 'ref 12345678901234567890 or 1.0000000000000000001';
    const r = await asof.req('POST', '/tables/t/import', `id,j\n60,${text}\n`, CSV_CT);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await stored(60)).j, text);
  });

  test('Parquet import: a BIGINT beyond 2^53 inside a struct bound for a json column is refused (it is read through JSON text); nothing is imported', async () => {
    const path = join(tmpdir(), `asof-bentint-${process.pid}.parquet`);
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    try {
      await c.run(`COPY (SELECT * FROM (VALUES (50::BIGINT, {'a': 1::BIGINT}), (51::BIGINT, {'a': 1152921504606846977::BIGINT})) v(id, j)) TO '${path}' (FORMAT parquet)`);
      const at = await latest();
      const r = await asof.req('POST', '/tables/t/import', await readFile(path), { 'content-type': 'application/vnd.apache.parquet' });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.deepEqual([r.body.error.details[0].row, r.body.error.details[0].field], [1, 'j']);
      assert.match(r.body.error.message, /at a: 1152921504606846977 would be stored as 1152921504606847000/);
      assert.equal(await latest(), at, 'nothing was imported');
    } finally {
      c.closeSync();
      db.closeSync();
      await rm(path, { force: true });
    }
  });
});
