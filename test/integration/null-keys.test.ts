/**
 * Log tables with a nullable key column: a record whose key is null (or, in a
 * composite key, has a null part) belongs to no key and no entity. The string
 * "null" is an ordinary key: `?key=null`, the online lookup, the audit of the
 * entity and of a decision, training sets and vector hits all find only the
 * "null" string's records, never the null-key ones (which once were kept under
 * the same key text, String(null)). Expected values are written out by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { KeyIndex } from '../../src/engine/indexes.js';
import { Engine } from '../../src/engine/engine.js';
import { captureLogger, ok, tempDir, testAsof } from '../helpers.js';
import { call, grpcAsof } from './grpc-helpers.js';

const LK = {
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['u'],
  columns: [
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'u', type: 'string', nullable: true },
  ],
};
const iso = (ms: number): string => new Date(ms).toISOString();

test('a null key is no key: ?key=null, lookup, entity audit, decision audit and training sets agree on the "null" string', async () => {
  const clock = { t: 10_000 };
  const asof = await testAsof({}, { now: () => clock.t });
  try {
    await ok(asof.req('PUT', '/tables/lk', LK), 201);
    await ok(asof.req('POST', '/tables/lk/rows', { rows: [{ ts: 1000, u: null }, { ts: 2000, u: 'null' }] }));
    await ok(asof.req('POST', '/tables/lk/rows', { rows: [{ ts: 3000, u: '' }, { ts: 4000 }] }));
    await ok(asof.req('PUT', '/feature-views/lkv', { source: 'lk', entity: 'u', features: [{ name: 't', column: 'ts' }] }), 201);

    const log = await ok(asof.req('GET', '/tables/lk/changelog?key=null'));
    assert.deepEqual(log.records.map((r: any) => [r.offset, r.row]), [[1, { ts: iso(2000), u: 'null' }]]);
    const empty = await ok(asof.req('GET', `/tables/lk/changelog?key=${encodeURIComponent('')}`));
    assert.deepEqual(empty.records.map((r: any) => r.offset), [2]);

    clock.t = 20_000;
    const served = await ok(asof.req('GET', '/features/null?view=lkv&decision=dn1'));
    assert.deepEqual(served.features, { 'lkv:t': iso(2000) });

    const entity = await ok(asof.req('GET', '/audit/entities/null?view=lkv'));
    assert.deepEqual(entity.reconstructed?.features ?? entity.features, { 'lkv:t': iso(2000) });
    assert.deepEqual(entity.trail.map((r: any) => r.offset), [1]);

    const audit = await ok(asof.req('GET', '/audit/decisions/dn1'));
    assert.deepEqual(audit.reconstructed.features, { 'lkv:t': iso(2000) });
    assert.equal(audit.match, true);
    assert.deepEqual(audit.trail.map((r: any) => r.offset), [1]);

    const ts = await ok(asof.req('POST', '/training-sets', { entities: { rows: [{ u: 'null', timestamp: 5000 }, { u: '', timestamp: 5000 }] }, features: ['lkv:t'], format: 'json' }));
    assert.deepEqual(ts.rows.map((r: any) => r.t), [iso(2000), iso(3000)]);

    // A key object with a null part names no key: refused, not answered with the "null" string's records.
    const bad = await asof.req('GET', `/tables/lk/changelog?key=${encodeURIComponent(JSON.stringify({ u: null }))}`);
    assert.equal(bad.status, 400);
  } finally {
    await asof.destroy();
  }
});

test('composite keys: a null part is not the string "null"', async () => {
  const asof = await testAsof();
  try {
    await ok(
      asof.req('PUT', '/tables/ck', {
        kind: 'log',
        eventTime: 'ts',
        primaryKey: ['a', 'b'],
        columns: [
          { name: 'ts', type: 'timestamp', nullable: false },
          { name: 'a', type: 'int64', nullable: false },
          { name: 'b', type: 'string', nullable: true },
        ],
      }),
      201,
    );
    await ok(asof.req('POST', '/tables/ck/rows', { rows: [{ ts: 1, a: 1, b: null }, { ts: 2, a: 1, b: 'null' }, { ts: 3, a: 1 }, { ts: 4, a: 2, b: 'null' }] }));
    const key = encodeURIComponent(JSON.stringify({ a: 1, b: 'null' }));
    const log = await ok(asof.req('GET', `/tables/ck/changelog?key=${key}`));
    assert.deepEqual(log.records.map((r: any) => r.offset), [1]);
    const bad = await asof.req('GET', `/tables/ck/changelog?key=${encodeURIComponent(JSON.stringify({ a: 1, b: null }))}`);
    assert.equal(bad.status, 400);
  } finally {
    await asof.destroy();
  }
});

/**
 * Rewrites a table's snapshot as one of the version before: magic "ANS2", and a
 * key index `keys` (offsets by key, ascending) in place of its own; CRC fixed.
 */
