/**
 * A vector column whose Lance dataset does not open at start is opened again
 * once the cause is gone, without a restart: over a real Lance dataset in a
 * temp folder whose `_versions` folder is moved away (Lance then finds no
 * dataset there) and back. Meanwhile its searches answer 503
 * ASOF_TABLE_UNAVAILABLE; a search (or flush) once the backoff has passed
 * (1 s, doubling while it keeps failing; asof's clock is the test's, moved by hand) opens it,
 * and answers every write acknowledged meanwhile; the flush then catches up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { REOPEN_MS } from '../../src/vectors/column.js';
import { vectorLocations } from '../../src/vectors/service.js';
import { testAsof, type TestAsof } from '../helpers.js';
import { Clock } from './training-fixtures.js';

const COLUMNS = [
  { name: 'id', type: 'int64', nullable: false },
  { name: 'e', type: 'vector<2>' },
];
/** A log table's event time: every row's is `ts`. */
const LOG = { kind: 'log', eventTime: 'ts', primaryKey: ['id'], columns: [...COLUMNS, { name: 'ts', type: 'timestamp', nullable: false }] };
const PK = { kind: 'pk', primaryKey: ['id'], columns: COLUMNS };

async function write(a: TestAsof, table: string, rows: object[], op = 'upsert'): Promise<void> {
  const r = await a.req('POST', `/tables/${table}/rows`, { rows: table === 'rlog' ? rows.map((x) => ({ ...x, ts: 1000 })) : rows, op });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}
