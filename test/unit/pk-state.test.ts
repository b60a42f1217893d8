/**
 * PkState (the column-wise latest-row store of pk tables) against a plain
 * Map<string, Row> holding the very rows written, under random sets, deletes
 * and reads over every column type: every row read back must be deep-equal
 * (Object.is for numbers, so -0 and float32 rounding count) to the one written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PkState } from '../../src/engine/pk-state.js';
import { TableSchema, type Row, type TableDef } from '../../src/engine/schema.js';
import { rng } from '../integration/training-fixtures.js';

/** The shared seeded generator (mulberry32), as a plain function: a failure can be replayed. */
const seeded = (seed: number): (() => number) => rng(seed).next;

const COLUMNS = [
  { name: 'b', type: 'bool' },
  { name: 'i32', type: 'int32' },
  { name: 'i64', type: 'int64' },
  { name: 'f32', type: 'float32' },
  { name: 'f64', type: 'float64' },
  { name: 's', type: 'string' },
  { name: 'ts', type: 'timestamp' },
  { name: 'j', type: 'json' },
  { name: 'l', type: 'list<int64>' },
  { name: 'st', type: 'struct<a:int32,b:string>' },
  { name: 'v', type: 'vector<3>' },
];

/** As a table makes it: integer keys through the key column when the schema keys by number. */
const stateFor = (s: TableSchema) => new PkState(s.columns, s.numericKey ? s.columns.indexOf(s.keyColumns[0]) : undefined);

function schemaFor(keyCols: { name: string; type: string }[]): TableSchema {
  const def: TableDef = {
    name: 't',
    kind: 'pk',
    columns: [...keyCols.map((c) => ({ ...c, nullable: false })), ...COLUMNS.map((c) => ({ ...c, nullable: true }))],
    primaryKey: keyCols.map((c) => c.name),
    schemaVersions: [{ version: 1, columnCount: keyCols.length + COLUMNS.length, createdAt: 0 }],
    createdAt: 0,
  };
  return new TableSchema(def);
}

/** Raw input values of each type (validation turns them canonical: float32 rounded, big int64 to bigint, ...). */
function rawValue(type: string, r: () => number): unknown {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  switch (type) {
    case 'bool':
      return r() < 0.5;
    case 'int32':
      return pick([0, -0, 1, -1, 2147483647, -2147483648, Math.floor(r() * 1e6)]);
    case 'int64':
      return pick([0, -0, 42, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, '9007199254740993', '-9223372036854775808', '9223372036854775807', Math.floor(r() * 1e12)]);
    case 'float32':
      return pick([0.1, -0, 1e-7, 3.4e38, r() * 1000 - 500]);
    case 'float64':
      return pick([0.1, -0, 5e-324, Number.MAX_VALUE, r() * 1e9 - 5e8]);
    case 'string':
      return pick(['', 'a', 'ünï ☃ 𝄞', `s${Math.floor(r() * 1e6)}`]);
    case 'timestamp':
      return pick([0, -1, 1_700_000_000_123, '2026-01-02T03:04:05.678Z', Math.floor(r() * 2e12)]);
    case 'json':
      return pick([{ a: [1, 'x', null], b: { c: true } }, [1, 2], 'text', 7.5, false]);
    case 'list<int64>':
      return pick([[], [1, null, '9007199254740993'], [Math.floor(r() * 100)]]);
    case 'struct<a:int32,b:string>':
      return pick([{ a: 1, b: 'x' }, { a: null, b: null }, { b: 'only' }]);
    case 'vector<3>':
      return [r(), -r(), 0.1];
    default:
      throw new Error(type);
  }
}

function randomRow(s: TableSchema, key: Record<string, unknown>, r: () => number): Row {
  const raw: Record<string, unknown> = { ...key };
  for (const c of COLUMNS) if (r() < 0.85) raw[c.name] = r() < 0.2 ? null : rawValue(c.type, r);
  const { rows, issues } = s.validate([raw]);
  assert.deepEqual(issues, []);
  return rows[0];
}

const KEY_SHAPES: [string, { name: string; type: string }[], (r: () => number) => Record<string, unknown>][] = [
  // Numeric keys, with some beyond 2^53 (kept as strings) and some equal below it.
  ['int64 key', [{ name: 'id', type: 'int64' }], (r) => ({ id: r() < 0.1 ? `90071992547409${90 + Math.floor(r() * 9)}` : Math.floor(r() * 400) - 50 })],
  ['timestamp key', [{ name: 'at', type: 'timestamp' }], (r) => ({ at: Math.floor(r() * 300) * 1000 })],
  ['string key', [{ name: 'name', type: 'string' }], (r) => ({ name: r() < 0.1 ? String(Math.floor(r() * 10)) : `k${Math.floor(r() * 300)}` })],
  ['composite key', [{ name: 'a', type: 'int32' }, { name: 'z', type: 'string' }], (r) => ({ a: Math.floor(r() * 20), z: `z${Math.floor(r() * 15)}` })],
];

