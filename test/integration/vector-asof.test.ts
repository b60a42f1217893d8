/**
 * A vector search's `asOf` when no Lance version fits: before the table's
 * first write the table held no rows (an empty answer, saying so); before
 * any flush the changelog is scanned and the answer says that no version was
 * written yet, not that versions were removed. Expected values by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ok, testAsof } from '../helpers.js';

test('asOf before the first write answers no rows and says why; before any flush it says no Lance version was written yet', async () => {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const a = await testAsof({ vectorFlushMs: 3_600_000 }, { now: () => clock });
  try {
    await ok(a.req('PUT', '/tables/docs', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'emb', type: 'vector<2>' }] }), 201);
    const created = clock;
    clock += 1000;
    await ok(a.req('POST', '/tables/docs/rows', { rows: [{ id: 'a', emb: [1, 0] }] }));
    const first = clock;
    clock += 1000;
    await ok(a.req('POST', '/tables/docs/rows', { rows: [{ id: 'b', emb: [0, 1] }] }));
    clock += 1000;
    const search = (asOf: number) => ok(a.req('POST', '/vectors/search', { table: 'docs', vector: [1, 0], k: 5, asOf }));

    let s = await search(created);
    assert.deepEqual(s.results, []);
    assert.deepEqual(s.token, { docs: -1 });
    assert.equal(s.search.asOfSource, 'changelog');
    assert.match(s.search.reason, /^asOf is before the table's first write: it held no rows then/);

    s = await search(first);
    assert.deepEqual(s.results.map((h: any) => h.key), ['a']);
    assert.match(s.search.reason, /^no Lance version has been written yet: the changelog was scanned$/);

    await a.services.vectors.column('docs', 'emb')!.flushNow();
    s = await search(created);
    assert.deepEqual(s.results, []);
    assert.match(s.search.reason, /^asOf is before the table's first write/);
    s = await search(first);
    assert.deepEqual(s.results.map((h: any) => h.key), ['a']);
    assert.match(s.search.reason, /^no Lance version kept is that old/);
  } finally {
    await a.destroy();
  }
});
