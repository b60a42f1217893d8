/**
 * LanceDB runs in one thread per process (engine/lance-host.ts): two servers
 * in one process, each tiering and each with a vector column, load it in no
 * other isolate, the main thread's included, and a server closed and another
 * opened after it use the same thread. LanceDB 0.31 (napi-rs 3.9.4) crashes a
 * process whose isolates both load it, or that stops one under its native
 * calls (scripts/lance-crash.mjs, bench/RESULTS.md session 14).
 *
 * This file imports nothing that loads LanceDB: each test file runs in its
 * own process, so the main thread's module cache shows what it loaded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { lanceHost } from '../../src/engine/lance-host.js';
import { testAsof, until, type TestAsof } from '../helpers.js';

const D = 4;

async function fill(a: TestAsof, from: number): Promise<void> {
  if (from === 0) {
    const r = await a.req('PUT', '/tables/docs', {
      kind: 'pk',
      primaryKey: ['id'],
      columns: [
        { name: 'id', type: 'string', nullable: false },
        { name: 'emb', type: `vector<${D}>` },
      ],
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  const rows = Array.from({ length: 100 }, (_, i) => ({ id: `k${from + i}`, emb: [from + i, 1, 2, 3] }));
  assert.equal((await a.req('POST', '/tables/docs/rows', { rows })).status, 200);
}


/** Rows written, in Lance (vector column flushed, records tiered), and the nearest one found through Lance. */
async function settled(a: TestAsof, rows: number): Promise<void> {
  await a.services.vectors.column('docs', 'emb')!.flushNow();
  const t = a.services.engine.table('docs');
  await until('records tiered', () => t.tieredEnd === rows, 60_000);
  const s = await a.req('POST', '/vectors/search', { table: 'docs', k: 1, vector: [rows - 1, 1, 2, 3], metric: 'l2' });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  assert.equal(s.body.results[0].key, `k${rows - 1}`);
}

test('two servers with tiering and vector columns in one process: LanceDB in one thread, never the main one, kept when a server closes', async () => {
  const opts = { tierAfter: 0, hotRetention: 0, vectorFlushMs: 3_600_000 };
  const a = await testAsof(opts);
  const b = await testAsof(opts);
  let c: TestAsof | undefined;
  let aOpen = true;
  let thread: number | undefined;
  try {
    await fill(a, 0);
    await fill(b, 0);
    await Promise.all([settled(a, 100), settled(b, 100)]);
    thread = lanceHost().threadId;
    assert.ok(thread !== undefined, 'the LanceDB thread runs');
    assert.equal(lanceHost().generation, 1, 'one LanceDB thread started in the process');
    const lanceOnMain = Object.keys(createRequire(import.meta.url).cache).filter((p) => p.includes('@lancedb'));
    assert.deepEqual(lanceOnMain, [], 'the main thread loaded no LanceDB module');

    await a.destroy();
    aOpen = false;
    await fill(b, 100);
    await settled(b, 200);
    c = await testAsof(opts);
    await fill(c, 0);
    await settled(c, 100);
    assert.equal(lanceHost().threadId, thread, 'the same thread after a server closed and another opened');
    assert.equal(lanceHost().generation, 1);
  } finally {
    if (aOpen) await a.destroy();
    await b.destroy();
    await c?.destroy();
  }
  assert.equal(lanceHost().threadId, thread, 'closing every server stops no thread');
});