const search = (a: TestAsof, table: string) => a.req('POST', '/vectors/search', { table, vector: [1, 0], k: 10 });
/** [key, vector] of every hit, sorted by key (200 asserted). */
async function hits(a: TestAsof, table: string, where: string): Promise<[string, number[]][]> {
  const r = await search(a, table);
  assert.equal(r.status, 200, `${where}: ${JSON.stringify(r.body)}`);
  return r.body.results.map((h: any): [string, number[]] => [h.key, h.row.e]).sort((x: [string, number[]], y: [string, number[]]) => x[0].localeCompare(y[0]));
}
async function unavailable(a: TestAsof, table: string, where: string): Promise<void> {
  const r = await search(a, table);
  assert.equal(r.status, 503, `${where}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.error.code, 'ASOF_TABLE_UNAVAILABLE', where);
  assert.match(r.body.error.message, new RegExp(`vector column "${table}\\.e" did not open: .*not found`, 'i'), where);
  assert.deepEqual(r.body.error.details, { table, column: 'e' }, where);
}

for (const kind of ['pk', 'log'] as const) {
  test(`${kind} table: a vector column whose dataset did not open at start opens on a search after the backoff once repaired; writes made meanwhile are searched and flushed`, async () => {
    // asof's clock moves only when the test moves it: the backoff does not depend on how fast the machine is.
    const time = new Clock(Date.now());
    const clock = { now: time.now };
    const opts = { vectorFlushMs: 3_600_000, tierAfter: null };
    let a = await testAsof(opts, clock);
    const dataDir = a.dataDir;
    const table = `r${kind}`;
    const versions = join(vectorLocations(dataDir, undefined).uri, `${table}.e.lance`, '_versions');
    try {
      const put = await a.req('PUT', `/tables/${table}`, kind === 'pk' ? PK : LOG);
      assert.equal(put.status, 201, JSON.stringify(put.body));
      await write(a, table, [{ id: 1, e: [1, 0] }, { id: 2, e: [0, 1] }]);
      await a.services.vectors.column(table, 'e')!.flushNow();
      await a.close();

      // The dataset's versions are gone: Lance finds no dataset at its folder, and the column does not start.
      await rename(versions, `${versions}.away`);
      a = await testAsof(opts, { ...clock, dataDir });
      const col = a.services.vectors.column(table, 'e')!;
      await assert.rejects(col.ready, /did not open/);
      await unavailable(a, table, 'at start');
      const log = await a.req('GET', `/tables/${table}/changelog`);
      assert.equal(log.status, 200, 'the table serves its changelog');
      assert.equal(log.body.records.length, 2);

      // Writes are acknowledged meanwhile (pk: one key updated, one deleted, one new; log: records added).
      if (kind === 'pk') {
        await write(a, table, [{ id: 1, e: [3, 0] }, { id: 3, e: [1, 1] }]);
        await write(a, table, [{ id: 2 }], 'delete');
      } else await write(a, table, [{ id: 1, e: [3, 0] }, { id: 3, e: [1, 1] }]);

      // The backoff passed, the cause not: the search tries again and fails, and the next wait is twice as long.
      time.advance(REOPEN_MS.first);
      await unavailable(a, table, 'tried again, still broken');

      await rename(`${versions}.away`, versions);
      // Repaired, but within the (now doubled) backoff: no attempt yet, so still 503.
      time.advance(REOPEN_MS.first);
      await unavailable(a, table, 'repaired, within the backoff');
      time.advance(REOPEN_MS.first);
      const want: [string, number[]][] =
        kind === 'pk'
          ? [['1', [3, 0]], ['3', [1, 1]]]
          : [['1', [1, 0]], ['1', [3, 0]], ['2', [0, 1]], ['3', [1, 1]]];
      const sortHits = (h: [string, number[]][]) => h.sort((x, y) => x[0].localeCompare(y[0]) || x[1][0] - y[1][0]);
      assert.deepEqual(sortHits(await hits(a, table, 'after the backoff, repaired')), want);
      await col.ready;
      assert.ok(col.hotRows > 0, 'the writes made while it was closed were read from the changelog into memory');

      // The flush catches up: everything is in Lance, searched from there, and later writes go on as usual.
      await col.flushNow();
      assert.equal(col.hotRows, 0);
      assert.equal(await col.lance.countRows(), want.length);
      assert.deepEqual(sortHits(await hits(a, table, 'flushed')), want);
      assert.equal(col.marks.at(-1)!.offset, a.services.engine.table(table).endOffset - 1, 'the position reached the last record');
      await write(a, table, [{ id: 4, e: [0, 2] }]);
      await col.flushNow();
      assert.equal(await col.lance.countRows(), want.length + 1);
      await a.close();

      // And a restart finds it as it was left.
      a = await testAsof(opts, { ...clock, dataDir });
      assert.deepEqual(sortHits(await hits(a, table, 'restarted')), sortHits([...want, ['4', [0, 2]]]));
    } finally {
      await a.destroy();
    }
  });
}

test('a column that did not open is opened again by a flush after the backoff too', async () => {
  const time = new Clock(Date.now());
  const clock = { now: time.now };
  const opts = { vectorFlushMs: 3_600_000, tierAfter: null };
  let a = await testAsof(opts, clock);
  const dataDir = a.dataDir;
  const versions = join(vectorLocations(dataDir, undefined).uri, 'rf.e.lance', '_versions');
  try {
    assert.equal((await a.req('PUT', '/tables/rf', PK)).status, 201);
    await write(a, 'rf', [{ id: 1, e: [1, 0] }]);
    await a.services.vectors.column('rf', 'e')!.flushNow();
    await a.close();

    await rename(versions, `${versions}.away`);
    a = await testAsof(opts, { ...clock, dataDir });
    const col = a.services.vectors.column('rf', 'e')!;
    await write(a, 'rf', [{ id: 2, e: [0, 1] }]);
    await assert.rejects(col.flushNow(), /did not open/);
    await rename(`${versions}.away`, versions);
    await assert.rejects(col.flushNow(), /did not open/, 'within the backoff');
    time.advance(REOPEN_MS.first);
    await col.flushNow();
    assert.equal(col.hotRows, 0);
    assert.equal(await col.lance.countRows(), 2);
    assert.deepEqual(await hits(a, 'rf', 'flushed'), [['1', [1, 0]], ['2', [0, 1]]]);
  } finally {
    await a.destroy();
  }
});