for (const [what, keyCols, randomKey] of KEY_SHAPES) {
  test(`pk state equals a map of the rows written under random sets, deletes and reads: ${what}`, () => {
    for (const seed of [1, 2, 3]) {
      const r = seeded(seed * 7919 + what.length);
      const s = schemaFor(keyCols);
      const state = stateFor(s);
      const want = new Map<string, Row>();
      /** The version each live key's row was written with (the step number stands in for an offset). */
      const wantVersion = new Map<string, number>();
      const compareAll = (): void => {
        assert.equal(state.size, want.size);
        for (const [k, row] of want) {
          assert.deepStrictEqual(state.get(s.indexKeyOfText(k)), row, `key ${k}`);
          assert.equal(state.version(s.indexKeyOfText(k)), wantVersion.get(k), `version of ${k}`);
          // Some columns by position, in another order, read without a row: the row's values.
          const positions = s.columns.map((_, j) => j).reverse();
          assert.deepStrictEqual(state.valuesAt(state.slotOf(s.indexKeyOfText(k)), positions), positions.map((j) => row[s.columns[j].name]), `values of ${k}`);
        }
      };
      let frozen: { state: ReturnType<PkState['freeze']>; want: Map<string, Row> } | undefined;
      for (let step = 0; step < 4000; step++) {
        const keyRow = s.validate([randomKey(r)], { keysOnly: true }).rows[0];
        const text = s.keyOf(keyRow)!;
        const key = s.indexKeyOf(keyRow)!;
        const x = r();
        if (x < 0.55) {
          const row = randomRow(s, keyRow, r);
          state.set(key, row, step);
          want.set(text, row);
          wantVersion.set(text, step);
        } else if (x < 0.8) {
          assert.equal(state.delete(key), want.delete(text), `delete ${text}`);
          wantVersion.delete(text);
        } else {
          assert.deepStrictEqual(state.get(key), want.get(text), `get ${text}`);
          assert.equal(state.has(key), want.has(text));
          assert.equal(state.version(key), wantVersion.get(text) ?? -1, `version of ${text}`);
        }
        if (step === 1500) frozen = { state: state.freeze(), want: new Map(want) };
        if (step % 1000 === 999) compareAll();
      }
      compareAll();
      // A row read is the caller's: changing it changes nothing stored.
      const [k0, row0] = [...want][0];
      const got = state.get(s.indexKeyOfText(k0))!;
      for (const c of s.columns) got[c.name] = 'changed';
      assert.deepStrictEqual(state.get(s.indexKeyOfText(k0)), row0);
      // The copy frozen at step 1500 still holds exactly the rows of then, however the state changed since.
      const f = frozen!;
      const sorted = (rows: Iterable<Row>) => [...rows].map((row) => [s.keyOf(row)!, row] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      assert.deepStrictEqual(sorted(f.state.rows()), sorted(f.want.values()));
      assert.equal(f.state.size, f.want.size);
      // Chunks hold the same values as the rows, column by column.
      const chunked: Row[] = [];
      for (const values of f.state.chunks(97)) {
        assert.ok(values[0].length <= 97);
        for (let i = 0; i < values[0].length; i++) chunked.push(Object.fromEntries(s.columns.map((c, j) => [c.name, values[j][i]])));
      }
      assert.deepStrictEqual(sorted(chunked), sorted(f.want.values()));
    }
  });
}

test('pk state: rows set from decoded columns equal those set from rows; clear empties; keys are IndexKeys', () => {
  const s = schemaFor([{ name: 'id', type: 'int64' }]);
  const r = seeded(99);
  const rows = Array.from({ length: 3000 }, (_, i) => randomRow(s, { id: i % 2 ? i : String(2n ** 60n + BigInt(i)) }, r));
  const values = s.columns.map((c) => rows.map((row) => row[c.name]));
  const a = stateFor(s);
  const b = stateFor(s);
  rows.forEach((row, i) => {
    a.set(s.indexKeyOf(row)!, row, 10 + i);
    b.setAt(s.indexKeyOf(row)!, values, i, NaN);
  });
  for (const row of rows) {
    assert.deepStrictEqual(a.get(s.indexKeyOf(row)!), row);
    assert.deepStrictEqual(b.get(s.indexKeyOf(row)!), row);
  }
  // Rows loaded without versions (a snapshot) get them from fillVersions, by key.
  assert.ok(Number.isNaN(b.version(s.indexKeyOf(rows[7])!)));
  const offsetOf = new Map<string | number, number>(rows.map((row, i) => [s.indexKeyOf(row)!, 10 + i]));
  b.fillVersions((key) => offsetOf.get(key)!);
  rows.forEach((row, i) => {
    assert.equal(a.version(s.indexKeyOf(row)!), 10 + i);
    assert.equal(b.version(s.indexKeyOf(row)!), 10 + i);
  });
  // Safe integers are keyed by number, int64 keys beyond 2^53 by their text.
  assert.equal([...a.keys()].filter((k) => typeof k === 'number').length, 1500);
  assert.deepStrictEqual(a.get(String(2n ** 60n)), rows[0]);
  assert.equal(a.get('1'), undefined);
  assert.deepStrictEqual(a.get(1), rows[1]);
  a.clear();
  assert.equal(a.size, 0);
  assert.equal(a.get(s.indexKeyOf(rows[1])!), undefined);
  assert.equal(a.version(s.indexKeyOf(rows[1])!), -1);
  a.set(s.indexKeyOf(rows[1])!, rows[1], 3);
  assert.deepStrictEqual(a.get(s.indexKeyOf(rows[1])!), rows[1]);
  assert.equal(a.version(s.indexKeyOf(rows[1])!), 3);
});

test('pk state: columns appended by a schema change read null for rows stored before it, and hold values after', () => {
  const s = schemaFor([{ name: 'id', type: 'int64' }]);
  const r = seeded(5);
  const state = stateFor(s);
  const before = Array.from({ length: 2000 }, (_, i) => randomRow(s, { id: i }, r));
  for (const row of before) state.set(row.id as number, row, 0);
  const def = s.def;
  const added = [
    { name: 'nb', type: 'bool', nullable: true },
    { name: 'nf', type: 'float64', nullable: true },
    { name: 'ns', type: 'string', nullable: true },
  ];
  const s2 = new TableSchema({ ...def, columns: [...def.columns, ...added], schemaVersions: [...def.schemaVersions, { version: 2, columnCount: def.columns.length + 3, createdAt: 1 }] });
  state.setColumns(s2.columns);
  for (const row of before) assert.deepStrictEqual(state.get(row.id as number), { ...row, nb: null, nf: null, ns: null });
  // Growth after the change (past the first capacity) keeps every column in step.
  const after = Array.from({ length: 3000 }, (_, i) => s2.validate([{ id: 5000 + i, nb: i % 3 === 0 ? null : i % 2 === 0, nf: i * 0.5, ns: `x${i}` }]).rows[0]);
  for (const row of after) state.set(row.id as number, row, 1);
  for (const row of after) assert.deepStrictEqual(state.get(row.id as number), row);
  for (const row of before) assert.deepStrictEqual(state.get(row.id as number), { ...row, nb: null, nf: null, ns: null });
});

test('pk state: freed slots are reused (size stays bounded under churn) and never leak old values', () => {
  const s = schemaFor([{ name: 'id', type: 'int64' }]);
  const r = seeded(11);
  const state = stateFor(s);
  const want = new Map<number, Row>();
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 100; i++) {
      const id = round * 100 + i;
      const row = randomRow(s, { id }, r);
      state.set(id, row, id);
      want.set(id, row);
    }
    // Delete all but the last round's rows; new rows land in freed slots.
    for (const id of [...want.keys()]) if (id < round * 100) {
      state.delete(id);
      want.delete(id);
    }
    // A row with every value null must not show a deleted row's values.
    const nulls = s.validate([{ id: -1 - round }]).rows[0];
    state.set(-1 - round, nulls, -1 - round);
    want.set(-1 - round, nulls);
  }
  for (const [id, row] of want) {
    assert.deepStrictEqual(state.get(id), row);
    assert.equal(state.version(id), id);
  }
  for (let id = 0; id < 4900; id++) assert.equal(state.version(id), -1);
  assert.equal(state.size, want.size);
  assert.ok(state.freeze().chunks(1e9).next().value![0].length === want.size);
});

