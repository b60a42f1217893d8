/**
 * `asof repair` and a snapshot that does not match the changelog. A changelog
 * cut at a frame boundary below what the snapshot covers (also what a repair
 * killed after its cut, before removing the snapshot, used to leave) made the
 * table refuse to open, start-up said to run repair, and repair found every
 * frame whole and did nothing. Now repair removes such a snapshot and says
 * why; the table then opens with the records the changelog holds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import { repairTable } from '../../src/engine/repair.js';
import { silentLogger } from '../../src/logger.js';
import { tempDir } from '../helpers.js';
import { runCli } from '../child-server.js';

const T = { kind: 'log' as const, eventTime: 'ts', columns: [{ name: 'a', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }] };

/** A data folder whose `t` has one frame per item of `as` (its values of `a`), closed cleanly (its snapshot covers them all); the changelog size after each frame. */
async function build(path: string, as: number[][], now = () => 1_700_000_000_000): Promise<number[]> {
  const e = await Engine.open({ dataDir: path, logger: silentLogger, now });
  await e.defineTable('t', T);
  const ends: number[] = [];
  for (const frame of as) {
    await e.table('t').write(frame.map((a) => ({ a, ts: a })), 'upsert');
    ends.push(e.table('t').logBytes);
  }
  await e.close();
  return ends;
}

async function rowsOf(path: string): Promise<number[] | string> {
  const e = await Engine.open({ dataDir: path, logger: silentLogger });
  try {
    if (!e.has('t')) return (() => { try { e.table('t'); return 'unavailable'; } catch (err) { return (err as Error).message; } })();
    const out: number[] = [];
    for await (const r of e.table('t').scan()) out.push(r.row.a as number);
    return out;
  } finally {
    await e.close();
  }
}

const segment = async (path: string) => join(path, 'tables', 't', (await readdir(join(path, 'tables', 't'))).find((n) => n.startsWith('changelog-'))!);
const snapshot = (path: string) => join(path, 'tables', 't', 'state.snapshot');

test('a changelog cut at a frame boundary below its snapshot: repair removes the snapshot, says why, and the table opens with the records that are there', async () => {
  const dir = await tempDir();
  try {
    const ends = await build(dir.path, [[1], [2], [3]]);
    await truncate(await segment(dir.path), ends[0]); // the last two whole frames are gone
    assert.match(String(await rowsOf(dir.path)), /snapshot covers/, 'the table does not open');

    const dry = await repairTable(dir.path, 't', { dryRun: true });
    assert.equal(dry.cut, undefined);
    assert.equal(dry.snapshotRemoved, false);
    assert.equal(dry.dryRun, true);
    assert.match(dry.snapshotMismatch ?? '', new RegExp(`covers ${ends[2]} bytes .*holds ${ends[0]} bytes`));
    await stat(snapshot(dir.path)); // a dry run leaves it

    const cli = await runCli(['repair', '--data-dir', dir.path, '--table', 't']);
    assert.equal(cli.code, 0, cli.stderr);
    const report = JSON.parse(cli.stdout);
    assert.equal(report.cut, undefined, 'every frame left is whole');
    assert.equal(report.snapshotRemoved, true);
    assert.match(report.snapshotMismatch, /covers/);
    assert.match(cli.stderr, /nothing to cut; the snapshot does not match the changelog .*removed it/);
    await assert.rejects(stat(snapshot(dir.path)), { code: 'ENOENT' });

    assert.deepEqual(await rowsOf(dir.path), [1]);
    const again = await repairTable(dir.path, 't');
    assert.deepEqual([again.cut, again.snapshotRemoved, again.snapshotMismatch], [undefined, false, undefined], 'a second repair has nothing to do');
  } finally {
    await dir.cleanup();
  }
});

test('a snapshot of another changelog (it ends inside a frame, or its last frame differs): repair removes it', async () => {
  const variants = [
    { other: [[1, 2]], reason: /no frame of the changelog ends at byte|ends at offset 2, but/ },
    { other: [[7]], reason: /its last frame was committed at 1800000000000, the changelog's frame ending at byte \d+ at 1700000000000/ },
  ];
  for (const v of variants) {
    const mine = await tempDir();
    const other = await tempDir();
    try {
      await build(mine.path, [[1], [2], [3]]);
      const otherEnds = await build(other.path, v.other, () => 1_800_000_000_000);
      await copyFile(snapshot(other.path), snapshot(mine.path));
      assert.ok(otherEnds[0] < (await stat(await segment(mine.path))).size, 'it covers fewer bytes than the changelog holds');
      const report = await repairTable(mine.path, 't');
      assert.equal(report.cut, undefined);
      assert.equal(report.snapshotRemoved, true, JSON.stringify(v.other));
      assert.match(report.snapshotMismatch ?? '', v.reason);
      assert.deepEqual(await rowsOf(mine.path), [1, 2, 3]);
    } finally {
      await mine.cleanup();
      await other.cleanup();
    }
  }
});

test('a snapshot that matches its changelog is kept', async () => {
  const dir = await tempDir();
  try {
    await build(dir.path, [[1], [2]]);
    const report = await repairTable(dir.path, 't');
    assert.deepEqual([report.cut, report.snapshotRemoved, report.snapshotMismatch], [undefined, false, undefined]);
    await stat(snapshot(dir.path));
  } finally {
    await dir.cleanup();
  }
});

test('repair keeps the snapshot of a healthy table whose last write added no frame (a delete of an absent key moves only the commit time)', async () => {
  const dir = await tempDir();
  try {
    let now = 1_700_000_000_000;
    const e = await Engine.open({ dataDir: dir.path, logger: silentLogger, now: () => now });
    await e.defineTable('u', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64', nullable: true }] });
    await e.table('u').write([{ id: 'a', score: 1 }], 'upsert');
    now += 30;
    const none = await e.table('u').write([{ id: 'absent' }], 'delete');
    assert.equal(none.count, 0, 'the delete wrote no record');
    await e.close();
    const snap = join(dir.path, 'tables', 'u', 'state.snapshot');
    await stat(snap);
    const r = await repairTable(dir.path, 'u', {});
    assert.equal(r.snapshotMismatch, undefined, JSON.stringify(r));
    assert.equal(r.snapshotRemoved, false);
    await stat(snap);
  } finally {
    await dir.cleanup();
  }
});
