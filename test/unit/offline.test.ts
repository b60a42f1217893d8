/**
 * Offline building blocks without services: CSV cell parsing, column type
 * inference, the entity index's two lookups, and the row order of the join.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as A from 'apache-arrow';
import { buildColumn } from '../../src/engine/arrow-codec.js';
import { fromText } from '../../src/engine/schema.js';
import { parseType } from '../../src/engine/types.js';
import { readKeys, readValues } from '../../src/offline/columns.js';
import { EntityIndex } from '../../src/offline/entity-index.js';
import { TypeInference } from '../../src/offline/files.js';
import { fromCsvText, tableDefinitionFor } from '../../src/offline/import.js';
import { orderRows } from '../../src/offline/pit.js';

test('CSV cells become values of the column type; what does not parse is passed on for validation to reject', () => {
  const t = (s: string) => parseType(s);
  assert.equal(fromCsvText(t('timestamp'), '2024-01-02 03:04:05'), Date.UTC(2024, 0, 2, 3, 4, 5), 'no zone: UTC');
  assert.equal(fromCsvText(t('timestamp'), '2024-01-02'), Date.UTC(2024, 0, 2));
  assert.equal(fromCsvText(t('timestamp'), '2024-01-02T03:04:05.5+01:00'), Date.UTC(2024, 0, 2, 2, 4, 5, 500));
  assert.equal(fromCsvText(t('timestamp'), '1700000000000'), 1700000000000, 'epoch ms');
  assert.equal(fromCsvText(t('timestamp'), 'soon'), 'soon');
  assert.equal(fromCsvText(t('int32'), ' 42 '), 42);
  assert.equal(fromCsvText(t('float64'), 'x'), 'x');
  assert.equal(fromCsvText(t('int64'), '9007199254740993'), '9007199254740993', 'kept as text: the validator makes it a bigint');
  assert.equal(fromCsvText(t('bool'), 'TRUE'), true);
  assert.equal(fromCsvText(t('bool'), '0'), false);
  assert.equal(fromCsvText(t('float64'), ''), null);
  assert.equal(fromCsvText(t('string'), ''), '', 'an empty string cell stays an empty string');
  assert.deepEqual(fromCsvText(t('list<int32>'), '[1,2]'), [1, 2]);
  assert.equal(fromCsvText(t('json'), '{oops'), '{oops');
});

test('CSV cells are not bent into other values: dates that do not exist and non-decimal number text stay text, for validation to refuse', () => {
  const t = (s: string) => parseType(s);
  // Date.parse rolled these over: Feb 30 → Mar 2, Apr 31 → May 1, 24:00 → the next day.
  for (const s of ['2021-02-30', '2021-02-30 12:00:00', '2021-04-31T00:00:00', '2021-01-01 24:00:00', '2021-02-30T00:00:00Z', '2021-01-01 10:00:60']) {
    assert.equal(fromCsvText(t('timestamp'), s), s, s);
  }
  assert.equal(fromCsvText(t('timestamp'), '2024-02-29 23:59:59.999'), Date.UTC(2024, 1, 29, 23, 59, 59, 999), 'a leap day exists');
  // Number() read hexadecimal, binary and octal text, and an exponent as an integer.
  for (const s of ['0x10', '0b11', '0o7', '1e1', '1.0', 'Infinity', '1_000']) assert.equal(fromCsvText(t('int32'), s), s, s);
  for (const s of ['0x10', '0b11', 'Infinity', '-Infinity', '1,5']) assert.equal(fromCsvText(t('float64'), s), s, s);
  assert.equal(fromCsvText(t('int32'), '-7'), -7);
  assert.equal(fromCsvText(t('int32'), '007'), 7, 'leading zeros are still decimal');
  assert.equal(fromCsvText(t('float64'), '1e1'), 10, 'an exponent is decimal number text for a float');
  assert.equal(fromCsvText(t('float32'), '-.5'), -0.5);
  assert.equal(fromCsvText(t('float64'), '2.'), 2);
});

test('number text from URLs and query values (fromText) is decimal only, integers only for int32', () => {
  const t = (s: string) => parseType(s);
  for (const s of ['0x10', '0b11', '1e1', ' 7', '']) assert.equal(fromText(t('int32'), s), s, JSON.stringify(s));
  assert.equal(fromText(t('int32'), '16'), 16);
  assert.equal(fromText(t('float64'), '0x10'), '0x10');
  assert.equal(fromText(t('float64'), '1.5e3'), 1500);
  assert.equal(fromText(t('int64'), '9223372036854775807'), '9223372036854775807', 'kept as text: the validator reads it exactly');
});

test('column types inferred from JSON rows', () => {
  const inf = new TypeInference();
  for (const [i, r] of [
    { a: 1, b: 1.5, c: 'x', d: true, e: null, f: 1, g: [1] },
    { a: 2, b: 2, c: 'y', d: false, f: 'z', h: 3 },
  ].entries()) inf.add(r, i);
  assert.deepEqual(
    inf.columns().map((c) => `${c.name}:${c.type.kind}`),
    ['a:int64', 'b:float64', 'c:string', 'd:bool', 'e:string', 'f:json', 'g:json', 'h:int64'],
  );
});

test('a table definition from a file: key and event time not nullable', () => {
  const def = tableDefinitionFor([{ name: 'id', type: parseType('int64') }, { name: 'ts', type: parseType('timestamp') }, { name: 'v', type: parseType('list<float32>') }], { kind: 'pk', primaryKey: ['id'], eventTime: 'ts' });
  assert.deepEqual(def, {
    kind: 'pk',
    columns: [
      { name: 'id', type: 'int64', nullable: false },
      { name: 'ts', type: 'timestamp', nullable: false },
      { name: 'v', type: 'list<float32>', nullable: true },
    ],
    eventTime: 'ts',
    primaryKey: ['id'],
  });
});

function vector(type: string, values: unknown[]): A.Vector {
  const t = parseType(type);
  return A.makeVector(buildColumn(t, values)) as A.Vector;
}

test('the entity index: the direct table and the hash lookup give the same ids; nulls and strangers are -1', () => {
  const values = [5, 1_000_000, null, 7, -3, 5, 9007199254740993n, 42, 40];
  for (const type of ['int64', 'int32'] as const) {
    const vals = type === 'int32' ? values.map((v) => (typeof v === 'bigint' ? 11 : v)) : values;
    const asked: (number | string)[] = [7, 5, -3, 40];
    const dense = EntityIndex.build(asked, new Int32Array(4));
    // A string key among them keeps this index on the hash lookup.
    const hashed = EntityIndex.build([...asked, 'pad'], new Int32Array(5));
    assert.ok(dense.direct && !hashed.direct, 'one index of each kind');
    const vec = vector(type, vals);
    const a = new Int32Array(vals.length);
    const b = new Int32Array(vals.length);
    dense.idsOf(vec, parseType(type), vals.length, a);
    hashed.idsOf(vec, parseType(type), vals.length, b);
    const want = (index: EntityIndex) => vals.map((v) => (asked.includes(v as number) ? index.idOf(v as number) : -1));
    assert.deepEqual([...a], want(dense), `${type}, direct table`);
    assert.deepEqual([...b], want(hashed), `${type}, hash`);
  }
});

test('keys and values read from Arrow buffers equal the engine decoder, sliced batches included', () => {
  const cols: [string, unknown[]][] = [
    ['int64', [1, null, 9007199254740993n, -5]],
    ['timestamp', [0, 1700000000123, null, -1000]],
    ['string', ['a', null, 'héllo', '']],
    ['float32', [1.5, null, -2, 0]],
    ['bool', [true, false, null, true]],
  ];
  for (const [type, values] of cols) {
    const vec = vector(type, values).slice(1, 4);
    const want = values.slice(1, 4);
    assert.deepEqual(readValues(vec, parseType(type), 3), want, type);
    if (type !== 'float32' && type !== 'bool') assert.deepEqual(readKeys(vec, parseType(type), 3), want.map((v) => (typeof v === 'bigint' ? v.toString() : v)), `${type} keys`);
  }
});

test('rows are grouped by entity and ordered by time within each; rows without an entity are left out', () => {
  const o = orderRows({ n: 6, t: Float64Array.from([30, 10, 20, 5, 1, 10]), ent: Int32Array.from([0, 1, 0, -1, 1, 0]), entities: 2 });
  assert.deepEqual([...o.start], [0, 3, 5]);
  assert.deepEqual([...o.row], [5, 2, 0, 4, 1]);
  assert.deepEqual([...o.t], [10, 20, 30, 1, 10]);
  const half = orderRows({ n: 6, t: Float64Array.from([30, 10, 20, 5, 1, 10]), ent: Int32Array.from([0, 1, 0, -1, 1, 0]), entities: 2 }, { count: 2, index: 1 });
  assert.deepEqual([...half.row], [4, 1], 'partition 1 of 2: entity 1 only');
});
