/**
 * A delete row and a `?key=` name the key columns and nothing else: another
 * name (no column of the table, or a column outside the key) is a 400 naming
 * it, and nothing is deleted; it was ignored before.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';

const CK = {
  kind: 'pk',
  primaryKey: ['a', 'b'],
  columns: [
    { name: 'a', type: 'int64', nullable: false },
    { name: 'b', type: 'string', nullable: false },
    { name: 'v', type: 'string' },
  ],
};

describe('key columns of deletes and keys', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    assert.equal((await asof.req('PUT', '/tables/ck', CK)).status, 201);
    assert.equal((await asof.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'ts', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }] })).status, 201);
    assert.equal((await asof.req('POST', '/tables/ck/rows', { rows: [{ a: 1, b: 'x', v: 'one' }, { a: 2, b: 'y', v: 'two' }] })).status, 200);
  });
  after(() => asof.destroy());

  const stillThere = async () => assert.deepEqual((await asof.req('GET', '/tables/ck/changelog')).body.records.map((r: any) => r.changeType), ['+I', '+I'], 'nothing was deleted');

  test('?key= with a name that is no key column is a 400 naming it', async () => {
    const key = (k: object) => asof.req('GET', `/tables/ck/changelog?key=${encodeURIComponent(JSON.stringify(k))}`);
    assert.equal((await key({ a: 1, b: 'x' })).body.records.length, 1);
    for (const [k, field, why] of [
      [{ a: 1, b: 'x', zz: 1 }, 'key.zz', /unknown column/],
      [{ a: 1, b: 'x', v: 'one' }, 'key.v', /not a key column/],
    ] as const) {
      const r = await key(k);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
      assert.deepEqual(r.body.error.details.map((d: any) => d.field), [field]);
      assert.match(r.body.error.message, why);
    }
  });

  test('a delete row naming another column is a 400 naming the row and column (JSON and NDJSON), and deletes nothing', async () => {
    for (const [rows, field, why] of [
      [[{ a: 1, b: 'x' }, { a: 2, b: 'y', v: 'junk' }], 'v', /not a key column: a delete .*names only the key columns \(a, b\)/],
      [[{ a: 1, b: 'x' }, { a: 2, b: 'y', zz: 1 }], 'zz', /unknown column/],
      [[{ a: 1, b: 'x' }, { a: 2, b: 'y', v: null }], 'v', /not a key column/],
    ] as const) {
      for (const r of [
        await asof.req('POST', '/tables/ck/rows', { rows, op: 'delete' }),
        await asof.req('POST', '/tables/ck/rows?op=delete', rows.map((x) => JSON.stringify(x) + '\n').join(''), { 'content-type': 'application/x-ndjson' }),
      ]) {
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body.error.code, 'ASOF_INVALID_ROW');
        assert.deepEqual(r.body.error.details.map((d: any) => [d.row, d.field]), [[1, field]]);
        assert.match(r.body.error.message, /^row 1: column /);
        assert.match(r.body.error.details[0].reason, why);
      }
    }
    await stillThere();
  });

  test('an import with ?op=delete names only key columns: another column of the file, or another key of an NDJSON row, is a 400 and deletes nothing', async () => {
    const csv = await asof.req('POST', '/tables/ck/import?op=delete', 'a,b,v\n1,x,\n', { 'content-type': 'text/csv' });
    assert.equal(csv.status, 400, JSON.stringify(csv.body));
    assert.equal(csv.body.error.code, 'ASOF_INVALID_ROW');
    assert.deepEqual(csv.body.error.details.map((d: any) => d.field), ['v']);
    assert.match(csv.body.error.message, /the file names column "v": not a key column/);
    const nd = await asof.req('POST', '/tables/ck/import?op=delete', '{"a":1,"b":"x"}\n{"a":2,"b":"y","zz":1}\n', { 'content-type': 'application/x-ndjson' });
    assert.equal(nd.status, 400, JSON.stringify(nd.body));
    assert.deepEqual(nd.body.error.details.map((d: any) => [d.row, d.field]), [[1, 'zz']]);
    await stillThere();
  });

  test('a delete on a log table is refused as such, whatever its rows name', async () => {
    const r = await asof.req('POST', '/tables/ev/rows', { rows: [{ id: 1, ts: 1 }], op: 'delete' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
    assert.match(r.body.error.message, /needs a pk table/);
  });

  test('a delete of the key columns alone still deletes (JSON and an import)', async () => {
    assert.equal((await asof.req('POST', '/tables/ck/rows', { rows: [{ a: 1, b: 'x' }], op: 'delete' })).body.count, 1);
    const imp = await asof.req('POST', '/tables/ck/import?op=delete', 'a,b\n2,y\n', { 'content-type': 'text/csv' });
    assert.equal(imp.status, 200, JSON.stringify(imp.body));
    assert.equal(imp.body.count, 1);
  });
});
