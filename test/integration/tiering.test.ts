/**
 * Tiering into Lance (real datasets in a temporary folder) and union reads:
 * with ASOF_TIER_AFTER=0s and ASOF_HOT_RETENTION=0s the hot segments go, and
 * every read answers exactly what the same writes answer with tiering off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { hostModule, lanceHost } from '../../src/engine/lance-host.js';
import { testAsof, type TestAsof } from '../helpers.js';
import { deletePrefix, SHARED_REDIS_URL, sharedRedisOrSkip, uniquePrefix } from '../redis-helpers.js';

const EVENTS = {
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'string', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'amount', type: 'float64', nullable: true },
    { name: 'tags', type: 'list<string>', nullable: true },
  ],
};
const ACCOUNTS = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'name', type: 'string', nullable: true },
    { name: 'meta', type: 'struct<a:int32,b:string>', nullable: true },
    { name: 'attrs', type: 'json', nullable: true },
    { name: 'emb', type: 'vector<2>', nullable: true },
  ],
};

/** The same writes, in the same order, with one clock: the answers must not depend on where records live. */
async function load(a: TestAsof): Promise<void> {
  assert.equal((await a.req('PUT', '/tables/events', EVENTS)).status, 201);
  assert.equal((await a.req('PUT', '/tables/accounts', ACCOUNTS)).status, 201);
  for (let b = 0; b < 40; b++) {
    const rows = Array.from({ length: 25 }, (_, i) => ({ user: `u${(b * 25 + i) % 9}'x`, ts: 1_700_000_000_000 + b * 1000 + i, amount: b + i / 10, tags: i % 3 ? ['a', `t${i}`] : null }));
    assert.equal((await a.req('POST', '/tables/events/rows', { rows })).status, 200);
    const acc = Array.from({ length: 5 }, (_, i) => ({ id: (b * 5 + i) % 17, name: `n${b}-${i}`, meta: { a: b, b: `m${i}` }, attrs: i % 2 ? { k: [b, 'x'] } : null, emb: i % 3 ? [b / 4, -i] : null }));
    assert.equal((await a.req('POST', '/tables/accounts/rows', { rows: acc })).status, 200);
    if (b % 7 === 3) assert.equal((await a.req('POST', '/tables/accounts/rows', { op: 'delete', rows: [{ id: b % 17 }] })).status, 200);
  }
  // A column added after records were written: old records read it as null, in Lance too.
  assert.equal((await a.req('PUT', '/tables/events', { ...EVENTS, columns: [...EVENTS.columns, { name: 'note', type: 'string', nullable: true }] })).status, 200);
  assert.equal((await a.req('POST', '/tables/events/rows', { rows: [{ user: 'u1\'x', ts: 1_700_000_999_000, amount: 1, note: 'late' }] })).status, 200);
}

async function answers(a: TestAsof) {
  const out: Record<string, unknown> = {};
  for (const t of ['events', 'accounts']) {
    out[`${t} all`] = (await a.req('GET', `/tables/${t}/changelog?limit=10000`)).body.records;
    out[`${t} from 333`] = (await a.req('GET', `/tables/${t}/changelog?from=333&limit=50`)).body;
  }
  for (const k of ["u1'x", "u4'x", 'nobody']) out[`events key ${k}`] = (await a.req('GET', `/tables/events/changelog?key=${encodeURIComponent(k)}&limit=10000`)).body;
  for (const k of [3, 9, 16]) {
    out[`accounts key ${k}`] = (await a.req('GET', `/tables/accounts/changelog?key=${k}&limit=10000`)).body;
    out[`accounts row ${k}`] = (await a.req('GET', `/tables/accounts/rows/${k}`)).body;
  }
  return out;
}

async function waitTiered(a: TestAsof, table: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const d = (await a.req('GET', `/tables/${table}`)).body;
    if (d.tieredOffset === d.latestOffset) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`table ${table} was not tiered in time`);
}

