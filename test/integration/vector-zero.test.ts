/**
 * All-zero vectors in a cosine column: a zero vector has cosine distance 1 to
 * every query (src/vectors/distance.ts, README), in memory, once flushed to a
 * real Lance dataset (whose own cosine search drops such rows), with the ANN
 * index trained, and in asOf searches of a Lance version. Expected answers
 * come from a brute-force oracle over the rows the test wrote.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';
import { rng } from '../../support/rng.js';

const D = 8;

/** The oracle: cosine distance in doubles, 1 when either vector is all zeros. */
function cosine(a: number[], b: number[]): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return aa === 0 || bb === 0 ? 1 : 1 - ab / Math.sqrt(aa * bb);
}

interface Sent {
  offset: number;
  key: string;
  lang: string;
  v: number[];
}

/** The k nearest of `rows` (ties: the lower offset), as [key, offset]. */
function nearest(rows: Sent[], q: number[], k: number, lang?: string): [string, number][] {
  return rows
    .filter((r) => lang === undefined || r.lang === lang)
    .map((r) => ({ r, d: cosine(q, r.v) }))
    .sort((a, b) => a.d - b.d || a.r.offset - b.r.offset)
    .slice(0, k)
    .map(({ r }) => [r.key, r.offset]);
}

const f32 = (xs: number[]): number[] => xs.map((x) => Math.fround(x));

async function docsTable(a: TestAsof): Promise<void> {
  const put = await a.req('PUT', '/tables/docs', {
    kind: 'log',
    eventTime: 'at',
    primaryKey: ['doc_id'],
    columns: [
      { name: 'at', type: 'timestamp', nullable: false },
      { name: 'doc_id', type: 'string', nullable: false },
      { name: 'lang', type: 'string' },
      { name: 'emb', type: `vector<${D}>` },
    ],
  });
  assert.equal(put.status, 201, JSON.stringify(put.body));
}

