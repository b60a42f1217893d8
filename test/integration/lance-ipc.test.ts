/**
 * The cold tier's key reads take LanceDB's own IPC bytes through a LanceDB
 * internal (lance-tier.ts, ipcBatches: Query.nativeExecute, each batch an
 * Arrow IPC file). This fails when an upgrade removes the method or changes
 * what it gives: every column of a query read through it must equal what
 * LanceDB's public toArrow() answers for the same query, and bytes that are
 * not an IPC file are refused, never misread. Tiering's appends go through
 * another (addTable: Table.inner.add): what it appends must read back as what
 * it was given, and a table without it is refused with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lancedb from '@lancedb/lancedb';
import { makeVector } from 'apache-arrow';
import { decodeIpc } from '../../src/engine/arrow-codec.js';
import { addTable, ipcBatches, streamOfFile } from '../../src/engine/lance-tier.js';
import { tempDir } from '../helpers.js';

test('LanceDB query results read as its own IPC bytes equal its public toArrow(), column by column', async () => {
  const dir = await tempDir();
  try {
    const db = await lancedb.connect(dir.path);
    const rows = Array.from({ length: 5000 }, (_, i) => ({ user: `u${i % 7}`, amount: i * 0.5, n: BigInt(i) * 3n, ok: i % 3 === 0, note: i % 5 === 1 ? null : `note ${i}` }));
    const t = await db.createTable('x', rows);
    for (const where of ["user = 'u3'", "user = 'u3' AND n >= 300", 'amount < 0']) {
      const q = () => t.query().where(where).select(['user', 'amount', 'n', 'ok', 'note']);
      const expected = await q().toArrow();
      const got = (await ipcBatches(q())).map(decodeIpc);
      assert.equal(got.reduce((k, b) => k + b.numRows, 0), expected.numRows, `${where}: rows`);
      for (const name of ['user', 'amount', 'n', 'ok', 'note']) {
        const want = expected.getChild(name)!;
        const have = got.flatMap((b) => {
          const v = makeVector(b.column(name)!);
          return Array.from({ length: b.numRows }, (_, i) => v.get(i));
        });
        assert.deepEqual(have, Array.from({ length: expected.numRows }, (_, i) => want.get(i)), `${where}: column ${name}`);
      }
    }
    db.close();
  } finally {
    await dir.cleanup();
  }
});

test('bytes that are not an Arrow IPC file are refused', () => {
  assert.throws(() => streamOfFile(new Uint8Array(64)), /not an Arrow IPC file/);
  const file = Buffer.alloc(64);
  file.write('ARROW1', 0, 'latin1');
  file.write('ARROW1', 58, 'latin1');
  file.writeInt32LE(8, 54);
  assert.throws(() => streamOfFile(file), /stream or footer/);
});

test('tiering appends through the native add of LanceDB: the rows read back as given, and a LanceDB without it is refused', async () => {
  const dir = await tempDir();
  try {
    const db = await lancedb.connect(dir.path);
    const rows = Array.from({ length: 3000 }, (_, i) => ({ user: `u${i % 7}`, n: BigInt(i), note: i % 5 === 1 ? null : `note ${i}` }));
    const t = await db.createTable('x', rows);
    const first = await t.query().toArrow();
    await addTable(t, first);
    const all = await t.query().toArrow();
    assert.equal(all.numRows, 6000);
    for (const name of ['user', 'n', 'note']) {
      const v = all.getChild(name)!;
      const want = first.getChild(name)!;
      for (const i of [0, 1, 2999]) assert.deepEqual([v.get(i), v.get(3000 + i)], [want.get(i), want.get(i)], `${name} ${i}`);
    }
    await assert.rejects(addTable({} as lancedb.Table, first), /no inner.add any more/);
    db.close();
  } finally {
    await dir.cleanup();
  }
});
