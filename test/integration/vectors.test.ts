/**
 * POST /vectors/search over real Lance datasets in temp folders: freshness
 * (an acknowledged write is found by the next search, before and after it
 * reaches Lance), one latest version per key, deletes gone also after a
 * restart, asOf, metrics, errors. Expected answers come from a brute-force
 * oracle over the rows the test wrote, never from the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testAsof, tempDir, type TestAsof } from '../helpers.js';
import { rng } from '../../support/rng.js';

const D = 8;
/** Deterministic vectors: a few clusters with noise (seeded). */
function vec(r: () => number): number[] {
  return Array.from({ length: D }, () => Math.fround(r() * 2 - 1));
}
/** The oracle: squared L2 / cosine over float32 values, in doubles. */
function dist(metric: string, a: number[], b: number[]): number {
  let ab = 0, aa = 0, bb = 0, l2 = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
    l2 += (a[i] - b[i]) ** 2;
  }
  return metric === 'l2' ? l2 : metric === 'dot' ? -ab : 1 - ab / Math.sqrt(aa * bb);
}
function topK(rows: Map<string, { id: string; v: number[] }>, q: number[], k: number, metric = 'cosine'): string[] {
  return [...rows.values()]
    .map((r) => ({ id: r.id, d: dist(metric, q, r.v) }))
    .sort((a, b) => a.d - b.d)
    .slice(0, k)
    .map((r) => r.id);
}

async function pkTable(a: TestAsof, name = 'docs', metric?: string): Promise<void> {
  const r = await a.req('PUT', `/tables/${name}`, {
    kind: 'pk',
    primaryKey: ['id'],
    columns: [
      { name: 'id', type: 'string', nullable: false },
      { name: 'cat', type: 'string' },
      { name: 'n', type: 'int64' },
      { name: 'emb', type: `vector<${D}>`, ...(metric ? { metric } : {}) },
    ],
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

const search = (a: TestAsof, body: Record<string, unknown>) => a.req('POST', '/vectors/search', { table: 'docs', k: 5, ...body });

test('an upserted row is found by the next search, an updated vector only in its new version, a deleted key never, also after a restart', async () => {
  const dir = await tempDir();
  // A long flush interval: the first searches find rows only in memory; flushNow moves them into Lance.
  let a = await testAsof({ vectorFlushMs: 3_600_000 }, { dataDir: dir.path });
  try {
    await pkTable(a);
    const r = rng(1);
    const rows = new Map<string, { id: string; v: number[] }>();
    const batch = Array.from({ length: 200 }, (_, i) => ({ id: `k${i}`, cat: i % 2 ? 'odd' : 'even', n: i, emb: vec(r) }));
    for (const b of batch) rows.set(b.id, { id: b.id, v: b.emb });
    assert.equal((await a.req('POST', '/tables/docs/rows', { rows: batch })).status, 200);

    // Found by the next search (memory only).
    const target = batch[17];
    let s = await search(a, { vector: target.emb, k: 1 });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.equal(s.body.results[0].key, 'k17');
    assert.ok(Math.abs(s.body.results[0].distance) < 1e-6);
    assert.deepEqual(s.body.results[0].row.emb, target.emb);
    assert.equal(s.body.token.docs, 199);

    await a.services.vectors.column('docs', 'emb')!.flushNow();
    const q = vec(r);
    s = await search(a, { vector: q, k: 10 });
    assert.deepEqual(s.body.results.map((x: any) => x.key), topK(rows, q, 10));

    // Update k17's vector (now only in memory while the old one is in Lance): the old vector finds nothing of k17.
    const moved = vec(r);
    assert.equal((await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'k17', cat: 'odd', n: 17, emb: moved }] })).status, 200);
    rows.set('k17', { id: 'k17', v: moved });
    s = await search(a, { vector: target.emb, k: 200 });
    const k17 = s.body.results.filter((x: any) => x.key === 'k17');
    assert.equal(k17.length, 1, 'one version per key');
    assert.deepEqual(k17[0].row.emb, moved);
    assert.ok(Math.abs(k17[0].distance - dist('cosine', target.emb, moved)) < 1e-5);
    s = await search(a, { vector: moved, k: 1 });
    assert.equal(s.body.results[0].key, 'k17');

    // Delete k5 (in Lance): never again, in memory, after the flush, after a restart.
    assert.equal((await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'k5' }], op: 'delete' })).status, 200);
    rows.delete('k5');
    const k5 = batch[5].emb;
    s = await search(a, { vector: k5, k: 200 });
    assert.ok(!s.body.results.some((x: any) => x.key === 'k5'));
    assert.equal(s.body.results.length, 199);
    await a.services.vectors.column('docs', 'emb')!.flushNow();
    s = await search(a, { vector: k5, k: 200 });
    assert.ok(!s.body.results.some((x: any) => x.key === 'k5'));
    // Deleted again after the flush, but before a restart nothing flushes it: it sits in memory only.
    assert.equal((await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'k6' }], op: 'delete' })).status, 200);
    rows.delete('k6');
    await a.close();
    a = await testAsof({ vectorFlushMs: 3_600_000 }, { dataDir: dir.path });
    for (const v of [k5, batch[6].emb]) {
      s = await search(a, { vector: v, k: 200 });
      assert.equal(s.status, 200);
      assert.ok(!s.body.results.some((x: any) => x.key === 'k5' || x.key === 'k6'));
      assert.equal(s.body.results.length, 198);
    }
    s = await search(a, { vector: q, k: 10 });
    assert.deepEqual(s.body.results.map((x: any) => x.key), topK(rows, q, 10));

    // features: each hit's online features exactly as GET /features/{key} answers them.
    assert.equal((await a.req('PUT', '/feature-views/dv', { source: 'docs', entity: 'id', features: [{ name: 'cat', column: 'cat' }, { name: 'n', column: 'n' }] })).status, 201);
    s = await search(a, { vector: q, k: 3, features: ['dv:cat', 'dv:n'] });
    assert.equal(s.body.results.length, 3);
    for (const hit of s.body.results) {
      const g = await a.req('GET', `/features/${hit.key}?features=dv:cat,dv:n`);
      assert.deepEqual(hit.features, g.body);
      assert.equal(hit.features.features['dv:n'], Number(hit.key.slice(1)));
    }
  } finally {
    await a.close();
    await dir.cleanup();
  }
});

