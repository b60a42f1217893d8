/**
 * The segmented changelog: segments roll by size, every record reads back
 * across them (with and without a snapshot), a folder from before segments
 * opens, and damage in a sealed segment refuses to open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rename, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import { silentLogger } from '../../src/logger.js';
import { tempDir } from '../helpers.js';

const ACCOUNTS = {
  kind: 'pk' as const,
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'name', type: 'string', nullable: true },
  ],
};

const segmentsOf = async (dir: string) => (await readdir(join(dir, 'tables', 'accounts'))).filter((n) => n.startsWith('changelog-')).sort();

async function fill(engine: Engine, commits: number): Promise<void> {
  const t = engine.table('accounts');
  for (let i = 0; i < commits; i++) {
    const { rows } = t.schema.validate([{ id: i % 7, name: `name-${i}-${'x'.repeat(i % 13)}` }]);
    await t.write(rows, 'upsert');
  }
}

async function dump(engine: Engine) {
  const out = [];
  for await (const r of engine.table('accounts').scan()) out.push(r);
  return { records: out, latest: [0, 1, 2, 3, 4, 5, 6].map((k) => engine.table('accounts').get(String(k))) };
}

test('segments roll by size and the changelog reads the same across them, after restarts with and without a snapshot', async () => {
  const dir = await tempDir();
  try {
    let engine = await Engine.open({ dataDir: dir.path, logger: silentLogger, segmentBytes: 2048, snapshotEvery: 1e9 });
    await engine.defineTable('accounts', ACCOUNTS);
    await fill(engine, 60);
    const before = await dump(engine);
    // 60 upserts of 7 keys: 7 inserts, then an update (two records) each.
    assert.equal(before.records.length, 7 + 53 * 2);
    assert.deepEqual(before.records.map((r) => r.offset), [...Array(113).keys()]);
    const segs = await segmentsOf(dir.path);
    assert.ok(segs.length >= 4, `expected several segments, got ${segs.join(', ')}`);
    // Names are the global byte position of each segment's first byte, ascending from 0.
    assert.equal(segs[0], 'changelog-00000000000000000000.log');
    await engine.close();

    // Restart from the snapshot written at close.
    engine = await Engine.open({ dataDir: dir.path, logger: silentLogger, segmentBytes: 2048, snapshotEvery: 1e9 });
    assert.deepEqual(await dump(engine), before);
    await fill(engine, 5);
    const more = await dump(engine);
    assert.equal(more.records.length, 113 + 10);
    await engine.close();

    // Restart with no snapshot: every segment is replayed in order.
    await rename(join(dir.path, 'tables', 'accounts', 'state.snapshot'), join(dir.path, 'old.snapshot'));
    engine = await Engine.open({ dataDir: dir.path, logger: silentLogger, segmentBytes: 2048, snapshotEvery: 1e9 });
    assert.deepEqual(await dump(engine), more);
    await engine.close();
  } finally {
    await dir.cleanup();
  }
});

test('a data folder from before segments (changelog.log) opens as the first segment', async () => {
  const dir = await tempDir();
  try {
    let engine = await Engine.open({ dataDir: dir.path, logger: silentLogger, snapshotEvery: 1e9 });
    await engine.defineTable('accounts', ACCOUNTS);
    await fill(engine, 10);
    const before = await dump(engine);
    await engine.close();
    const tdir = join(dir.path, 'tables', 'accounts');
    await rename(join(tdir, 'changelog-00000000000000000000.log'), join(tdir, 'changelog.log'));
    await rename(join(tdir, 'state.snapshot'), join(dir.path, 'old.snapshot'));
    engine = await Engine.open({ dataDir: dir.path, logger: silentLogger, snapshotEvery: 1e9 });
    assert.deepEqual(await dump(engine), before);
    assert.deepEqual(await segmentsOf(dir.path), ['changelog-00000000000000000000.log']);
    await engine.close();
  } finally {
    await dir.cleanup();
  }
});

test('damage in a sealed segment refuses to open (only the last segment may have a torn tail)', async () => {
  const dir = await tempDir();
  try {
    const engine = await Engine.open({ dataDir: dir.path, logger: silentLogger, segmentBytes: 1024, snapshotEvery: 1e9 });
    await engine.defineTable('accounts', ACCOUNTS);
    await fill(engine, 30);
    await engine.close();
    const tdir = join(dir.path, 'tables', 'accounts');
    await rename(join(tdir, 'state.snapshot'), join(dir.path, 'old.snapshot'));
    const [first] = await segmentsOf(dir.path);
    const buf = await readFile(join(tdir, first));
    buf[buf.length - 3] ^= 0xff; // inside the last frame's payload: its checksum fails
    await writeFile(join(tdir, first), buf);
    // The table does not open (the engine serves the others): ASOF_TABLE_UNAVAILABLE, saying why.
    const e1 = await Engine.open({ dataDir: dir.path, logger: silentLogger, segmentBytes: 1024, snapshotEvery: 1e9 });
    assert.throws(() => e1.table('accounts'), /damaged|not the last one|unavailable|did not open/i);
    await e1.close();
    // Nothing was cut: the damaged segment keeps its length, and refuses again.
    assert.equal((await readFile(join(tdir, first))).length, buf.length);
    const e2 = await Engine.open({ dataDir: dir.path, logger: silentLogger, segmentBytes: 1024, snapshotEvery: 1e9 });
    assert.throws(() => e2.table('accounts'), /damaged|not the last one|unavailable|did not open/i);
    await e2.close();
  } finally {
    await dir.cleanup();
  }
});
