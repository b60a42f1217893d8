/**
 * Large JSON writes parsed on an ingest thread (ingest/parse-pool.ts) store
 * exactly what the main thread's parse stores, answer every bad body exactly
 * as it does, and survive the thread's death. Oracle: a second asof with no
 * ingest threads (ASOF_INGEST_THREADS=0), sent the same bodies.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';
import { offThreadBodies } from '../../src/metrics.js';

const EVENTS = {
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'kind', type: 'string' },
    { name: 'amount', type: 'float64' },
    { name: 'score', type: 'float32' },
    { name: 'flagged', type: 'bool' },
  ],
};

/** 600 rows (about 60 KB of JSON: above the size sent to a thread), varied values and nulls. */
function rowsOf(b: number): Record<string, unknown>[] {
  return Array.from({ length: 600 }, (_, i) => ({
    user: (b * 7919 + i * 31) % 5000,
    ts: i % 3 === 0 ? 1767225600000 + b * 1000 + i : new Date(1767225600000 + b * 1000 + i).toISOString().replace('Z', '+00:00'),
    kind: i % 7 === 0 ? null : ['click', 'view', 'São Paulo', '東京', ''][i % 5],
    amount: i % 11 === 0 ? null : (i * 37.13) % 1000 - 500,
    score: i % 13 === 0 ? -0 : i / 7,
    flagged: i % 5 === 0 ? null : i % 2 === 0,
  }));
}

describe('ingest threads', () => {
  let threaded: TestAsof;
  let inline: TestAsof;
  before(async () => {
    threaded = await testAsof({ ingestThreads: 1 });
    inline = await testAsof({ ingestThreads: 0 });
    for (const a of [threaded, inline]) assert.equal((await a.req('PUT', '/tables/events', EVENTS)).status, 201);
  });
  after(async () => {
    await threaded.destroy();
    await inline.destroy();
  });

  const changelog = async (a: TestAsof, from: number): Promise<unknown[]> => {
    const res = await a.req('GET', `/tables/events/changelog?from=${from}&limit=10000`);
    assert.equal(res.status, 200);
    return res.body.records.map((r: { commitTime: unknown }) => ({ ...r, commitTime: undefined }));
  };

  test('a large body is parsed on the thread, and the records stored equal those of the main thread\'s parse', async () => {
    assert.equal(threaded.services.ingest.parsePool?.size, 1);
    assert.equal(inline.services.ingest.parsePool, undefined);
    const before = offThreadBodies.parsed;
    for (let b = 0; b < 3; b++) {
      const body = { rows: rowsOf(b) };
      const [x, y] = [await threaded.req('POST', '/tables/events/rows', body), await inline.req('POST', '/tables/events/rows', body)];
      assert.equal(x.status, 200, JSON.stringify(x.body));
      assert.deepEqual(x.body, y.body);
    }
    assert.equal(offThreadBodies.parsed - before, 3, 'the threaded asof parsed each body on its thread');
    assert.deepEqual(await changelog(threaded, 0), await changelog(inline, 0));
  });

  test('a bad row deep in a large body: the same 400 as the main thread\'s, and nothing written', async () => {
    const rows = rowsOf(9);
    rows[417] = { ...rows[417], amount: 'lots' };
    const bad = [
      { rows },
      { rows: [...rowsOf(10), { user: 1 }] },
      { rows: rowsOf(11), op: 'remove' },
      // A misspelled op: refused as an unknown key, not taken for an upsert by the thread.
      { rows: rowsOf(13), Op: 'delete' },
    ];
    for (const body of bad) {
      const end = (await threaded.req('GET', '/tables/events')).body.latestOffset;
      const [x, y] = [await threaded.req('POST', '/tables/events/rows', body), await inline.req('POST', '/tables/events/rows', body)];
      assert.equal(x.status, 400);
      assert.deepEqual(x.body, y.body);
      assert.equal((await threaded.req('GET', '/tables/events')).body.latestOffset, end);
    }
    const text = JSON.stringify({ rows: rowsOf(12) });
    const broken = text.slice(0, -40);
    const [x, y] = [await threaded.req('POST', '/tables/events/rows', broken, { 'content-type': 'application/json' }), await inline.req('POST', '/tables/events/rows', broken, { 'content-type': 'application/json' })];
    assert.equal(x.status, 400);
    assert.deepEqual(x.body, y.body);
  });

  test('the thread dies with bodies in flight: every write is still answered, parsed on the main thread', async () => {
    const from = (await threaded.req('GET', '/tables/events')).body.latestOffset + 1;
    const writes = Array.from({ length: 6 }, (_, b) => threaded.req('POST', '/tables/events/rows', { rows: rowsOf(20 + b) }));
    await threaded.services.ingest.parsePool!.kill();
    const answers = await Promise.all(writes);
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
    const records = await changelog(threaded, from);
    assert.equal(records.length, 6 * 600);
    // A new thread takes bodies again once a second has passed since the death.
    await new Promise((r) => setTimeout(r, 1100));
    const before = offThreadBodies.parsed;
    assert.equal((await threaded.req('POST', '/tables/events/rows', { rows: rowsOf(30) })).status, 200);
    assert.equal(offThreadBodies.parsed - before, 1);
  });
});