test('other metrics are exact; errors name the field', async () => {
  const a = await testAsof({ vectorFlushMs: 3_600_000 });
  try {
    await pkTable(a, 'docs', 'l2');
    const r = rng(2);
    const rows = new Map<string, { id: string; v: number[] }>();
    const batch = Array.from({ length: 100 }, (_, i) => ({ id: `k${i}`, cat: 'x', n: i, emb: vec(r) }));
    for (const b of batch) rows.set(b.id, { id: b.id, v: b.emb });
    await a.req('POST', '/tables/docs/rows', { rows: batch.slice(0, 50) });
    await a.services.vectors.column('docs', 'emb')!.flushNow();
    await a.req('POST', '/tables/docs/rows', { rows: batch.slice(50) });
    const q = vec(r);
    for (const metric of ['l2', 'cosine', 'dot']) {
      const s = await search(a, { vector: q, k: 20, metric });
      assert.equal(s.status, 200, JSON.stringify(s.body));
      assert.deepEqual(s.body.results.map((x: any) => x.key), topK(rows, q, 20, metric), metric);
      for (const x of s.body.results) assert.ok(Math.abs(x.distance - dist(metric, q, rows.get(x.key)!.v)) < 1e-4);
    }
    const info = await a.req('GET', '/tables/docs');
    assert.equal(info.body.columns[3].metric, 'l2');

    const bad = async (body: Record<string, unknown>, status: number, field?: string) => {
      const s = await a.req('POST', '/vectors/search', { table: 'docs', vector: q, k: 3, ...body });
      assert.equal(s.status, status, JSON.stringify(s.body));
      if (field) assert.ok(JSON.stringify(s.body.error.details).includes(field), JSON.stringify(s.body));
    };
    await bad({ table: 'nope' }, 404);
    await bad({ column: 'cat' }, 400, 'column');
    await bad({ column: 'zzz' }, 400, 'column');
    await bad({ vector: [1, 2] }, 400, 'vector');
    // Finite as a double, Infinity as the float32 the search runs in.
    await bad({ vector: [1e39, ...q.slice(1)] }, 400, 'vector[0]');
    await bad({ k: 0 }, 400, 'k');
    await bad({ metric: 'manhattan' }, 400, 'metric');
    await bad({ filter: { nope: 1 } }, 400, 'filter.nope');
    await bad({ filter: { n: { gt: 'x' } } }, 400, 'filter.n.gt');
    await bad({ filter: { emb: 1 } }, 400, 'filter.emb');
    await bad({ features: ['nov:f'] }, 404);
    await bad({ asOf: 'yesterday' }, 400, 'asOf');
    const put = await a.req('PUT', '/tables/bad', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false, metric: 'l2' }] });
    assert.equal(put.status, 400);
    const change = await a.req('PUT', '/tables/docs', {
      kind: 'pk',
      primaryKey: ['id'],
      columns: [
        { name: 'id', type: 'string', nullable: false },
        { name: 'cat', type: 'string' },
        { name: 'n', type: 'int64' },
        { name: 'emb', type: `vector<${D}>`, metric: 'dot' },
      ],
    });
    assert.equal(change.status, 409);
  } finally {
    await a.destroy();
  }
});