/** Direct reads of the datasets, in the process's LanceDB thread beside the servers' (test/fixtures/lance-reads.ts says why). */
const READS = hostModule('../fixtures/lance-reads', import.meta.url);
const readLance = <T>(op: string, ...args: unknown[]): Promise<T> => lanceHost().call<T>(READS, op, args);

/** A tiered table's dataset, every row as plain JSON values (int64 as numbers), ascending by offset. */
async function lanceRows(dataDir: string, table: string): Promise<Record<string, unknown>[]> {
  const rows = await readLance<Record<string, unknown>[]>('rows', join(dataDir, 'lance'), table);
  return rows.sort((a, b) => (a._asof_offset as number) - (b._asof_offset as number));
}

const segments = async (dir: string, table: string) => (await readdir(join(dir, 'tables', table))).filter((n) => n.startsWith('changelog-')).sort();

test('tiering 0s/0s: hot segments are deleted and every read answers as with tiering off, also after restarts', async () => {
  // One fixed clock: the tiering task reads the clock too, so a ticking one would give the two servers different commit times.
  const now = () => 1_800_000_000_000;
  const off = await testAsof({ tierAfter: null }, { now });
  let on = await testAsof({ tierAfter: 0, hotRetention: 0, segmentBytes: 2048 }, { now });
  try {
    await load(off);
    await load(on);
    const expected = await answers(off);
    for (const [k, v] of Object.entries(expected)) assert.ok(v && !(v as { error?: unknown }).error, `${k}: ${JSON.stringify(v)}`);
    assert.equal((await off.req('GET', '/tables/events')).body.tieredOffset, -1);
    await waitTiered(on, 'events');
    await waitTiered(on, 'accounts');
    // Wait for the sealed segments to go (a snapshot must cover them first).
    for (let i = 0; i < 200 && (await segments(on.dataDir, 'events')).length > 1; i++) await new Promise((r) => setTimeout(r, 50));
    const left = await segments(on.dataDir, 'events');
    assert.equal(left.length, 1, `only the segment being written stays: ${left.join(', ')}`);
    assert.notEqual(left[0], 'changelog-00000000000000000000.log');
    assert.ok(on.services.engine.table('events').hotStart > 0, 'the hot log no longer starts at 0');
    assert.deepEqual(await answers(on), expected);
    // The frames themselves (what the audit's hash chain re-verifies) come back byte for byte, cold ones from Lance.
    const frames = async (a: TestAsof) => {
      const out: string[] = [];
      for await (const f of a.services.engine.table('events').frameBytes(0, Infinity)) out.push(`${f.firstOffset}+${f.count}@${f.commitTime}:${Buffer.from(f.bytes).toString('base64')}`);
      return out;
    };
    const offFrames = await frames(off);
    assert.ok(offFrames.length > 40);
    assert.deepEqual(await frames(on), offFrames);
    // The hash chain walks tiered frames (from Lance) and hot ones, across segment rolls, unbroken.
    const verifyOff = (await off.req('GET', '/audit/verify?table=events')).body;
    const verifyOn = (await on.req('GET', '/audit/verify?table=events')).body;
    assert.equal(verifyOff.ok, true, JSON.stringify(verifyOff));
    assert.deepEqual(verifyOn, verifyOff);

    // Lance holds every record with its offset, change type and commit time beside the columns.
    const uri = join(on.dataDir, 'lance');
    const facts = await readLance<{ count: number; indexColumns: string[]; fieldMetadata: Record<string, Record<string, string>> }>('facts', uri, 'events');
    assert.equal(facts.count, 1001);
    const some = await readLance<Record<string, unknown>[]>('rows', uri, 'events', '_asof_offset = 1000', ['_asof_offset', '_asof_change', '_asof_commit_time', 'user', 'note']);
    assert.equal(some.length, 1);
    assert.equal(some[0].note, 'late');
    assert.equal(some[0]._asof_change, 0);
    const idx = facts.indexColumns;
    assert.ok(idx.includes('user') && idx.includes('_asof_offset'), `scalar indexes: ${idx.join('; ')}`);
    // The frame column (a copy of every frame) is stored uncompressed (lance-batch.ts).
    assert.equal(facts.fieldMetadata._asof_frame?.['lance-encoding:compression'], 'none');
    // Every record, every column, as any Lance reader sees them: the changelog's records exactly (lists, structs,
    // the column added later null on older records), and each frame's bytes on its first record only.
    for (const t of ['events', 'accounts']) {
      const { records } = (await on.req('GET', `/tables/${t}/changelog?limit=10000`)).body as { records: { offset: number; changeType: string; commitTime: string; row: Record<string, unknown> }[] };
      const expected = records.map((r) => ({ _asof_offset: r.offset, _asof_change: ['+I', '-U', '+U', '-D'].indexOf(r.changeType), _asof_commit_time: Date.parse(r.commitTime), ...r.row, ...(t === 'events' ? { ts: Date.parse(r.row.ts as string) } : { attrs: r.row.attrs === null ? null : JSON.stringify(r.row.attrs) }) }));
      const lance = await lanceRows(on.dataDir, t);
      const framed = lance.filter((r) => r._asof_frame !== null);
      assert.deepEqual(
        lance.map(({ _asof_frame: _f, _asof_frame_pos: _p, ...r }) => r),
        expected,
        `${t}: Lance's records`,
      );
      const stored = [];
      for await (const f of on.services.engine.table(t).frameBytes(0, Infinity)) stored.push({ at: f.firstOffset, bytes: Buffer.from(f.bytes).toString('base64') });
      assert.deepEqual(framed.map((r) => ({ at: r._asof_offset, bytes: Buffer.from(r._asof_frame as Uint8Array).toString('base64') })), stored, `${t}: frames`);
      assert.ok(framed.every((r) => typeof r._asof_frame_pos === 'number'));
    }

    assert.deepEqual(
      Object.keys(createRequire(import.meta.url).cache).filter((p) => p.includes('@lancedb')),
      [],
      'the reads ran in the LanceDB thread: this main thread loaded no LanceDB module',
    );

    // Restart: from the snapshot, then without it (recovery replays the cold tier below the hot log).
    const dataDir = on.dataDir;
    await on.close();
    on = await testAsof({ tierAfter: 0, hotRetention: 0, segmentBytes: 2048 }, { now, dataDir });
    assert.deepEqual(await answers(on), expected);
    await on.close();
    const { rename } = await import('node:fs/promises');
    for (const t of ['events', 'accounts']) await rename(join(dataDir, 'tables', t, 'state.snapshot'), join(dataDir, `${t}.old-snapshot`));
    on = await testAsof({ tierAfter: 0, hotRetention: 0, segmentBytes: 2048 }, { now, dataDir });
    assert.deepEqual(await answers(on), expected);
    // Without the cold tier the hot log alone cannot answer: refusing beats a wrong answer.
    await on.close();
    const noCold = await testAsof({ tierAfter: null, segmentBytes: 2048 }, { now, dataDir });
    assert.throws(() => noCold.services.engine.table('events'), /cold tier|unavailable|did not open/i);
    await noCold.close();
    on = await testAsof({ tierAfter: 0, hotRetention: 0, segmentBytes: 2048 }, { now, dataDir });
    // After restarts over deleted segments, new frames continue the hash chain.
    assert.equal((await on.req('POST', '/tables/events/rows', { rows: [{ user: 'after', ts: 1_700_001_000_000 }] })).status, 200);
    const verify = (await on.req('GET', '/audit/verify?table=events')).body;
    assert.equal(verify.ok, true, JSON.stringify(verify));
    assert.equal(verify.head.offset, 1001);
  } finally {
    await off.destroy();
    await on.destroy();
  }
});

