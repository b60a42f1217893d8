import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import * as A from 'apache-arrow';
import { testAsof, type TestAsof } from '../helpers.js';

const ACCOUNTS = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'string', nullable: false },
    { name: 'balance', type: 'float64', nullable: false },
    { name: 'updated', type: 'timestamp' },
  ],
};
const CLICKS = {
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'url', type: 'string' },
    { name: 'emb', type: 'vector<3>' },
    { name: 'tags', type: 'list<string>' },
    { name: 'ctx', type: 'struct<device:string,score:float64>' },
    { name: 'raw', type: 'json' },
  ],
};

describe('tables over REST', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof();
    assert.equal((await asof.req('PUT', '/tables/accounts', ACCOUNTS)).status, 201);
    assert.equal((await asof.req('PUT', '/tables/clicks', CLICKS)).status, 201);
  });
  after(() => asof.destroy());

  test('a pk row inserted, updated twice and deleted leaves +I, -U/+U, -U/+U, -D in the changelog', async () => {
    const w = (rows: unknown[], op = 'upsert') => asof.req('POST', '/tables/accounts/rows', { rows, op });
    const r1 = await w([{ id: 'a', balance: 10 }]);
    assert.deepEqual([r1.status, r1.body.count, r1.body.firstOffset, r1.body.lastOffset], [200, 1, 0, 0]);
    const r2 = await w([{ id: 'a', balance: 20 }]);
    assert.deepEqual([r2.body.count, r2.body.firstOffset, r2.body.lastOffset], [2, 1, 2]);
    await w([{ id: 'a', balance: 30, updated: '2024-01-02T03:04:05.678+01:00' }]);
    const del = await w([{ id: 'a' }], 'delete');
    assert.deepEqual([del.body.count, del.body.firstOffset, del.body.token], [1, 5, { accounts: 5 }]);
    const again = await w([{ id: 'a' }], 'delete');
    assert.deepEqual([again.status, again.body.count, again.body.firstOffset], [200, 0, null], 'deleting an absent key writes nothing');

    const log = await asof.req('GET', '/tables/accounts/changelog?from=0');
    assert.equal(log.status, 200);
    const recs = log.body.records;
    assert.deepEqual(
      recs.map((r: any) => [r.offset, r.changeType, r.row.balance]),
      [
        [0, '+I', 10],
        [1, '-U', 10],
        [2, '+U', 20],
        [3, '-U', 20],
        [4, '+U', 30],
        [5, '-D', 30],
      ],
    );
    assert.equal(recs[4].row.updated, '2024-01-02T02:04:05.678Z', 'timestamps come back as RFC 3339 UTC with milliseconds');
    assert.equal(log.body.nextOffset, 6);
    for (let i = 1; i < recs.length; i++) assert.ok(Date.parse(recs[i].commitTime) >= Date.parse(recs[i - 1].commitTime), 'commit times never go back');
    assert.equal((await asof.req('GET', '/tables/accounts/rows/a')).status, 404);
    const page = await asof.req('GET', '/tables/accounts/changelog?from=2&limit=2');
    assert.deepEqual(page.body.records.map((r: any) => r.offset), [2, 3]);
    assert.equal(page.body.nextOffset, 4);
  });

  test('rows of every type round-trip through ingest and the changelog', async () => {
    const row = { user: 7, ts: 1700000000123, url: 'https://x', emb: [0.5, 1.5, -2], tags: ['a', 'b'], ctx: { device: 'ios', score: 0.25 }, raw: { nested: [1, { k: 'v' }] } };
    const w = await asof.req('POST', '/tables/clicks/rows', { rows: [row, { user: 8, ts: '2024-05-01T00:00:00Z' }] });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    const log = await asof.req('GET', `/tables/clicks/changelog?from=${w.body.firstOffset}`);
    assert.deepEqual(log.body.records[0].row, { ...row, ts: '2023-11-14T22:13:20.123Z' });
    assert.deepEqual(log.body.records[1].row, { user: 8, ts: '2024-05-01T00:00:00.000Z', url: null, emb: null, tags: null, ctx: null, raw: null });
    const byKey = await asof.req('GET', '/tables/clicks/changelog?key=8');
    assert.deepEqual(byKey.body.records.map((r: any) => r.row.user), [8]);
  });

  test('NDJSON and Arrow IPC bodies are accepted', async () => {
    const nd = await asof.req('POST', '/tables/accounts/rows', '{"id":"n1","balance":1}\n\n{"id":"n2","balance":2}\n', { 'content-type': 'application/x-ndjson' });
    assert.equal(nd.status, 200, JSON.stringify(nd.body));
    assert.equal(nd.body.count, 2);
    const table = A.tableFromArrays({ id: ['arrow1', 'arrow2'], balance: Float64Array.from([5, 6]) });
    const ar = await asof.req('POST', '/tables/accounts/rows', Buffer.from(A.tableToIPC(table, 'stream')), { 'content-type': 'application/vnd.apache.arrow.stream' });
    assert.equal(ar.status, 200, JSON.stringify(ar.body));
    const got = await asof.req('GET', '/tables/accounts/rows/arrow2');
    assert.deepEqual(got.body.row, { id: 'arrow2', balance: 6, updated: null });
    const badNd = await asof.req('POST', '/tables/accounts/rows', '{"id":"n3","balance":1}\n{oops\n', { 'content-type': 'application/x-ndjson' });
    assert.equal(badNd.status, 400);
    assert.equal(badNd.body.error.details[0].row, 1);
    assert.equal((await asof.req('GET', '/tables/accounts/rows/n3')).status, 404, 'the good line of a rejected NDJSON body was not written');
  });

  describe('bad input is refused with 400/404 and writes nothing', () => {
    const cases: [string, string, unknown, number, string | undefined, string | undefined][] = [
      ['wrong type', 'clicks', { rows: [{ user: 1, ts: 1 }, { user: 'x', ts: 1 }] }, 400, '1', 'user'],
      ['missing non-nullable column', 'clicks', { rows: [{ user: 1, ts: 1 }, { user: 2 }] }, 400, '1', 'ts'],
      ['unknown column', 'clicks', { rows: [{ user: 1, ts: 1, nope: 3 }] }, 400, '0', 'nope'],
      ['bad timestamp', 'clicks', { rows: [{ user: 1, ts: 'yesterday' }] }, 400, '0', 'ts'],
      ['wrong vector length', 'clicks', { rows: [{ user: 1, ts: 1, emb: [1, 2] }] }, 400, '0', 'emb'],
      ['wrong struct field type', 'clicks', { rows: [{ user: 1, ts: 1, ctx: { device: 1 } }] }, 400, '0', 'ctx.device'],
      ['rows not an array', 'clicks', { rows: 'x' }, 400, undefined, 'body.rows'],
    ];
    for (const [name, table, body, status, row, field] of cases) {
      test(name, async () => {
        const before = (await asof.req('GET', `/tables/${table}`)).body.latestOffset;
        const r = await asof.req('POST', `/tables/${table}/rows`, body);
        assert.equal(r.status, status, JSON.stringify(r.body));
        assert.match(r.body.error.code, /^ASOF_INVALID_/);
        const d = r.body.error.details[0];
        if (row !== undefined) assert.equal(String(d.row), row);
        if (field) assert.equal(d.field, field);
        assert.ok(d.reason.length > 0);
        assert.equal((await asof.req('GET', `/tables/${table}`)).body.latestOffset, before, 'nothing was written');
      });
    }
    test('malformed JSON', async () => {
      const r = await asof.req('POST', '/tables/clicks/rows', '{"rows": [', { 'content-type': 'application/json' });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'ASOF_INVALID_ARGUMENT');
    });
    test('unknown table', async () => {
      const r = await asof.req('POST', '/tables/nope/rows', { rows: [{ a: 1 }] });
      assert.equal(r.status, 404);
      assert.equal(r.body.error.code, 'ASOF_TABLE_NOT_FOUND');
      assert.equal((await asof.req('GET', '/tables/nope')).status, 404);
    });
    test('delete on a log table', async () => {
      const r = await asof.req('POST', '/tables/clicks/rows', { rows: [{ user: 1, ts: 1 }], op: 'delete' });
      assert.equal(r.status, 400);
    });
    test('unsupported media type: the 415 names every type the route takes', async () => {
      const accepted = ['application/json', 'application/x-ndjson', 'application/vnd.apache.arrow.stream'];
      for (const ct of ['text/csv', 'application/xml', 'text/plain']) {
        const r = await asof.req('POST', '/tables/clicks/rows', 'a,b', { 'content-type': ct });
        assert.equal(r.status, 415, ct);
        assert.equal(r.body.error.code, 'ASOF_UNSUPPORTED_MEDIA_TYPE');
        assert.equal(r.body.error.message, `Content-Type ${ct} is not accepted here: send application/json, application/x-ndjson or application/vnd.apache.arrow.stream`);
        assert.deepEqual(r.body.error.details.accepted, accepted);
      }
      // A route that takes JSON only says so; one that takes files only does not offer JSON.
      assert.match((await asof.req('PUT', '/tables/clicks', 'a,b', { 'content-type': 'text/csv' })).body.error.message, /send application\/json$/);
      const file = await asof.req('POST', '/tables/clicks/import', '<a/>', { 'content-type': 'application/xml' });
      assert.equal(file.status, 415);
      assert.deepEqual(file.body.error.details.accepted, ['text/csv', 'application/x-ndjson', 'application/vnd.apache.parquet']);
    });
  });

  test('an Idempotency-Key retry is a no-op that returns the first answer; reuse with another body is 409', async () => {
    const body = { rows: [{ user: 99, ts: 5, url: 'once' }] };
    const h = { 'idempotency-key': 'k-1' };
    const first = await asof.req('POST', '/tables/clicks/rows', body, h);
    const second = await asof.req('POST', '/tables/clicks/rows', body, h);
    assert.equal(first.status, 200);
    assert.deepEqual(second.body, first.body);
    const recs = (await asof.req('GET', '/tables/clicks/changelog?key=99')).body.records;
    assert.equal(recs.length, 1, 'written once');
    const other = await asof.req('POST', '/tables/clicks/rows', { rows: [{ user: 99, ts: 6 }] }, h);
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, 'ASOF_CONFLICT');
  });

  test('table definitions: invalid ones are 400, incompatible changes 409 with the reason', async () => {
    const bad = await asof.req('PUT', '/tables/t1', { kind: 'pk', columns: [{ name: 'a', type: 'int64', nullable: false }] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.details[0].field, 'primaryKey');
    const badType = await asof.req('PUT', '/tables/t2', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'x', type: 'vector<0>' }] });
    assert.equal(badType.status, 400);
    assert.match(badType.body.error.message, /vector/);
    // A type that does not parse is named as every other definition issue names a column: by its index (was columns.x.type).
    assert.deepEqual(badType.body.error.details.map((d: { field: string }) => d.field), ['columns[1].type']);
    for (const type of ['struct<constructor:int64>', 'struct<__proto__:int64>', 'list<struct<a:int32,toString:string>>']) {
      const r = await asof.req('PUT', '/tables/x5', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 's', type }] });
      assert.equal(r.status, 400, type);
      assert.equal(r.body.error.code, 'ASOF_INVALID_DEFINITION');
      assert.equal(r.body.error.details[0].field, 'columns[1].type');
      assert.match(r.body.error.message, /struct field "s(\[\])?\.(constructor|__proto__|toString)" is reserved/);
    }
    assert.equal((await asof.req('GET', '/tables/x5')).status, 404, 'nothing was defined');
    const same = await asof.req('PUT', '/tables/accounts', ACCOUNTS);
    assert.equal(same.status, 200);
    for (const [change, why] of [
      [{ ...ACCOUNTS, columns: [...ACCOUNTS.columns, { name: 'x', type: 'int32', nullable: false }] }, /must be nullable/],
      [{ ...ACCOUNTS, columns: ACCOUNTS.columns.slice(0, 2) }, /cannot be removed/],
      [{ ...ACCOUNTS, columns: [ACCOUNTS.columns[0], { name: 'balance', type: 'int64', nullable: false }, ACCOUNTS.columns[2]] }, /cannot change type/],
      [{ ...ACCOUNTS, kind: 'log', eventTime: 'updated', columns: [ACCOUNTS.columns[0], ACCOUNTS.columns[1], { name: 'updated', type: 'timestamp', nullable: false }] }, /kind cannot change/],
    ] as const) {
      const r = await asof.req('PUT', '/tables/accounts', change);
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'ASOF_SCHEMA_CONFLICT');
      assert.match(r.body.error.message, why);
    }
  });
});

