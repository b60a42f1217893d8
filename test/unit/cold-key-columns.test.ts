/**
 * A key's records read as columns from the cold tier (union-read.ts
 * keyColumns): whatever order the tier's query answers its batches in, the
 * columns come ascending by offset, each record's change type, commit time
 * and values kept together, and a record the key index expects but the tier
 * lacks is an error. The tier is a stand-in answering Arrow IPC batches as
 * LanceDB's does (`_asof_offset`, `_asof_change`, `_asof_commit_time`, the
 * table's columns); the oracle is the records it was given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from 'apache-arrow';
import type { ColdTable } from '../../src/engine/cold-tier.js';
import { FrameIndex } from '../../src/engine/indexes.js';
import { TableSchema } from '../../src/engine/schema.js';
import { defineTable } from '../../src/engine/table-def.js';
import type { SegmentedLog } from '../../src/engine/segments.js';
import type { KeyColumns } from '../../src/engine/table-scan.js';
import { keyColumns } from '../../src/engine/key-read.js';
import type { UnionSource } from '../../src/engine/union-read.js';

const schema = new TableSchema(
  defineTable('t', { kind: 'log', eventTime: 'at', primaryKey: ['user'], columns: [{ name: 'user', type: 'string', nullable: false }, { name: 'amount', type: 'float64', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }, undefined, 0).def,
);

interface Rec {
  offset: number;
  change: number;
  commit: number;
  amount: number | null;
  at: number;
}

/** One batch as the cold tier answers it: an IPC stream of the records, in the order given. */
function batch(recs: Rec[]): Uint8Array {
  const t = new A.Table({
    _asof_offset: A.vectorFromArray(recs.map((r) => BigInt(r.offset)), new A.Int64()),
    _asof_change: A.vectorFromArray(recs.map((r) => r.change), new A.Int8()),
    _asof_commit_time: A.vectorFromArray(recs.map((r) => r.commit), new A.TimestampMillisecond('UTC')),
    user: A.vectorFromArray(recs.map(() => 'u1'), new A.Utf8()),
    amount: A.vectorFromArray(recs.map((r) => r.amount), new A.Float64()),
    at: A.vectorFromArray(recs.map((r) => r.at), new A.TimestampMillisecond('UTC')),
  });
  return A.tableToIPC(t, 'stream');
}

/** A union source whose records are all in the stand-in cold tier (no hot frame). */
function source(answer: Uint8Array[]): UnionSource {
  const cold = { keyRecords: async () => answer } as unknown as ColdTable;
  const log = { pin() {}, unpin() {} } as unknown as SegmentedLog;
  return { frames: new FrameIndex(), log, cold, coldBelow: 1_000, end: 1_000 };
}

async function read(src: UnionSource, wanted: number[]): Promise<KeyColumns[]> {
  const out: KeyColumns[] = [];
  for await (const c of keyColumns(src, schema, 'u1', wanted, ['amount', 'at'])) out.push(c);
  return out;
}

test('cold key columns: batches answered in any order come ascending by offset, each record whole', async () => {
  let seed = 11;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return Math.floor((seed / 2 ** 32) * n);
  };
  for (let round = 0; round < 20; round++) {
    const recs: Rec[] = [];
    for (let o = rand(5); recs.length < 1 + rand(40); o += 1 + rand(6)) {
      recs.push({ offset: o, change: rand(4), commit: 1_700_000_000_000 + o * 10, amount: rand(5) === 0 ? null : rand(1000) / 8, at: 1_600_000_000_000 + rand(1e9) });
    }
    // Cut into batches, the batches shuffled, and each batch's rows shuffled too in some rounds.
    const parts: Rec[][] = [];
    for (let i = 0; i < recs.length; ) {
      const n = 1 + rand(8);
      parts.push(recs.slice(i, i + n));
      i += n;
    }
    for (let i = parts.length - 1; i > 0; i--) {
      const j = rand(i + 1);
      [parts[i], parts[j]] = [parts[j], parts[i]];
    }
    if (round % 2) for (const p of parts) p.reverse();
    const got = await read(source(parts.map(batch)), recs.map((r) => r.offset));
    assert.equal(got.length, 1, 'the cold part is one chunk');
    const c = got[0];
    assert.equal(c.count, recs.length);
    assert.deepEqual(c.columns, ['amount', 'at']);
    assert.deepEqual(
      Array.from({ length: c.count }, (_, i) => ({ offset: c.offsets[i], change: c.changes[i], commit: c.commitTimes[i], amount: c.values[0][i], at: c.values[1][i] })),
      recs,
      `round ${round}`,
    );
  }
});

test('cold key columns: a record the key index expects that the cold tier lacks is an error', async () => {
  const recs: Rec[] = [0, 3, 7].map((o) => ({ offset: o, change: 0, commit: 1_700_000_000_000, amount: 1, at: 1_600_000_000_000 }));
  await assert.rejects(read(source([batch(recs)]), [0, 3, 5, 7]), /differ from the key index/);
  await assert.rejects(read(source([batch(recs)]), [0, 3, 8]), /differ from the key index/);
});
