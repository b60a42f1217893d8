/**
 * A new name in a folder survives a power loss only once the folder is
 * fsync'd. A new table's folder (in `tables/`) and its first changelog
 * segment (in the table's folder) were created and written, and the first
 * write acknowledged, without either folder being fsync'd: the acknowledged
 * frame could vanish with the file's name. Rolling to a later segment already
 * fsync'd its folder. A kill -9 cannot show this (the page cache survives
 * it), so the fsyncs are observed through util/fs.ts's `dirSyncs` seam.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import { dirSyncs } from '../../src/util/fs.js';
import { silentLogger } from '../../src/logger.js';
import { tempDir } from '../helpers.js';

const EVENTS = { kind: 'log' as const, eventTime: 'ts', columns: [{ name: 'a', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }] };

test('a new data folder, a new table folder and its first segment: each parent folder is fsync\'d before the first write is acknowledged', async () => {
  const dir = await tempDir();
  const data = join(dir.path, 'data');
  const events: string[] = [];
  const segment = join(data, 'tables', 'events', 'changelog-00000000000000000000.log');
  dirSyncs.synced = (path) => {
    const rel = relative(dir.path, path) || '.';
    // The table folder's fsync counts once the segment is in it (an fsync before the file exists makes nothing of it durable).
    events.push(rel === join('data', 'tables', 'events') ? `${rel}${existsSync(segment) ? ' (with the segment)' : ''}` : rel);
  };
  try {
    const engine = await Engine.open({ dataDir: data, logger: silentLogger });
    try {
      await engine.defineTable('events', EVENTS);
      const ack = await engine.table('events').write([{ a: 1, ts: 1 }], 'upsert');
      assert.equal(ack.firstOffset, 0);
      events.push('ack');
    } finally {
      await engine.close();
    }
    const before = events.slice(0, events.indexOf('ack'));
    for (const want of ['.', 'data', join('data', 'tables'), join('data', 'tables', 'events') + ' (with the segment)']) {
      assert.ok(before.includes(want), `${want} fsync'd before the first acknowledgement (fsync'd: ${before.join(', ')})`);
    }
  } finally {
    dirSyncs.synced = undefined;
    await dir.cleanup();
  }
});
