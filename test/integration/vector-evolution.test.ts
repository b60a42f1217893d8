/**
 * Schema evolution of a table whose vector column already has rows in Lance,
 * over real Lance datasets in temp folders: the column added to the table is
 * added to the column's dataset (old rows read it as null), filters on it
 * find the right rows in memory, in Lance, at an older Lance version that
 * predates it (asOf), and before any flush has added it; flushes succeed, and
 * a restart opens the column and answers. A column whose dataset does not open
 * at start (a LanceDB call made to fail, test/fixtures/lance-faults.ts: the
 * open of an evolved column's dataset failed so) answers its searches 503
 * ASOF_TABLE_UNAVAILABLE, naming it, not 500.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostModule, lanceHost } from '../../src/engine/lance-host.js';
import { testAsof, type TestAsof } from '../helpers.js';

const FAULTS = hostModule('../fixtures/lance-faults', import.meta.url);

const COLUMNS = [
  { name: 'id', type: 'int64', nullable: false },
  { name: 'e', type: 'vector<2>' },
];
const EVOLVED = [...COLUMNS, { name: 'lang', type: 'string' }];

async function define(a: TestAsof, columns: object[], status: number): Promise<void> {
  const r = await a.req('PUT', '/tables/rp', { kind: 'pk', primaryKey: ['id'], columns });
  assert.equal(r.status, status, JSON.stringify(r.body));
}
async function write(a: TestAsof, row: object): Promise<void> {
  const r = await a.req('POST', '/tables/rp/rows', { rows: [row] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}
/** The keys a search answers, nearest first (200 asserted), and the rows by key. */
async function keys(a: TestAsof, body: object): Promise<{ keys: string[]; rows: Record<string, any> }> {
  const r = await a.req('POST', '/vectors/search', { table: 'rp', vector: [1, 0], k: 5, ...body });
  assert.equal(r.status, 200, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
  return { keys: r.body.results.map((h: any) => h.key), rows: Object.fromEntries(r.body.results.map((h: any) => [h.key, h.row])) };
}
const column = (a: TestAsof) => a.services.vectors.column('rp', 'e')!;

/** The searches whose answers hold once row 1 (no lang) and row 2 (lang "en") are written. */
async function bothRowsAnswer(a: TestAsof, where: string): Promise<void> {
  const all = await keys(a, {});
  assert.deepEqual(all.keys, ['1', '2'], where);
  assert.deepEqual(all.rows['1'], { id: 1, e: [1, 0], lang: null }, `${where}: an old row reads the added column as null`);
  assert.deepEqual(all.rows['2'], { id: 2, e: [0, 1], lang: 'en' }, where);
  assert.deepEqual((await keys(a, { filter: { lang: 'en' } })).keys, ['2'], where);
  assert.deepEqual((await keys(a, { filter: { lang: null } })).keys, ['1'], where);
  assert.deepEqual((await keys(a, { filter: { lang: { ne: null } } })).keys, ['2'], where);
  assert.deepEqual((await keys(a, { filter: { or: [{ lang: { in: ['en', 'fr'] } }, { id: 1 }] } })).keys, ['1', '2'], where);
}

test('a column added to a table whose vector rows are in Lance: searches filter on it, flushes succeed, asOf before it existed answers', async () => {
  // A long flush interval: flushNow moves rows into Lance when the test says so (and fails when the flush does).
  const a = await testAsof({ vectorFlushMs: 3_600_000 });
  try {
    await define(a, COLUMNS, 201);
    await write(a, { id: 1, e: [1, 0] });
    await column(a).flushNow();
    const before = column(a).marks.at(-1)!;

    await define(a, EVOLVED, 200);
    // No write since: the dataset does not hold the column yet; every row it has reads it as null.
    assert.deepEqual((await keys(a, { filter: { lang: null } })).keys, ['1'], 'before a flush adds the column');
    assert.deepEqual((await keys(a, { filter: { lang: 'en' } })).keys, [], 'before a flush adds the column');

    await write(a, { id: 2, e: [0, 1], lang: 'en' });
    await bothRowsAnswer(a, 'row 2 in memory');
    await column(a).flushNow();
    assert.equal(column(a).hotRows, 0, 'every row is in Lance');
    await bothRowsAnswer(a, 'both rows in Lance');
    await write(a, { id: 3, e: [1, 1], lang: 'fr' });
    await column(a).flushNow();
    assert.equal(column(a).hotRows, 0, 'later flushes succeed too');

    // asOf at the Lance version written before the column existed: it reads as null there.
    const asOf = before.commitTime;
    const old = await a.req('POST', '/vectors/search', { table: 'rp', vector: [1, 0], k: 5, asOf, filter: { lang: null } });
    assert.equal(old.status, 200, JSON.stringify(old.body));
    assert.equal(old.body.search.asOfSource, 'lance');
    assert.equal(old.body.search.lanceVersion, before.version);
    assert.deepEqual(old.body.results.map((h: any) => [h.key, h.row]), [['1', { id: 1, e: [1, 0], lang: null }]]);
    assert.deepEqual((await keys(a, { asOf, filter: { lang: 'en' } })).keys, []);
    assert.deepEqual((await keys(a, { asOf, filter: { or: [{ lang: 'en' }, { lang: { ne: null } }, { id: { in: [1] } }] } })).keys, ['1']);
    // asOf after row 2 was written, at the version that holds it.
    assert.deepEqual((await keys(a, { asOf: column(a).marks.at(-2)!.commitTime, filter: { lang: 'en' } })).keys, ['2']);
  } finally {
    await a.destroy();
  }
});

test('a column added to a table whose vector rows are in Lance: after a restart the column opens, searches and flushes work', async () => {
  let a = await testAsof({ vectorFlushMs: 3_600_000 });
  const dataDir = a.dataDir;
  try {
    await define(a, COLUMNS, 201);
    await write(a, { id: 1, e: [1, 0] });
    await column(a).flushNow();
    await define(a, EVOLVED, 200);
    // Closed with the column added to the table but not to the dataset (no flush since).
    await a.close();

    a = await testAsof({ vectorFlushMs: 3_600_000 }, { dataDir });
    await column(a).ready;
    assert.deepEqual((await keys(a, { filter: { lang: null } })).keys, ['1'], 'after a restart');
    await write(a, { id: 2, e: [0, 1], lang: 'en' });
    // Closed with row 2 in memory only: the next start reads it from the changelog.
    await a.close();

    a = await testAsof({ vectorFlushMs: 3_600_000 }, { dataDir });
    await column(a).ready;
    await bothRowsAnswer(a, 'after a second restart, row 2 in memory');
    await column(a).flushNow();
    assert.equal(column(a).hotRows, 0);
    await bothRowsAnswer(a, 'after a second restart, both rows in Lance');
    await a.close();

    a = await testAsof({ vectorFlushMs: 3_600_000 }, { dataDir });
    await column(a).ready;
    assert.equal(column(a).hotRows, 0, 'nothing left to read from the changelog');
    await bothRowsAnswer(a, 'after a third restart, from Lance only');
  } finally {
    await a.destroy();
  }
});

test('a vector column whose dataset does not open at start: its searches answer 503 ASOF_TABLE_UNAVAILABLE naming it, the table serves its rows', async () => {
  // No cold tier: the injected failure is the vector column's, whoever calls first.
  const opts = { vectorFlushMs: 3_600_000, tierAfter: null };
  let a = await testAsof(opts);
  const dataDir = a.dataDir;
  try {
    await define(a, COLUMNS, 201);
    await write(a, { id: 1, e: [1, 0] });
    await column(a).flushNow();
    await a.close();

    // Opening the dataset reads its schema (to add the columns the table gained): that read fails.
    await lanceHost().call(FAULTS, 'failNext', ['schema']);
    a = await testAsof(opts, { dataDir });
    await assert.rejects(column(a).ready);
    assert.equal(await lanceHost().call(FAULTS, 'injectedCount', ['schema']), 1);
    const r = await a.req('POST', '/vectors/search', { table: 'rp', vector: [1, 0], k: 5 });
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'ASOF_TABLE_UNAVAILABLE');
    assert.match(r.body.error.message, /vector column "rp\.e" did not open: injected schema failure/);
    assert.deepEqual(r.body.error.details, { table: 'rp', column: 'e' });
    assert.equal((await a.req('GET', '/tables/rp/rows/1')).status, 200, 'the table serves its rows');
    await a.close();

    // The next start opens it.
    a = await testAsof(opts, { dataDir });
    assert.deepEqual((await keys(a, {})).keys, ['1']);
  } finally {
    await a.destroy();
  }
});
