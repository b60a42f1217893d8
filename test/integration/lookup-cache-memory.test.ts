/**
 * The lookup cache keeps within its budget (ASOF_LOOKUP_CACHE_MB) whatever
 * the values' size: it charges an evaluation for its strings and the text
 * rendered of them, not a fixed amount a value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heapAfterGc, ok, testAsof } from '../helpers.js';

test('a 1 MB lookup cache over 1,000 values of 10,000 characters keeps about 1 MB of their text, not all of it', async () => {
  // The rendered text is kept in buffers, outside the heap.
  const kept = (): number => heapAfterGc() + process.memoryUsage().arrayBuffers;
  const asof = await testAsof({ lookupCacheMb: 1 });
  try {
    await ok(asof.req('PUT', '/tables/docs', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'text', type: 'string', nullable: true }] }), 201);
    const text = (id: number): string => `${id}:`.padEnd(10_000, 'lorem ipsum ');
    for (let b = 0; b < 10; b++) await ok(asof.req('POST', '/tables/docs/rows', { rows: Array.from({ length: 100 }, (_, i) => ({ id: b * 100 + i, text: text(b * 100 + i) })) }));
    await ok(asof.req('PUT', '/feature-views/doc', { source: 'docs', entity: 'id', features: [{ name: 'text', column: 'text' }] }), 201);
    const before = kept();
    // Twice each: the cache admits an evaluation on its second miss, and keeps its rendered text with it.
    for (let round = 0; round < 2; round++) {
      for (let id = 0; id < 1000; id++) {
        const r = await asof.req('GET', `/features/${id}?view=doc`);
        assert.equal(r.body.features['doc:text'], text(id));
      }
    }
    const grown = kept() - before;
    assert.ok(grown < 4e6, `the lookups left ${(grown / 1e6).toFixed(1)} MB behind (the values' text is 10 MB; the budget 1 MB)`);
  } finally {
    await asof.destroy();
  }
});
