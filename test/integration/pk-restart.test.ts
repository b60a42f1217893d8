/**
 * A pk table with thousands of keys, every column type, random upserts and
 * deletes in concurrent commits while snapshots are taken: after a restart
 * (from the snapshot at close, from an older snapshot plus the changelog
 * after it, or from the changelog alone) every row equals the last one
 * written for its key, as kept by a plain map in the test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import type { Row } from '../../src/engine/schema.js';
import { captureLogger, tempDir } from '../helpers.js';
import { rng } from './training-fixtures.js';

/** The shared seeded generator (mulberry32), as a plain function: a failure can be replayed. */
const seeded = (seed: number): (() => number) => rng(seed).next;


const VALUE_COLUMNS = [
  { name: 'b', type: 'bool', nullable: true },
  { name: 'i32', type: 'int32', nullable: true },
  { name: 'i64', type: 'int64', nullable: true },
  { name: 'f32', type: 'float32', nullable: true },
  { name: 'f64', type: 'float64', nullable: true },
  { name: 's', type: 'string', nullable: true },
  { name: 'ts', type: 'timestamp', nullable: true },
  { name: 'j', type: 'json', nullable: true },
  { name: 'l', type: 'list<int64>', nullable: true },
  { name: 'st', type: 'struct<a:int32,b:string>', nullable: true },
  { name: 'v', type: 'vector<2>', nullable: true },
];

const TABLES = {
  // One int64 key: numbers, and ids beyond 2^53 (kept as text).
  byId: { kind: 'pk' as const, primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, ...VALUE_COLUMNS] },
  byPair: { kind: 'pk' as const, primaryKey: ['a', 'z'], columns: [{ name: 'a', type: 'int32', nullable: false }, { name: 'z', type: 'string', nullable: false }, ...VALUE_COLUMNS] },
};

const KEYS = 3000;
function keyOf(table: keyof typeof TABLES, k: number): Record<string, unknown> {
  if (table === 'byPair') return { a: k % 50, z: `z${Math.floor(k / 50)}` };
  return { id: k % 10 === 0 ? (2n ** 60n + BigInt(k)).toString() : k * 7 - 1000 };
}

/**
 * Raw values (canonical once validated). Not -0 in integer columns nor
 * unrounded vectors: the changelog itself stores those as 0 and float32, so
 * a replayed row would differ from the written one whatever the state does.
 */
function rawRow(r: () => number, key: Record<string, unknown>): Record<string, unknown> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const row: Record<string, unknown> = { ...key };
  const maybe = (name: string, v: () => unknown): void => {
    const x = r();
    if (x < 0.15) row[name] = null;
    else if (x < 0.9) row[name] = v();
  };
  maybe('b', () => r() < 0.5);
  maybe('i32', () => pick([1, -1, 2147483647, Math.floor(r() * 1e6)]));
  maybe('i64', () => pick([Number.MAX_SAFE_INTEGER, '9007199254740993', '-9223372036854775808', Math.floor(r() * 1e12)]));
  maybe('f32', () => r() * 1000 - 500);
  maybe('f64', () => pick([-0, 5e-324, r() * 1e9]));
  maybe('s', () => pick(['', 'ünï ☃ 𝄞', `s${Math.floor(r() * 1e6)}`]));
  maybe('ts', () => pick([1_700_000_000_123, '2026-01-02T03:04:05.678Z', Math.floor(r() * 2e12)]));
  maybe('j', () => pick([{ a: [1, 'x', null], b: { c: true } }, [1, 2], 'text', 7.5]));
  maybe('l', () => pick([[], [1, null, '9007199254740993']]));
  maybe('st', () => pick([{ a: 1, b: 'x' }, { b: 'only' }]));
  maybe('v', () => [Math.fround(r()), 0.5]);
  return row;
}

async function openEngine(dataDir: string, snapshotEvery: number) {
  const cap = captureLogger();
  const engine = await Engine.open({ dataDir, logger: cap.logger, snapshotEvery });
  return { engine, lines: cap.lines };
}