test('a catalog that holds a struct with a reserved field name (stored before such names were refused) opens, and its rows read own fields only', async () => {
  const asof = await testAsof();
  await asof.req('PUT', '/tables/x5', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 's', type: 'struct<k:int64>' }] });
  await asof.close();
  const path = `${asof.dataDir}/catalog.json`;
  await writeFile(path, (await readFile(path, 'utf8')).replace('struct<k:int64>', 'struct<constructor:int64>'));
  const reopened = await testAsof({}, { dataDir: asof.dataDir });
  try {
    assert.equal((await reopened.req('GET', '/tables/x5')).body.columns[1].type, 'struct<constructor:int64>');
    const w = await reopened.req('POST', '/tables/x5/rows', { rows: [{ id: 1, s: {} }, { id: 2, s: { constructor: 5 } }] });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    assert.deepEqual((await reopened.req('GET', '/tables/x5/rows/1')).body.row, { id: 1, s: { constructor: null } });
    assert.deepEqual((await reopened.req('GET', '/tables/x5/rows/2')).body.row, { id: 2, s: { constructor: 5 } });
  } finally {
    await reopened.destroy();
    await rm(asof.dataDir, { recursive: true, force: true });
  }
});

test('schema evolution: a nullable column added at the end is instant; old records read it as null, also after a restart', async () => {
  const asof = await testAsof();
  const def = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int32', nullable: false }, { name: 'a', type: 'string' }] };
  await asof.req('PUT', '/tables/evo', def);
  await asof.req('POST', '/tables/evo/rows', { rows: [{ id: 1, a: 'old' }] });
  const evolved = await asof.req('PUT', '/tables/evo', { ...def, columns: [...def.columns, { name: 'b', type: 'list<int32>', nullable: true }] });
  assert.equal(evolved.status, 200);
  assert.equal(evolved.body.schemaVersion, 2);
  assert.deepEqual(evolved.body.schemaVersions.map((v: any) => v.columnCount), [2, 3]);
  await asof.req('POST', '/tables/evo/rows', { rows: [{ id: 2, a: 'new', b: [1, 2] }] });
  const check = async (a: TestAsof) => {
    assert.deepEqual((await a.req('GET', '/tables/evo/rows/1')).body.row, { id: 1, a: 'old', b: null });
    assert.deepEqual((await a.req('GET', '/tables/evo/rows/2')).body.row, { id: 2, a: 'new', b: [1, 2] });
    const log = (await a.req('GET', '/tables/evo/changelog')).body.records;
    assert.deepEqual(log[0].row, { id: 1, a: 'old', b: null });
  };
  await check(asof);
  await asof.close();
  const reopened = await testAsof({}, { dataDir: asof.dataDir });
  await check(reopened);
  assert.equal((await reopened.req('GET', '/tables/evo')).body.schemaVersion, 2, 'definitions survive restarts');
  await reopened.destroy();
  // destroy() leaves a folder it was given; this one is ours.
  await (await import('node:fs/promises')).rm(asof.dataDir, { recursive: true, force: true });
});
