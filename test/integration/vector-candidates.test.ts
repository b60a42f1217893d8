/**
 * A vector search's candidates cross from the LanceDB thread as Lance's own
 * Arrow IPC bytes (lance-ops.ts, through lance-tier.ts ipcBatches) and the main
 * thread reads them (lance-client.ts readCandidates). Every candidate read so
 * must equal, in order, what LanceDB's public toArrow() answers for the same
 * query, and the key, offset, row and vector written for it: keys and rows
 * with non-ASCII text, offsets beyond 2^32, ANN, exact and filtered searches.
 * (This file loads LanceDB on its own main thread, in its own process: no
 * LanceDB thread runs here.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lancedb from '@lancedb/lancedb';
import { ipcBatches } from '../../src/engine/lance-tier.js';
import { readCandidates } from '../../src/vectors/lance-client.js';
import { DEFAULT_INDEX } from '../../src/vectors/service.js';
import { CANDIDATE_COLUMNS, LanceVectors, VECTOR, type StoredRow } from '../../src/vectors/lance-store.js';
import { rng } from '../../support/rng.js';
import { tempDir } from '../helpers.js';

const D = 16;

test('candidates read from the IPC bytes equal LanceDB toArrow() and the rows written, in order', async () => {
  const dir = await tempDir();
  const db = await lancedb.connect(dir.path);
  try {
    const columns = [
      { name: 'id', type: { kind: 'string' as const } },
      { name: 'n', type: { kind: 'int64' as const } },
    ];
    const store = await LanceVectors.open(db, 'docs.emb', D, columns, true);
    const r = rng(7);
    const written = new Map<string, StoredRow>();
    const rows: StoredRow[] = [];
    for (let i = 0; i < 3000; i++) {
      const key = i % 3 === 0 ? `ключ-${i}-✓` : `k${i}`;
      const row: StoredRow = {
        key,
        offset: 5_000_000_000 + i * 7,
        commitTime: 1_700_000_000_000 + i,
        rowJson: JSON.stringify({ id: key, n: i, note: i % 2 ? 'naïve café' : 'plain' }),
        vector: Float32Array.from({ length: D }, () => r() * 2 - 1),
        values: { id: key, n: i },
      };
      rows.push(row);
      written.set(key, row);
    }
    await store.upsert(rows);
    await store.buildIndex('cosine', 'hnsw_sq', rows.length);
    assert.ok(await store.indexStats(), 'the index was built');

    const queries = [
      { exact: false },
      { exact: true },
      { exact: false, where: '`n` >= 1500' },
      { exact: true, where: "`id` LIKE 'ключ%'" },
    ];
    for (const [qi, shape] of queries.entries()) {
      const vector = Float32Array.from({ length: D }, () => r() * 2 - 1);
      const q = { vector, limit: 15, metric: 'cosine' as const, params: DEFAULT_INDEX, ...shape };
      const got = readCandidates(await ipcBatches(LanceVectors.searchQuery(store.table, q)));

      let expected = store.table.vectorSearch(vector).column(VECTOR).distanceType('cosine').limit(15).select([...CANDIDATE_COLUMNS, '_distance']);
      if (shape.where) expected = expected.where(shape.where);
      if (shape.exact) expected = expected.bypassVectorIndex();
      else expected = expected.ef(Math.max(DEFAULT_INDEX.ef * 15, 64)).nprobes(DEFAULT_INDEX.nprobes);
      const want = await expected.toArrow();

      const what = `query ${qi} (${JSON.stringify(shape)})`;
      assert.equal(got.length, want.numRows, `${what}: candidates`);
      assert.ok(got.length >= 10, `${what}: enough candidates to compare (${got.length})`);
      const keys = want.getChild('_asof_key')!, offs = want.getChild('_asof_offset')!, rowsJson = want.getChild('_asof_row')!, vecs = want.getChild(VECTOR)!;
      got.forEach((c, i) => {
        assert.equal(c.key, keys.get(i), `${what}: key ${i}`);
        assert.equal(c.offset, Number(offs.get(i)), `${what}: offset ${i}`);
        assert.equal(c.rowJson, rowsJson.get(i), `${what}: row ${i}`);
        assert.deepEqual(Array.from(c.vector), Array.from((vecs.get(i) as { toArray(): Float32Array }).toArray()), `${what}: vector ${i}`);
        const w = written.get(c.key)!;
        assert.ok(w, `${what}: key ${c.key} was written`);
        assert.deepEqual([c.offset, c.rowJson, Array.from(c.vector)], [w.offset, w.rowJson, Array.from(w.vector)], `${what}: candidate ${i} as written`);
        const n = (JSON.parse(c.rowJson) as { n: number }).n;
        if (qi === 2) assert.ok(n >= 1500, `${what}: filtered`);
        if (qi === 3) assert.ok(c.key.startsWith('ключ'), `${what}: filtered`);
      });
    }
    store.close();
  } finally {
    db.close();
    await dir.cleanup();
  }
});
