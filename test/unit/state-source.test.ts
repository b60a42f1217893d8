/**
 * A table-served read's position is the table's head at the moment its rows
 * are read. The online service sets reads up, awaits the other groups' store
 * reads, then reads rows; a commit in between must not give rows newer than
 * the token says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DirectSource } from '../../src/online/materializer.js';
import { TableRead } from '../../src/online/state-source.js';

test('a table-served read reports the head the table has when its rows are read, not when the read was set up', () => {
  // A one-key table whose latest row is at the head: a commit moves both.
  const table = { endOffset: 5, slot: 0 };
  const source: DirectSource = {
    get endOffset() {
      return table.endOffset;
    },
    latestSlot: () => table.slot,
    versionAt: () => table.endOffset - 1,
    recordAt: () => ({ offset: table.endOffset - 1, commitTime: 0, values: [] }),
  } as unknown as DirectSource;
  const read = new TableRead(source, ['k']);
  assert.equal(read.position, 4);
  table.endOffset = 9; // a commit lands while the service awaits another group's read
  const version = read.cacheKey(0);
  assert.equal(version, 8, 'the row read is the newest one');
  assert.equal(read.position, 8, 'the position agrees with the row that was read');
});
