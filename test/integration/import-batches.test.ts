/**
 * POST /tables/{table}/import writes in batches of ASOF_MAX_BATCH_ROWS, one
 * durable commit each. A failure after some batches were committed must say
 * what stays written (a "nothing was written" would make the client's retry
 * write those rows twice), and a retry with the same Idempotency-Key must
 * write only the batches not yet written.
 */
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { setMaxFrameBytesForTests } from '../../src/engine/log.js';
import { A_TS_EVENTS, failNthDatasync, restoreFileOps } from '../fixtures/changelog-faults.js';
import { testAsof, type TestAsof } from '../helpers.js';



const ndjson = (values: number[]) => values.map((a) => JSON.stringify({ a, ts: 1000 + a })).join('\n') + '\n';
const ND = { 'content-type': 'application/x-ndjson' };

describe('import in batches', () => {
  let asof: TestAsof;
  before(async () => {
    asof = await testAsof({ maxBatchRows: 2 });
  });
  after(() => asof.destroy());
  afterEach(restoreFileOps);

  let n = 0;
  /** A new empty table for each test. */
  const table = async () => {
    const name = `ev${n++}`;
    assert.equal((await asof.req('PUT', `/tables/${name}`, A_TS_EVENTS)).status, 201);
    return name;
  };
  const values = async (t: string) => (await asof.req('GET', `/tables/${t}/changelog?limit=1000`)).body.records.map((r: any) => r.row.a);

  test('a failure at the second batch says the first batch stays written, and where the rest begins', async () => {
    const t = await table();
    failNthDatasync(t, 2);
    const res = await asof.req('POST', `/tables/${t}/import`, ndjson([1, 2, 3, 4, 5]), ND);
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'ASOF_STORAGE_FAILED');
    assert.doesNotMatch(res.body.error.message, /nothing was written/);
    assert.match(res.body.error.message, /stopped at row 2 of 5/);
    assert.match(res.body.error.message, /Rows 0-1 of the file were written .*offsets 0\.\.1/);
    assert.deepEqual(res.body.error.details.written, { rows: 2, count: 2, firstOffset: 0, lastOffset: 1, token: { [t]: 1 } });
    assert.equal(res.body.error.details.resumeAtRow, 2);
    assert.deepEqual(await values(t), [1, 2], 'what the answer says is what the table holds');
  });

  test('with an Idempotency-Key, the retry writes only the batches not yet written, and a second retry writes nothing', async () => {
    const t = await table();
    const body = ndjson([1, 2, 3, 4, 5]);
    const key = { ...ND, 'idempotency-key': 'import-42' };
    // The 1st fdatasync makes the client's key durable (a frame of no records), the 2nd the first batch: the 3rd, the second batch, fails.
    failNthDatasync(t, 3);
    assert.equal((await asof.req('POST', `/tables/${t}/import`, body, key)).status, 503);
    restoreFileOps();
    const retry = await asof.req('POST', `/tables/${t}/import`, body, key);
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.deepEqual(await values(t), [1, 2, 3, 4, 5], 'no row twice');
    assert.deepEqual([retry.body.rows, retry.body.count, retry.body.firstOffset, retry.body.lastOffset, retry.body.token], [5, 5, 0, 4, { [t]: 4 }], 'the answer of a whole import');
    const again = await asof.req('POST', `/tables/${t}/import`, body, key);
    assert.deepEqual(again.body, retry.body);
    assert.deepEqual(await values(t), [1, 2, 3, 4, 5]);

    const other = await asof.req('POST', `/tables/${t}/import`, ndjson([1, 2, 3, 4, 6]), key);
    assert.equal(other.status, 409, 'the same key with another file');
    assert.equal(other.body.error.code, 'ASOF_CONFLICT');
    assert.match(other.body.error.message, /Idempotency-Key "import-42"/, "the client's key, not one derived from it");
    assert.doesNotMatch(JSON.stringify(other.body), /import:/);
    assert.deepEqual(await values(t), [1, 2, 3, 4, 5]);
  });

  test('one Idempotency-Key for POST /rows and an import is a 409 naming it, in either order, and on another table; retries of each stay no-ops', async () => {
    const [t, u] = [await table(), await table()];
    const conflict = (res: { status: number; body: any }, key: string, what: string) => {
      assert.equal(res.status, 409, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'ASOF_CONFLICT');
      assert.match(res.body.error.message, new RegExp(`Idempotency-Key "${key}"`), what);
      assert.deepEqual(res.body.error.details, { idempotencyKey: key }, what);
    };
    const rows = { rows: [{ a: 100, ts: 1 }] };
    const first = await asof.req('POST', `/tables/${t}/rows`, rows, { 'idempotency-key': 'rows-first' });
    assert.equal(first.status, 200);
    conflict(await asof.req('POST', `/tables/${t}/import`, ndjson([1, 2, 3]), { ...ND, 'idempotency-key': 'rows-first' }), 'rows-first', 'rows, then an import');
    conflict(await asof.req('POST', `/tables/${u}/import`, ndjson([1, 2, 3]), { ...ND, 'idempotency-key': 'rows-first' }), 'rows-first', 'rows, then an import to another table');
    assert.deepEqual((await asof.req('POST', `/tables/${t}/rows`, rows, { 'idempotency-key': 'rows-first' })).body, first.body, 'the rows retried');

    const imported = await asof.req('POST', `/tables/${t}/import`, ndjson([1, 2, 3]), { ...ND, 'idempotency-key': 'import-first' });
    assert.equal(imported.status, 200, JSON.stringify(imported.body));
    conflict(await asof.req('POST', `/tables/${t}/rows`, rows, { 'idempotency-key': 'import-first' }), 'import-first', 'an import, then rows');
    conflict(await asof.req('POST', `/tables/${u}/rows`, rows, { 'idempotency-key': 'import-first' }), 'import-first', 'an import, then rows to another table');
    conflict(await asof.req('POST', `/tables/${u}/import`, ndjson([1, 2, 3]), { ...ND, 'idempotency-key': 'import-first' }), 'import-first', 'the same import to another table');
    assert.deepEqual((await asof.req('POST', `/tables/${t}/import`, ndjson([1, 2, 3]), { ...ND, 'idempotency-key': 'import-first' })).body, imported.body, 'the import retried');
    assert.deepEqual(await values(t), [100, 1, 2, 3], 'each written once');
    assert.deepEqual(await values(u), []);
  });

  test('every batch holds at most ASOF_MAX_BATCH_ROWS rows, however the reader chunks the file', async () => {
    // One NDJSON chunk of 7 rows: the last write used to carry all the rows left over (5 > 2: 413, after 2 rows were written).
    const t = await table();
    const res = await asof.req('POST', `/tables/${t}/import`, ndjson([1, 2, 3, 4, 5, 6, 7]), ND);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(await values(t), [1, 2, 3, 4, 5, 6, 7]);
  });

  test('an Idempotency-Key longer than 256 characters is a 400 and writes nothing', async () => {
    const t = await table();
    const res = await asof.req('POST', `/tables/${t}/import`, ndjson([1]), { ...ND, 'idempotency-key': 'k'.repeat(257) });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.details[0].field, 'Idempotency-Key');
    assert.deepEqual(await values(t), []);
  });
});