async function asOlderSnapshot(path: string, keys: [string, number[]][]): Promise<void> {
  const buf = await readFile(path);
  const [state, frames, oldKeys] = [32, 40, 48].map((at) => buf.readDoubleLE(at));
  const idx = new KeyIndex(false);
  for (const [k, offsets] of keys) for (const o of offsets) idx.add(k, o);
  const keyBytes = idx.serialize();
  const head = Buffer.from(buf.subarray(0, 64));
  const body = Buffer.concat([buf.subarray(64, 64 + state + frames), keyBytes, buf.subarray(64 + state + frames + oldKeys)]);
  head.writeUInt32LE(0x32534e41, 0); // "ANS2"
  head.writeDoubleLE(keyBytes.length, 48);
  head.writeUInt32LE(crc32(body, crc32(head.subarray(8, 56))), 56);
  await writeFile(path, Buffer.concat([head, body]));
}

test('a snapshot written before (its key index files null keys under "null") is not used for a table with a nullable key column; others still are', async () => {
  const dir = await tempDir();
  try {
    const asof = await testAsof({}, { dataDir: dir.path });
    await ok(asof.req('PUT', '/tables/lk', LK), 201);
    await ok(asof.req('POST', '/tables/lk/rows', { rows: [{ ts: 1000, u: null }, { ts: 2000, u: 'null' }, { ts: 3000, u: '' }, { ts: 4000 }] }));
    await ok(asof.req('PUT', '/tables/kk', { ...LK, columns: [LK.columns[0], { name: 'u', type: 'string', nullable: false }] }), 201);
    await ok(asof.req('POST', '/tables/kk/rows', { rows: [{ ts: 1000, u: 'a' }, { ts: 2000, u: 'null' }] }));
    await asof.destroy(); // snapshots both tables (the folder is the test's: it stays)
    const snap = (t: string) => join(dir.path, 'tables', t, 'state.snapshot');
    // What the version before wrote for lk: offsets 0, 1 and 3 under "null".
    await asOlderSnapshot(snap('lk'), [['null', [0, 1, 3]], ['', [2]]]);
    await asOlderSnapshot(snap('kk'), [['a', [0]], ['null', [1]]]);
    const { logger, lines } = captureLogger();
    const engine = await Engine.open({ dataDir: dir.path, logger });
    try {
      const unusable = lines.filter((l) => /snapshot unusable/.test(l.msg ?? '')).map((l) => l.obj.table);
      assert.deepEqual(unusable, ['lk']);
      assert.deepEqual(engine.table('lk').offsetsOf('null'), [1]);
      assert.deepEqual(engine.table('kk').offsetsOf('null'), [1]);
    } finally {
      await engine.close();
    }
  } finally {
    await dir.cleanup();
  }
});

test('vector hits (REST and gRPC): a log row whose key is null has no key and no features, never the "null" string\'s', async () => {
  const asof = await grpcAsof({ vectorFlushMs: 3_600_000 });
  try {
    await ok(asof.req('PUT', '/tables/lv', { ...LK, columns: [...LK.columns, { name: 'emb', type: 'vector<2>', nullable: true }] }), 201);
    await ok(asof.req('PUT', '/feature-views/lvv', { source: 'lv', entity: 'u', features: [{ name: 't', column: 'ts' }] }), 201);
    await ok(asof.req('POST', '/tables/lv/rows', { rows: [{ ts: 1000, u: null, emb: [1, 0] }, { ts: 2000, u: 'null', emb: [0, 1] }] }));
    const r = await ok(asof.req('POST', '/vectors/search', { table: 'lv', vector: [1, 0.1], k: 2, metric: 'l2', features: ['lvv:t'] }));
    assert.deepEqual(
      r.results.map((h: any) => [h.key, h.row.u, h.features?.features ?? null]),
      [
        [null, null, null],
        ['null', 'null', { 'lvv:t': iso(2000) }],
      ],
    );
    const { res, err } = await call(asof.vectors, 'Search', { table: 'lv', vector: [1, 0.1], k: 2, metric: 'METRIC_L2', features: ['lvv:t'] });
    assert.equal(err, undefined);
    assert.deepEqual(
      res.results.map((h: any) => [h.key ?? null, h.features?.entity?.string_value ?? null]),
      [
        [null, null],
        ['null', 'null'],
      ],
    );
  } finally {
    await asof.destroy();
  }
});