/** Random history: concurrent upsert and delete requests; `want` gets the canonical rows written, by key text. */
async function history(engine: Engine, seed: number, rounds: number, want: Record<string, Map<string, Row>>): Promise<void> {
  const r = seeded(seed);
  for (let round = 0; round < rounds; round++) {
    const writes: Promise<unknown>[] = [];
    for (const name of Object.keys(TABLES) as (keyof typeof TABLES)[]) {
      const t = engine.table(name);
      for (let req = 0; req < 3; req++) {
        const del = r() < 0.3;
        const raw = Array.from({ length: 150 }, () => {
          const key = keyOf(name, Math.floor(r() * KEYS));
          return del ? key : rawRow(r, key);
        });
        const { rows, issues } = t.schema.validate(raw, { keysOnly: del });
        assert.deepEqual(issues, []);
        // Requests of one round commit in the order they were queued: apply them to the reference in that order.
        for (const row of rows) {
          if (del) want[name].delete(t.schema.keyOf(row)!);
          else want[name].set(t.schema.keyOf(row)!, row);
        }
        writes.push(t.write(rows, del ? 'delete' : 'upsert'));
      }
    }
    await Promise.all(writes);
  }
}

function check(engine: Engine, want: Record<string, Map<string, Row>>): void {
  for (const name of Object.keys(TABLES)) {
    const t = engine.table(name);
    assert.equal(t.rowCount, want[name].size, `${name} row count`);
    for (const [k, row] of want[name]) assert.deepStrictEqual(t.get(k), row, `${name} key ${k}`);
    for (let k = 0; k < KEYS; k++) {
      const text = t.schema.keyOf(t.schema.validate([keyOf(name as keyof typeof TABLES, k)], { keysOnly: true }).rows[0])!;
      if (!want[name].has(text)) assert.equal(t.get(text), undefined, `${name} key ${text} deleted`);
    }
    const live = [...t.liveRows()];
    assert.equal(live.length, want[name].size);
    for (const row of live) assert.deepStrictEqual(row, want[name].get(t.schema.keyOf(row)!));
  }
}

const snapPath = (dir: string, table: string) => join(dir, 'tables', table, 'state.snapshot');

for (const how of ['the snapshot written at close', 'an older snapshot and the changelog after it', 'the changelog alone'] as const) {
  test(`a pk table with thousands of keys survives a restart with identical rows: ${how}`, async () => {
    const dir = await tempDir();
    try {
      const want = { byId: new Map<string, Row>(), byPair: new Map<string, Row>() };
      // A small cadence: snapshots are taken while later commits keep changing the state.
      const first = await openEngine(dir.path, 1500);
      for (const [name, def] of Object.entries(TABLES)) await first.engine.defineTable(name, def);
      await history(first.engine, 17, 12, want);
      check(first.engine, want);
      const kept: Record<string, Buffer> = {};
      if (how === 'an older snapshot and the changelog after it') {
        for (const name of Object.keys(TABLES)) {
          await first.engine.table(name).snapshot();
          kept[name] = await readFile(snapPath(dir.path, name));
        }
        await history(first.engine, 18, 6, want);
      }
      await first.engine.close();
      if (how === 'an older snapshot and the changelog after it') for (const [name, buf] of Object.entries(kept)) await writeFile(snapPath(dir.path, name), buf);
      if (how === 'the changelog alone') for (const name of Object.keys(TABLES)) await unlink(snapPath(dir.path, name));

      const second = await openEngine(dir.path, 1e9);
      // asof's internal tables (_asof_*) recover too; this test is about its own two.
      const recovered = second.lines.filter((l) => l.msg === 'table recovered' && String(l.obj.table) in TABLES);
      assert.equal(recovered.length, 2);
      for (const l of recovered) {
        if (how === 'the changelog alone') assert.equal(l.obj.fromSnapshot, 0);
        else assert.ok((l.obj.fromSnapshot as number) > 0);
        if (how === 'an older snapshot and the changelog after it') assert.ok((l.obj.replayed as number) > 0);
        if (how === 'the snapshot written at close') assert.equal(l.obj.replayed, 0);
      }
      assert.deepEqual(second.lines.filter((l) => l.level === 'warn'), []);
      check(second.engine, want);
      // And it keeps working after the restart: more history, another restart.
      await history(second.engine, 19, 3, want);
      await second.engine.close();
      const third = await openEngine(dir.path, 1e9);
      check(third.engine, want);
      await third.engine.close();
    } finally {
      await dir.cleanup();
    }
  });
}