async function write(a: TestAsof, sent: Sent[], rows: { doc_id: string; lang: string; emb: number[] }[], at: number): Promise<void> {
  const r = await a.req('POST', '/tables/docs/rows', { rows: rows.map((x) => ({ at, ...x })) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  for (const x of rows) sent.push({ offset: sent.length, key: x.doc_id, lang: x.lang, v: f32(x.emb) });
}

async function search(a: TestAsof, body: Record<string, unknown>): Promise<any> {
  const s = await a.req('POST', '/vectors/search', { table: 'docs', ...body });
  assert.equal(s.status, 200, JSON.stringify(s.body));
  return s.body;
}

const pairs = (b: any): [string, number][] => b.results.map((h: any) => [h.key, h.offset]);

test('a zero vector is found at cosine distance 1 in memory, after the flush to Lance, and in an asOf search of a Lance version', async () => {
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const a = await testAsof({ vectorFlushMs: 3_600_000 }, { now: () => clock });
  try {
    await docsTable(a);
    const col = () => a.services.vectors.column('docs', 'emb')!;
    const r = rng(11);
    const sent: Sent[] = [];
    const zero = new Array(D).fill(0);
    const vec = () => Array.from({ length: D }, () => r() * 2 - 1);
    await write(a, sent, [{ doc_id: 'z1', lang: 'en', emb: zero }, ...Array.from({ length: 30 }, (_, i) => ({ doc_id: `d${i}`, lang: 'en', emb: vec() })), { doc_id: 'z2', lang: 'zz', emb: zero }], 1000);
    const q = vec();
    const check = async (what: string, extra: Record<string, unknown> = {}, rows = sent) => {
      const only = await search(a, { vector: q, k: 5, filter: { lang: 'zz' }, ...extra });
      assert.deepEqual(only.results.map((h: any) => [h.key, h.distance]), [['z2', 1]], `${what}: the zero vector alone`);
      const all = await search(a, { vector: q, k: 100, ...extra });
      assert.deepEqual(pairs(all), nearest(rows, q, 100), `${what}: every row, in order`);
      for (const h of all.results) assert.ok(Math.abs(h.distance - cosine(q, rows[h.offset].v)) < 1e-6, `${what}: distance of ${h.key}`);
      return all;
    };
    await check('in memory');
    await col().flushNow();
    assert.equal(col().hotRows, 0, 'every row is in Lance');
    await check('in Lance');
    const before = clock;
    clock += 1000;
    await write(a, sent, [{ doc_id: 'z3', lang: 'zz', emb: zero }, { doc_id: 'd99', lang: 'en', emb: vec() }], 2000);
    await col().flushNow();
    clock += 1000;
    const s = await check('asOf, from a Lance version', { asOf: before }, sent.slice(0, 32));
    assert.equal(s.search.asOfSource, 'lance');
    // Another metric is Lance's exact scan, which has always answered zero vectors.
    const l2 = await search(a, { vector: q, k: 100, metric: 'l2' });
    assert.equal(l2.results.length, sent.length);
  } finally {
    await a.destroy();
  }
});

test('with the ANN index: zero vectors are answered when the k nearest reach distance 1, and every row when k covers them all', async () => {
  const a = await testAsof({ vectorFlushMs: 3_600_000, vectorIndexMinRows: 300 });
  try {
    await docsTable(a);
    const r = rng(12);
    const sent: Sent[] = [];
    const q = Array.from({ length: D }, () => r() * 2 - 1);
    const rows: { doc_id: string; lang: string; emb: number[] }[] = [];
    for (let i = 0; i < 1000; i++) {
      // 10 zero vectors; 5 rows near the query; the rest opposite it (cosine distance above 1).
      const kind = i % 100 === 37 ? 'zero' : i % 200 === 11 ? 'near' : 'far';
      const emb = kind === 'zero' ? new Array(D).fill(0) : q.map((x) => (kind === 'near' ? x : -x) + (r() - 0.5) * 0.3);
      rows.push({ doc_id: `${kind}${i}`, lang: i % 2 ? 'odd' : 'even', emb });
    }
    await write(a, sent, rows, 1000);
    const col = a.services.vectors.column('docs', 'emb')!;
    await col.settle();
    assert.equal(col.indexMetric, 'cosine', 'the index is trained');
    assert.equal(col.hotRows, 0);

    let s = await search(a, { vector: q, k: 1000 });
    assert.equal(s.search.index, 'ann');
    assert.equal(s.results.length, 1000);
    assert.deepEqual(pairs(s), nearest(sent, q, 1000));
    for (const k of [5, 8, 15]) {
      s = await search(a, { vector: q, k });
      assert.deepEqual(pairs(s), nearest(sent, q, k), `k ${k}`);
    }
    // Beyond them, the far rows (all near distance 2) are the index's approximate answer.
    s = await search(a, { vector: q, k: 40 });
    assert.equal(s.results.length, 40);
    assert.deepEqual(pairs(s).slice(0, 15), nearest(sent, q, 15), 'k 40: the near and zero rows first');
    s = await search(a, { vector: q, k: 12, filter: { lang: 'odd' } });
    assert.deepEqual(pairs(s), nearest(sent, q, 12, 'odd'), 'filtered');
    assert.ok(s.results.some((h: any) => h.key.startsWith('zero')), 'the filter keeps zero vectors');
  } finally {
    await a.destroy();
  }
});

test('pk tables: a key whose vector becomes zero, or stops being zero, answers once, in its latest version, before and after the flush', async () => {
  const a = await testAsof({ vectorFlushMs: 3_600_000 });
  try {
    const put = await a.req('PUT', '/tables/items', {
      kind: 'pk',
      primaryKey: ['id'],
      columns: [
        { name: 'id', type: 'string', nullable: false },
        { name: 'emb', type: `vector<${D}>` },
      ],
    });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    const col = a.services.vectors.column('items', 'emb')!;
    const zero = new Array(D).fill(0);
    const q = [1, 0, 0, 0, 0, 0, 0, 0];
    const away = [-1, 0.5, 0, 0, 0, 0, 0, 0];
    const hits = async () => {
      const s = await a.req('POST', '/vectors/search', { table: 'items', vector: q, k: 10 });
      assert.equal(s.status, 200, JSON.stringify(s.body));
      return s.body.results.map((h: any) => [h.key, h.offset, h.distance]);
    };
    const dAway = cosine(q, f32(away));
    await a.req('POST', '/tables/items/rows', { rows: [{ id: 'a', emb: zero }, { id: 'b', emb: away }] });
    assert.deepEqual(await hits(), [['a', 0, 1], ['b', 1, dAway]]);
    await col.flushNow();
    assert.deepEqual(await hits(), [['a', 0, 1], ['b', 1, dAway]], 'flushed');
    // a stops being zero, b becomes zero: in memory, over their old versions in Lance.
    await a.req('POST', '/tables/items/rows', { rows: [{ id: 'a', emb: away }, { id: 'b', emb: zero }] });
    const want = [['b', 5, 1], ['a', 3, dAway]];
    assert.deepEqual(await hits(), want);
    await col.flushNow();
    assert.deepEqual(await hits(), want, 'flushed');
  } finally {
    await a.destroy();
  }
});

test('cosine: a query vector whose squared norm float32 cannot hold (elements near 1e-30 or 1e30) finds what its direction finds, with the ANN index and by exact scan', async () => {
  const a = await testAsof({ vectorFlushMs: 3_600_000, vectorIndexMinRows: 300 });
  try {
    await docsTable(a);
    const r = rng(13);
    const sent: Sent[] = [];
    const centers = Array.from({ length: 8 }, () => Array.from({ length: D }, () => r() * 2 - 1));
    const rows = Array.from({ length: 1000 }, (_, i) => ({ doc_id: `d${i}`, lang: i % 3 ? 'x' : 'y', emb: centers[i % 8].map((c) => c + (r() - 0.5) * 0.4) }));
    await write(a, sent, rows, 1000);
    const col = a.services.vectors.column('docs', 'emb')!;
    const q = centers[3].map((c) => c + (r() - 0.5) * 0.4);
    for (const index of ['exact', 'ann']) {
      // Flushed, not indexed yet; then with the index trained.
      if (index === 'exact') await col.flushNow();
      else await col.settle();
      assert.equal(col.hotRows, 0, 'every row is in Lance');
      for (const scale of [1, 1e-30, 1e30]) {
        const v = f32(q.map((x) => x * scale));
        let s = await search(a, { vector: v, k: 10 });
        assert.equal(s.search.index, index);
        assert.deepEqual(pairs(s), nearest(sent, v, 10), `${index}, scale ${scale}`);
        s = await search(a, { vector: v, k: 10, filter: { lang: 'y' } });
        assert.deepEqual(pairs(s), nearest(sent, v, 10, 'y'), `${index}, scale ${scale}, filtered`);
      }
    }
  } finally {
    await a.destroy();
  }
});
