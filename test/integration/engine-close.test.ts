/**
 * Engine.close gives the data folder's lock up last. It released the lock
 * first and only then stopped tiering, so a tiering step under way could
 * still commit to the cold tier (or snapshot, or delete segments) after
 * another process had taken the folder. Here a cold tier holds its commit
 * until either the lock is released or tiering is told to stop, whichever
 * comes first, and records which it was: no timing involved.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ColdTable, ColdTier } from '../../src/engine/cold-tier.js';
import { Engine } from '../../src/engine/engine.js';
import { DataDirLock } from '../../src/engine/lock.js';
import { silentLogger } from '../../src/logger.js';
import { tempDir } from '../helpers.js';

const EVENTS = { kind: 'log' as const, eventTime: 'ts', columns: [{ name: 'a', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }] };

test('close stops a tiering step under way before it releases the data folder\'s lock', async () => {
  const dir = await tempDir();
  const events: string[] = [];
  let lockReleased!: () => void;
  const released = new Promise<void>((r) => (lockReleased = r));
  let stopCalled!: () => void;
  const stopping = new Promise<void>((r) => (stopCalled = r));
  let entered!: () => void;
  const appending = new Promise<void>((r) => (entered = r));
  let end = 0;
  const table: ColdTable = {
    end: () => end,
    async append(frames) {
      entered();
      await Promise.race([released, stopping]);
      end = frames[frames.length - 1].meta.firstOffset + frames[frames.length - 1].meta.count;
      events.push('cold commit');
    },
    frames: async () => [],
    keyRecords: async () => [],
    close: async () => undefined,
  };
  const cold: ColdTier = { where: 'memory', open: async () => table, close: async () => undefined };
  const release = DataDirLock.prototype.release;
  DataDirLock.prototype.release = function (this: DataDirLock) {
    events.push('lock released');
    lockReleased();
    return release.call(this);
  };
  let now = 1_000;
  try {
    const engine = await Engine.open({ dataDir: dir.path, logger: silentLogger, now: () => now, tiering: { cold, tierAfterMs: 1_000, hotRetentionMs: 1e12 } });
    await engine.defineTable('events', EVENTS);
    await engine.table('events').write([{ a: 1, ts: 1 }], 'upsert');
    now = 100_000; // the record is due: the tiering loop's next round commits it
    // The loop's idle wait does not keep the process alive (unref'd): this does, until the step begins.
    const alive = setInterval(() => undefined, 1_000);
    await appending.finally(() => clearInterval(alive));
    const stop = engine.tiering!.stop.bind(engine.tiering);
    engine.tiering!.stop = () => {
      stopCalled();
      return stop();
    };
    await engine.close();
    assert.deepEqual(events, ['cold commit', 'lock released']);
  } finally {
    DataDirLock.prototype.release = release;
    await dir.cleanup();
  }
});