test('pk state with integer keys: many keys, heavy churn, keys that share hash bits; every key found or absent as in a map', () => {
  const def: TableDef = {
    name: 't',
    kind: 'pk',
    columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'x', type: 'float64', nullable: true }],
    primaryKey: ['id'],
    schemaVersions: [{ version: 1, columnCount: 2, createdAt: 0 }],
    createdAt: 0,
  };
  const s = new TableSchema(def);
  assert.equal(s.numericKey, true);
  const state = new PkState(s.columns, 0);
  const want = new Map<number, number>();
  const r = seeded(23);
  const pool: number[] = [];
  for (let i = 0; i < 20000; i++) pool.push(i, -i - 1, i * 4294967296, (i % 64) * 2 ** 40 + 7, Number.MAX_SAFE_INTEGER - i);
  for (let step = 0; step < 200000; step++) {
    const id = pool[Math.floor(r() * (step < 100000 ? pool.length : 5000))];
    if (r() < 0.6) {
      const x = r();
      state.set(id, { id, x }, id);
      want.set(id, x);
    } else assert.equal(state.delete(id), want.delete(id));
    if (step % 50000 === 49999) {
      assert.equal(state.size, want.size);
      for (const id of pool) assert.deepStrictEqual(state.get(id), want.has(id) ? { id, x: want.get(id) } : undefined, `key ${id}`);
    }
  }
  assert.deepEqual(new Set(state.keys()), new Set(want.keys()));
});
