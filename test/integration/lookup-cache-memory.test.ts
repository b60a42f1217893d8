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

test('rows with distinct event times leave no rendered time parts behind; a time seen twice is kept and rendered the same', async () => {
  const asof = await testAsof();
  try {
    const names = Array.from({ length: 10 }, (_, i) => `a_rather_long_feature_name_${i}`);
    await ok(asof.req('PUT', '/tables/trips', { kind: 'pk', primaryKey: ['id'], eventTime: 'ts', columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, ...names.map((name) => ({ name, type: 'float64', nullable: true }))] }), 201);
    await ok(asof.req('PUT', '/feature-views/trip', { source: 'trips', entity: 'id', features: names.map((name) => ({ name, column: name })) }), 201);
    const ms = (id: number): number => Date.UTC(2026, 0, 1) + id * 1000;
    const rows = (from: number, n: number): object[] => Array.from({ length: n }, (_, i) => ({ id: from + i, ts: new Date(ms(from + i)).toISOString(), ...Object.fromEntries(names.map((x) => [x, from + i])) }));
    for (let b = 0; b < 20; b++) await ok(asof.req('POST', '/tables/trips/rows', { rows: rows(b * 100, 100) }));
    const lookup = async (id: number): Promise<void> => {
      const r = await ok(asof.req('GET', `/features/${id}?view=trip`));
      for (const x of names) assert.equal(r.eventTimes[`trip:${x}`], new Date(ms(id)).toISOString(), `entity ${id}, ${x}`);
    };
    // Warm: the plan, its parts, the route.
    for (let id = 1000; id < 1010; id++) await lookup(id);
    const kept = (): number => heapAfterGc() + process.memoryUsage().arrayBuffers;
    const before = kept();
    // Each time once (fewer than the 1,024 times a plan remembers): nothing is worth keeping.
    for (let id = 0; id < 1000; id++) await lookup(id);
    const grown = kept() - before;
    // A part is about 560 bytes: kept from a first use, 1,000 of them and the pooled slabs they pinned were 4.7 MB.
    assert.ok(grown < 1.5e6, `1,000 lookups of distinct times left ${(grown / 1e3).toFixed(0)} kB behind`);
    // Seen twice: the second lookup keeps the part, the third renders from it; both as the first.
    for (let round = 0; round < 2; round++) for (let id = 1100; id < 1110; id++) await lookup(id);
  } finally {
    await asof.destroy();
  }
});
