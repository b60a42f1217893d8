/**
 * A vector column's flush that fails after Lance took its rows (a real Lance
 * dataset in a temp folder; one LanceDB call made to throw once, in the
 * LanceDB thread, test/fixtures/lance-faults.ts) is retried without writing
 * them twice: searches find each record once, before and after the retry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostModule, lanceHost } from '../../src/engine/lance-host.js';
import { testAsof } from '../helpers.js';

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