test('tiering 0s/0s: views defined, redefined and rebuilt into Redis from offset 0 answer as with tiering off', async (t) => {
  if (!(await sharedRedisOrSkip())) return t.skip('no Redis at ' + SHARED_REDIS_URL);
  const now = () => 1_700_000_050_000;
  const prefixes = [uniquePrefix('tier-off'), uniquePrefix('tier-on')];
  const redis = (i: number) => ({ redisUrl: SHARED_REDIS_URL, redisPrefix: prefixes[i] });
  const off = await testAsof({ tierAfter: null, ...redis(0) }, { now });
  let on = await testAsof({ tierAfter: 0, hotRetention: 0, segmentBytes: 2048, ...redis(1) }, { now });
  const VIEW = {
    source: 'events',
    entity: 'user',
    features: [
      { name: 'n_90d', agg: { fn: 'count', window: '90d' } },
      { name: 'sum_1m', agg: { fn: 'sum', column: 'amount', window: '1m' } },
      { name: 'last_amount', column: 'amount' },
    ],
  };
  const users = Array.from({ length: 9 }, (_, i) => `u${i}'x`);
  const lookups = async (a: TestAsof, features: string) => {
    const out = [];
    for (const u of [...users, 'nobody']) out.push((await a.req('GET', `/features/${encodeURIComponent(u)}?features=${features}`)).body);
    for (const id of [0, 3, 9, 16]) out.push((await a.req('GET', `/features/${id}?features=acc:name,acc:meta`)).body);
    return out;
  };
  try {
    await load(off);
    await load(on);
    await waitTiered(on, 'events');
    await waitTiered(on, 'accounts');
    for (let i = 0; i < 400 && ['events', 'accounts'].some((n) => on.services.engine.table(n).hotStart === 0); i++) await new Promise((r) => setTimeout(r, 50));
    for (const n of ['events', 'accounts']) assert.ok(on.services.engine.table(n).hotStart > 0, `${n}: hot log still starts at 0`);

    // Defining a view backfills it from the changelog: from Lance below the hot log.
    for (const a of [off, on]) {
      assert.equal((await a.req('PUT', '/feature-views/ev', VIEW)).status, 201);
      assert.equal((await a.req('PUT', '/feature-views/acc', { source: 'accounts', entity: 'id', features: [{ name: 'name', column: 'name' }, { name: 'meta', column: 'meta' }] })).status, 201);
    }
    const f1 = 'ev:n_90d,ev:sum_1m,ev:last_amount';
    const expected1 = await lookups(off, f1);
    assert.ok(expected1.some((b) => b.statuses?.['ev:n_90d'] === 'PRESENT' && b.features['ev:n_90d'] > 0), JSON.stringify(expected1[0]));
    assert.deepEqual(await lookups(on, f1), expected1);

    // Redefinition re-materializes from offset 0.
    const REDEFINED = { ...VIEW, features: [...VIEW.features, { name: 'max_90d', agg: { fn: 'max', column: 'amount', window: '90d' } }] };
    for (const a of [off, on]) assert.equal((await a.req('PUT', '/feature-views/ev', REDEFINED)).status, 200);
    const f2 = f1 + ',ev:max_90d';
    const expected2 = await lookups(off, f2);
    assert.deepEqual(await lookups(on, f2), expected2);

    // Redis lost everything: the restart rebuilds it from offset 0, through the union read.
    const dataDir = on.dataDir;
    await on.close();
    await deletePrefix(SHARED_REDIS_URL, prefixes[1]);
    on = await testAsof({ tierAfter: 0, hotRetention: 0, segmentBytes: 2048, ...redis(1) }, { now, dataDir });
    assert.deepEqual(await lookups(on, f2), expected2);
  } finally {
    await off.destroy();
    await on.destroy();
    for (const p of prefixes) await deletePrefix(SHARED_REDIS_URL, p);
  }
});
