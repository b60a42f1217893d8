/**
 * A snapshot that cannot be written (a full disk) is logged and tried again
 * later; it never ends the process, never stops the table, and leaves no
 * partial `state.snapshot.tmp` behind. The full disk is real: the temporary
 * file is a symlink to /dev/full, whose every write fails with ENOSPC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, readlink, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import { captureLogger, tempDir, until } from '../helpers.js';

const ACCOUNTS = {
  kind: 'pk' as const,
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'int64', nullable: false },
    { name: 'name', type: 'string', nullable: true },
  ],
};

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);
const isLink = (p: string): Promise<boolean> => readlink(p).then(() => true, () => false);

test('a snapshot that fails with ENOSPC is logged, cleans up its temporary file, and leaves the process and table running', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown): void => void unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  const { path: dir, cleanup } = await tempDir();
  try {
    const cap = captureLogger();
    const engine = await Engine.open({ dataDir: dir, logger: cap.logger, snapshotEvery: 20 });
    await engine.defineTable('acc', ACCOUNTS);
    const t = engine.table('acc');
    const tmp = join(dir, 'tables', 'acc', 'state.snapshot.tmp');
    const snap = join(dir, 'tables', 'acc', 'state.snapshot');
    await symlink('/dev/full', tmp);
    const write = async (from: number, n: number): Promise<void> => {
      const { rows, issues } = t.schema.validate(Array.from({ length: n }, (_, i) => ({ id: from + i, name: `n${from + i}` })));
      assert.deepEqual(issues, []);
      await t.write(rows, 'upsert');
    };
    for (let b = 0; b < 5; b++) await write(b * 10, 10);
    await until('the failed snapshot to be logged', () => cap.lines.some((l) => l.msg === 'snapshot failed; will retry later'));
    const failed = cap.lines.find((l) => l.msg === 'snapshot failed; will retry later')!;
    assert.match(String(failed.obj.err), /ENOSPC/);
    await until('the temporary file to be removed', async () => !(await isLink(tmp)) && !(await exists(tmp)));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
    // The table goes on: writes are taken, and the next snapshot (the disk has room again) is written.
    await write(100, 30);
    await until('a later snapshot', () => exists(snap));
    await engine.close();
    // A failing snapshot at close is logged too, and close still ends (no background snapshot here: it is not due).
    const cap2 = captureLogger();
    const reopened = await Engine.open({ dataDir: dir, logger: cap2.logger, snapshotEvery: 1e9 });
    const w = reopened.table('acc');
    const { rows } = w.schema.validate([{ id: 204, name: 'n204' }]);
    await w.write(rows, 'upsert');
    await symlink('/dev/full', tmp);
    await reopened.close();
    assert.ok(cap2.lines.some((l) => l.msg === 'snapshot at close failed; the next start replays more'));
    assert.equal(await isLink(tmp), false, 'close cleaned up its temporary file');
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
    const again = await Engine.open({ dataDir: dir, logger: captureLogger().logger, snapshotEvery: 20 });
    assert.equal(again.table('acc').rowCount, 81);
    assert.deepEqual(again.table('acc').get('204'), { id: 204, name: 'n204' });
    await again.close();
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await unlink(join(dir, 'tables', 'acc', 'state.snapshot.tmp')).catch(() => undefined);
    await cleanup();
  }
});