test('asOf finds a vector that was later replaced, from a Lance version and from the changelog alone', async () => {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const a = await testAsof({ vectorFlushMs: 3_600_000 }, { now: () => clock });
  try {
    await pkTable(a);
    const col = () => a.services.vectors.column('docs', 'emb')!;
    const r = rng(3);
    const old = vec(r);
    await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'a', cat: 'x', n: 1, emb: old }, { id: 'b', cat: 'x', n: 2, emb: vec(r) }] });
    const before = clock;
    clock += 1000;
    // Searched before any Lance version exists: the changelog is scanned.
    const moved = vec(r);
    await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'a', cat: 'x', n: 1, emb: moved }] });
    clock += 1000;
    let s = await search(a, { vector: old, k: 1, asOf: before });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.equal(s.body.results[0].key, 'a');
    assert.deepEqual(s.body.results[0].row.emb, old);
    assert.equal(s.body.search.asOfSource, 'changelog');
    assert.equal(s.body.token.docs, 1);

    // Flush twice: version 1 holds the old vector, version 2 the new one.
    await col().flushNow();
    clock += 1000;
    await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'c', cat: 'y', n: 3, emb: vec(r) }] });
    const afterC = clock;
    clock += 1000;
    await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'a' }], op: 'delete' });
    await col().flushNow();
    clock += 1000;
    s = await search(a, { vector: moved, k: 3, asOf: afterC });
    assert.equal(s.body.search.asOfSource, 'lance');
    assert.equal(s.body.results[0].key, 'a');
    assert.deepEqual(s.body.results[0].row.emb, moved);
    assert.deepEqual(s.body.results.map((x: any) => x.key).sort(), ['a', 'b', 'c']);
    // The same time as RFC 3339 text; and now: a is gone.
    s = await search(a, { vector: moved, k: 3, asOf: new Date(afterC).toISOString() });
    assert.equal(s.body.results[0].key, 'a');
    s = await search(a, { vector: moved, k: 3 });
    assert.deepEqual(s.body.results.map((x: any) => x.key).sort(), ['b', 'c']);
  } finally {
    await a.destroy();
  }
});

