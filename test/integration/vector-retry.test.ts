/**
 * A vector column's flush that fails after Lance took its rows (a real Lance
 * dataset in a temp folder; one LanceDB call made to throw once, in the
 * LanceDB thread, test/fixtures/lance-faults.ts) is retried without writing
 * them twice: searches find each record once, before and after the retry.
 * Lance's own add or merge-insert committing and then throwing included, also
 * when the column's handle did not see the commit (a delete or merge-insert
 * through that handle missed the rows, and they were in Lance twice).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostModule, lanceHost } from '../../src/engine/lance-host.js';
import { vectorLocations } from '../../src/vectors/service.js';
import { testAsof, type TestAsof } from '../helpers.js';

const FAULTS = hostModule('../fixtures/lance-faults', import.meta.url);

test('log table: a flush whose version() fails after the append landed is retried, each record in Lance and in searches once', async () => {
  const a = await testAsof({ vectorFlushMs: 3_600_000 });
  try {
    const put = await a.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'emb', type: 'vector<2>' }] });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    await a.req('POST', '/tables/ev/rows', { rows: [{ ts: 1000, emb: [1, 0] }, { ts: 2000, emb: [0, 1] }, { ts: 3000, emb: [1, 1] }] });
    const col = a.services.vectors.column('ev', 'emb')!;
    await col.ready;
    const offsets = async () => {
      const s = await a.req('POST', '/vectors/search', { table: 'ev', vector: [1, 0], k: 10 });
      assert.equal(s.status, 200, JSON.stringify(s.body));
      return s.body.results.map((h: any) => h.offset).sort();
    };

    await lanceHost().call(FAULTS, 'failNext', ['version']);
    await assert.rejects(col.flushNow(), /injected version failure/);
    assert.equal(await lanceHost().call(FAULTS, 'injectedCount', ['version']), 1);
    // The rows are in Lance and still in memory: a search shows each once.
    assert.equal(await col.lance.countRows(), 3);
    assert.deepEqual(await offsets(), [0, 1, 2]);

    await col.flushNow();
    assert.equal(col.hotRows, 0);
    assert.equal(await col.lance.countRows(), 3);
    assert.deepEqual(await offsets(), [0, 1, 2]);

    // Later records go on as usual.
    await a.req('POST', '/tables/ev/rows', { rows: [{ ts: 4000, emb: [2, 0] }] });
    await col.flushNow();
    assert.equal(await col.lance.countRows(), 4);
    assert.deepEqual(await offsets(), [0, 1, 2, 3]);
  } finally {
    await a.destroy();
  }
});

/** Offsets a search of `table` finds (every row, nearest first), sorted. */
async function found(a: TestAsof, table: string): Promise<{ offsets: number[]; keys: string[] }> {
  const s = await a.req('POST', '/vectors/search', { table, vector: [1, 0], k: 50 });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  return { offsets: s.body.results.map((h: any) => h.offset).sort((x: number, y: number) => x - y), keys: s.body.results.map((h: any) => h.key).sort() };
}

for (const elsewhere of [false, true]) {
  const how = elsewhere ? 'its handle not seeing the commit' : 'through its own handle';

  test(`log table: a flush whose add commits and then fails (${how}) is retried, each record in Lance and in searches once`, async () => {
    const a = await testAsof({ vectorFlushMs: 3_600_000 });
    try {
      await lanceHost().call(FAULTS, 'reset', []);
      const put = await a.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'emb', type: 'vector<2>' }] });
      assert.equal(put.status, 201, JSON.stringify(put.body));
      await a.req('POST', '/tables/ev/rows', { rows: [{ ts: 1000, emb: [1, 0] }, { ts: 2000, emb: [0, 1] }, { ts: 3000, emb: [1, 1] }] });
      const col = a.services.vectors.column('ev', 'emb')!;
      await col.ready;

      await lanceHost().call(FAULTS, 'failAfterCommit', ['add', 1, elsewhere ? vectorLocations(a.dataDir, undefined).uri : undefined]);
      await assert.rejects(col.flushNow(), /injected add failure after its commit/);
      assert.equal(await lanceHost().call(FAULTS, 'injectedCount', ['committed:add']), 1);
      assert.deepEqual((await found(a, 'ev')).offsets, [0, 1, 2]);

      await col.flushNow();
      assert.equal(col.hotRows, 0);
      assert.equal(await col.lance.countRows(), 3);
      assert.deepEqual((await found(a, 'ev')).offsets, [0, 1, 2]);

      await a.req('POST', '/tables/ev/rows', { rows: [{ ts: 4000, emb: [2, 0] }] });
      await col.flushNow();
      assert.equal(await col.lance.countRows(), 4);
      assert.deepEqual((await found(a, 'ev')).offsets, [0, 1, 2, 3]);
    } finally {
      await a.destroy();
    }
  });

  test(`pk table: a flush whose merge-insert commits and then fails (${how}) is retried, each key in Lance and in searches once`, async () => {
    const a = await testAsof({ vectorFlushMs: 3_600_000 });
    try {
      await lanceHost().call(FAULTS, 'reset', []);
      const put = await a.req('PUT', '/tables/docs', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'emb', type: 'vector<2>' }] });
      assert.equal(put.status, 201, JSON.stringify(put.body));
      await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'a', emb: [1, 0] }, { id: 'b', emb: [0, 1] }, { id: 'c', emb: [1, 1] }] });
      const col = a.services.vectors.column('docs', 'emb')!;
      await col.ready;

      await lanceHost().call(FAULTS, 'failAfterCommit', ['mergeInsert', 1, elsewhere ? vectorLocations(a.dataDir, undefined).uri : undefined]);
      await assert.rejects(col.flushNow(), /injected mergeInsert failure after its commit/);
      assert.equal(await lanceHost().call(FAULTS, 'injectedCount', ['committed:mergeInsert']), 1);
      assert.deepEqual((await found(a, 'docs')).keys, ['a', 'b', 'c']);

      await col.flushNow();
      assert.equal(col.hotRows, 0);
      assert.equal(await col.lance.countRows(), 3);
      assert.deepEqual((await found(a, 'docs')).keys, ['a', 'b', 'c']);

      await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'a', emb: [2, 0] }, { id: 'd', emb: [0, 2] }] });
      await col.flushNow();
      assert.equal(await col.lance.countRows(), 4);
      assert.deepEqual((await found(a, 'docs')).keys, ['a', 'b', 'c', 'd']);
    } finally {
      await a.destroy();
    }
  });
}

test('log table: a flush whose add fails before committing is retried, each record in Lance once', async () => {
  const a = await testAsof({ vectorFlushMs: 3_600_000 });
  try {
    await lanceHost().call(FAULTS, 'reset', []);
    const put = await a.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'emb', type: 'vector<2>' }] });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    await a.req('POST', '/tables/ev/rows', { rows: [{ ts: 1000, emb: [1, 0] }, { ts: 2000, emb: [0, 1] }] });
    const col = a.services.vectors.column('ev', 'emb')!;
    await col.ready;

    await lanceHost().call(FAULTS, 'failNext', ['add']);
    await assert.rejects(col.flushNow(), /injected add failure/);
    assert.equal(await col.lance.countRows(), 0);
    assert.deepEqual((await found(a, 'ev')).offsets, [0, 1]);

    await col.flushNow();
    assert.equal(col.hotRows, 0);
    assert.equal(await col.lance.countRows(), 2);
    assert.deepEqual((await found(a, 'ev')).offsets, [0, 1]);
  } finally {
    await a.destroy();
  }
});