test('a batch of large rows that would make a changelog frame over the limit is written in halves, keyed or not; every row once, in order', async () => {
  // The 1 GiB frame limit at 1/4096 scale (256 KiB), rows of 4 KiB of text: a batch of 200 is about 800 KiB.
  setMaxFrameBytesForTests(256 * 1024);
  const asof = await testAsof();
  try {
    const text = (i: number) => `${i}:`.padEnd(4096, 'x');
    const body = Array.from({ length: 200 }, (_, i) => JSON.stringify({ a: i, ts: 1000 + i, note: text(i) })).join('\n') + '\n';
    for (const [name, headers] of [['plain', ND], ['keyed', { ...ND, 'idempotency-key': 'big-rows' }]] as const) {
      assert.equal((await asof.req('PUT', `/tables/${name}`, { ...A_TS_EVENTS, columns: [...A_TS_EVENTS.columns, { name: 'note', type: 'string', nullable: false }] })).status, 201);
      const res = await asof.req('POST', `/tables/${name}/import`, body, headers);
      assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 300));
      assert.deepEqual([res.body.count, res.body.firstOffset, res.body.lastOffset], [200, 0, 199]);
      const rows = (await asof.req('GET', `/tables/${name}/changelog?limit=1000`)).body.records.map((r: any) => r.row);
      assert.deepEqual(rows.map((r: any) => [r.a, r.note]), Array.from({ length: 200 }, (_, i) => [i, text(i)]));
    }
    // The keyed import again: every half is found written, nothing twice.
    const again = await asof.req('POST', '/tables/keyed/import', body, { ...ND, 'idempotency-key': 'big-rows' });
    assert.equal(again.status, 200);
    assert.equal((await asof.req('GET', '/tables/keyed/changelog?limit=1000')).body.records.length, 200);
  } finally {
    setMaxFrameBytesForTests();
    await asof.destroy();
  }
});
