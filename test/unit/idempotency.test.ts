import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tableFromIPC } from 'apache-arrow';
import { IDEMPOTENCY_METADATA, IdempotencyKeys, keysMetadata, keysOf } from '../../src/engine/idempotency.js';
import { decodeIpc, encodeBatch, streamMetadata } from '../../src/engine/arrow-codec.js';
import { TableSchema } from '../../src/engine/schema.js';
import { defineTable } from '../../src/engine/table-def.js';

test('answers from a frame: offsets of each keyed request, and the commit end as the token of one that wrote nothing', () => {
  const keys = new IdempotencyKeys(1000, 10);
  // A frame of 5 records from offset 20: "a" wrote records 0-1, "b" none (between), "c" records 2-4.
  keys.addFrame(20, 5, 100, [['a', 'fa', 0, 2], ['b', 'fb', 2, 0], ['c', 'fc', 2, 3]]);
  assert.deepEqual(keys.get('a', 100), { fingerprint: 'fa', commitTime: 100, count: 2, firstOffset: 20, lastOffset: 21, tokenOffset: 21 });
  assert.deepEqual(keys.get('b', 100), { fingerprint: 'fb', commitTime: 100, count: 0, firstOffset: null, lastOffset: null, tokenOffset: 24 });
  assert.deepEqual(keys.get('c', 100), { fingerprint: 'fc', commitTime: 100, count: 3, firstOffset: 22, lastOffset: 24, tokenOffset: 24 });
  // A frame holding only a key (no record) at offset 25.
  keys.addFrame(25, 0, 101, [['d', 'fd', 0, 0]]);
  assert.equal(keys.get('d', 101)?.tokenOffset, 24);
});

test('lifetime: forgotten ttl ms after the commit, and beyond capacity the oldest first; a snapshot section round-trips', () => {
  const keys = new IdempotencyKeys(1000, 3);
  for (let i = 0; i < 5; i++) keys.addFrame(i, 1, 100 + i, [[`k${i}`, 'f', 0, 1]]);
  assert.deepEqual(['k0', 'k1', 'k2', 'k3', 'k4'].map((k) => keys.get(k, 104) !== undefined), [false, false, true, true, true]);
  assert.equal(keys.get('k2', 1103), undefined, 'k2 committed at 102 is more than 1000 ms old at 1103');
  assert.ok(keys.get('k3', 1103));
  const copy = new IdempotencyKeys(1000, 3);
  copy.load(keys.serialize(1103));
  assert.deepEqual(copy.get('k3', 1103), keys.get('k3', 1103));
  assert.equal(copy.size, 2, 'expired keys are not written to the snapshot');
});

test('the keys ride in the frame payload as Arrow schema metadata, which any Arrow reader sees; the records are unchanged', () => {
  const schema = new TableSchema(defineTable('t', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }] }, undefined, 0).def);
  const rows = [{ ts: 5 }, { ts: 6 }];
  const plain = encodeBatch(schema.columns, [0, 0], rows);
  const keyed = encodeBatch(schema.columns, [0, 0], rows, keysMetadata([['k', 'f', 0, 2]]));
  assert.deepEqual(keysOf(streamMetadata(plain)), []);
  assert.deepEqual(keysOf(streamMetadata(keyed)), [['k', 'f', 0, 2]]);
  assert.deepEqual(decodeIpc(keyed).numRows, decodeIpc(plain).numRows);
  const read = tableFromIPC(keyed);
  assert.equal(read.schema.metadata.get(IDEMPOTENCY_METADATA), '[["k","f",0,2]]');
  assert.deepEqual(read.getChild('ts')?.toArray(), tableFromIPC(plain).getChild('ts')?.toArray());
  assert.equal(keysMetadata([]), undefined);
});