test('log tables: every record is searchable; a crash between a Lance commit and the position file duplicates nothing', async () => {
  const dir = await tempDir();
  let a = await testAsof({ vectorFlushMs: 3_600_000 }, { dataDir: dir.path });
  try {
    const put = await a.req('PUT', '/tables/events', {
      kind: 'log',
      eventTime: 'at',
      primaryKey: ['user'],
      columns: [
        { name: 'at', type: 'timestamp', nullable: false },
        { name: 'user', type: 'string', nullable: false },
        { name: 'emb', type: `vector<${D}>` },
      ],
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const r = rng(5);
    const v = vec(r);
    // The same user three times with the same vector, and a record without a vector.
    const rows = [0, 1, 2].map((i) => ({ at: 1000 + i, user: 'u1', emb: v }));
    await a.req('POST', '/tables/events/rows', { rows: [...rows, { at: 2000, user: 'u2', emb: null }] });
    const search = (k: number) => a.req('POST', '/vectors/search', { table: 'events', vector: v, k });
    let s = await search(10);
    assert.deepEqual(s.body.results.map((x: any) => [x.key, x.offset]), [['u1', 0], ['u1', 1], ['u1', 2]]);
    const col = a.services.vectors.column('events', 'emb')!;
    await col.flushNow();
    await a.req('POST', '/tables/events/rows', { rows: [{ at: 3000, user: 'u3', emb: v }] });
    s = await search(10);
    assert.deepEqual(s.body.results.map((x: any) => x.offset).sort(), [0, 1, 2, 4]);
    await col.flushNow();
    await a.close();
    // As if the process died after Lance committed offset 4 but before the position file said so.
    const posPath = join(dir.path, 'vectors', 'events.emb.json');
    const pos = JSON.parse(await readFile(posPath, 'utf8'));
    pos.offset = 3;
    pos.versions = pos.versions.filter((m: any) => m.offset <= 3);
    await writeFile(posPath, JSON.stringify(pos));
    a = await testAsof({ vectorFlushMs: 3_600_000 }, { dataDir: dir.path });
    s = await search(10);
    assert.deepEqual(s.body.results.map((x: any) => x.offset).sort(), [0, 1, 2, 4]);
    await a.services.vectors.column('events', 'emb')!.flushNow();
    s = await search(10);
    assert.deepEqual(s.body.results.map((x: any) => x.offset).sort(), [0, 1, 2, 4]);
    assert.equal(await a.services.vectors.column('events', 'emb')!.lance.countRows(), 4);
    // A missing position file: the state is rebuilt from the changelog.
    await a.close();
    await rm(posPath);
    a = await testAsof({ vectorFlushMs: 3_600_000 }, { dataDir: dir.path });
    s = await search(10);
    assert.deepEqual(s.body.results.map((x: any) => x.offset).sort(), [0, 1, 2, 4]);
  } finally {
    await a.close();
    await dir.cleanup();
  }
});

test('vector elements are stored as float32, the same before and after a restart; one beyond float32 range is refused and writes nothing', async () => {
  const a = await testAsof();
  const dir = a.dataDir;
  const sent = [0.1, -0.2, 1 / 3, 1e-3, 2, 0, 0.7, -1];
  try {
    await pkTable(a);
    const refused = await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'ok', emb: sent }, { id: 'big', emb: [0, 1e39, 0, 0, 0, 0, 0, 0] }] });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    const detail = refused.body.error.details[0];
    assert.equal(detail.row, 1);
    assert.equal(detail.field, 'emb');
    assert.match(detail.reason, /element 1 .*float32 range/);
    assert.equal((await a.req('GET', '/tables/docs/rows/ok')).status, 404, 'a refused batch writes no row');
    await a.req('POST', '/tables/docs/rows', { rows: [{ id: 'ok', emb: sent }] });
    const want = sent.map((x) => Math.fround(x));
    assert.deepEqual((await a.req('GET', '/tables/docs/rows/ok')).body.row.emb, want, 'served before a restart');
    await a.close();
    const b = await testAsof({}, { dataDir: dir });
    try {
      assert.deepEqual((await b.req('GET', '/tables/docs/rows/ok')).body.row.emb, want, 'served after a restart');
    } finally {
      await b.destroy();
    }
  } catch (e) {
    await a.destroy();
    throw e;
  }
});

test('log tables: an asOf older than every Lance version scans the changelog and finds the k nearest of 10,000 records before that time, with a filter', async () => {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const a = await testAsof({ vectorFlushMs: 3_600_000 }, { now: () => clock });
  try {
    const put = await a.req('PUT', '/tables/events', {
      kind: 'log',
      eventTime: 'at',
      columns: [
        { name: 'at', type: 'timestamp', nullable: false },
        { name: 'cat', type: 'string', nullable: false },
        { name: 'emb', type: `vector<${D}>` },
      ],
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const r = rng(8);
    const sent: { offset: number; cat: string; v: number[] }[] = [];
    for (let b = 0; b < 12; b++) {
      const rows = Array.from({ length: 1000 }, (_, i) => ({ at: clock, cat: (b * 1000 + i) % 3 ? 'x' : 'y', emb: vec(r) }));
      await a.req('POST', '/tables/events/rows', { rows });
      rows.forEach((row) => sent.push({ offset: sent.length, cat: row.cat, v: row.emb }));
      clock += 1000;
    }
    // The asOf: after the 10th batch; the last two are later.
    const asOf = Date.parse('2026-01-01T00:00:09.500Z');
    await a.services.vectors.column('events', 'emb')!.flushNow();
    const q = vec(r);
    for (const filter of [undefined, { cat: 'y' }]) {
      const s = await a.req('POST', '/vectors/search', { table: 'events', vector: q, k: 25, asOf, ...(filter ? { filter } : {}) });
      assert.equal(s.status, 200, JSON.stringify(s.body));
      assert.equal(s.body.search.asOfSource, 'changelog');
      const want = sent
        .filter((x) => x.offset < 10_000 && (!filter || x.cat === filter.cat))
        .map((x) => ({ offset: x.offset, d: dist('cosine', q, x.v) }))
        .sort((x, y) => x.d - y.d || x.offset - y.offset)
        .slice(0, 25)
        .map((x) => x.offset);
      assert.deepEqual(s.body.results.map((x: any) => x.offset), want, JSON.stringify(filter));
    }
  } finally {
    await a.destroy();
  }
});
