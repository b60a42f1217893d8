/**
 * Number literals a float64 bends, where the value must come as sent: the
 * cheap pre-check (json-safety.ts mayBend, mayBendBytes), the scan
 * (bentNumbers) and the judgement against a table's columns
 * (ingest/bent-columns.ts). Oracles: the pre-check's definition as a regular
 * expression, and decimal arithmetic in bigint for what a literal is.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { bentNumbers, mayBend, mayBendBytes, noteRowsText } from '../../src/engine/json-safety.js';
import { TableSchema, type TableDef } from '../../src/engine/schema.js';
import { checkBentNumbers, holdsExactNumbers } from '../../src/ingest/bent-columns.js';
import { AsofError } from '../../src/errors.js';
import { rng } from '../../support/rng.js';

const schemaOf = (columns: { name: string; type: string }[]): TableSchema =>
  new TableSchema({
    name: 't',
    kind: 'pk',
    primaryKey: ['id'],
    columns: columns.map((c) => ({ ...c, nullable: c.name !== 'id' })),
    schemaVersions: [{ version: 1, columnCount: columns.length, createdAt: 0 }],
    createdAt: 0,
  } as TableDef);

const T = schemaOf([
  { name: 'id', type: 'int64' },
  { name: 'i', type: 'int32' },
  { name: 'n', type: 'int64' },
  { name: 'ts', type: 'timestamp' },
  { name: 'f', type: 'float64' },
  { name: 'g', type: 'float32' },
  { name: 'xs', type: 'list<int64>' },
  { name: 'st', type: 'struct<a:int32,b:float64>' },
  { name: 'v', type: 'vector<2>' },
  { name: 'j', type: 'json' },
]);

/** The 400 (or undefined) for a REST JSON body's rows, as the write path judges them: validated first, then their text. */
function judge(body: string, schema = T): AsofError | undefined {
  const rows = (JSON.parse(body) as { rows: unknown[] }).rows;
  const v = schema.validate(rows);
  assert.deepEqual(v.issues, [], `the validator takes ${body}`);
  if (mayBend(body)) noteRowsText(rows, { text: body });
  try {
    checkBentNumbers(schema, rows);
    return undefined;
  } catch (e) {
    return e as AsofError;
  }
}
const row = (cells: string): string => `{"rows":[{"id":1},{"id":2,${cells}}]}`;

describe('bent numbers', () => {
  test('mayBend and mayBendBytes answer as their definition, /[\\d.]{16}|[eE]-\\d{3}/, on 20,000 random texts', () => {
    const reference = /[\d.]{16}|[eE]-\d{3}/;
    const alphabet = '0123456789012345678901234567890123456789...eE--+",:{}[] ab\u00e9\u6771';
    const next = rng(7);
    let positives = 0;
    for (let k = 0; k < 20_000; k++) {
      const len = Math.floor(next() * 120);
      let s = '';
      for (let i = 0; i < len; i++) s += alphabet[Math.floor(next() * alphabet.length)];
      const want = reference.test(s);
      positives += want ? 1 : 0;
      assert.equal(mayBend(s), want, JSON.stringify(s));
      assert.equal(mayBendBytes(Buffer.from(s)), want, JSON.stringify(s));
    }
    // Both answers were exercised many times.
    assert.ok(positives > 1000 && positives < 19_000, `${positives} positives`);
  });

  test('mayBend finds a long run or a tiny exponent anywhere, and is false for bench-like bodies', () => {
    for (let at = 0; at < 24; at++) {
      const pad = 'x'.repeat(at);
      assert.equal(mayBend(`${pad}1.${'0'.repeat(13)}1`), true, `a run of 16 at ${at}`);
      assert.equal(mayBend(`${pad}1.${'0'.repeat(12)}1,`), false, `a run of 15 at ${at}`);
      assert.equal(mayBend(`${pad}1e-400`), true, `tiny at ${at}`);
      assert.equal(mayBendBytes(new Uint8Array(Buffer.from(`${pad}5E-324`))), true, `tiny at ${at}, bytes`);
    }
    const body = JSON.stringify({ rows: Array.from({ length: 200 }, (_, i) => ({ user: i * 7919, ts: new Date(1767225600000 + i * 1000).toISOString(), amount: Math.round(i * 1.31) / 100, score: (i % 100) / 128, d: -1e-99 })) });
    assert.equal(mayBend(body), false);
    assert.equal(mayBendBytes(Buffer.from(body)), false);
  });

  test('bentNumbers asks `counts` before reading a literal, with its path, and skips what it refuses', () => {
    const text = '{"rows":[{"f":0.1000000000000000055511151231257827,"n":1.0000000000000000001}]}';
    const asked: unknown[] = [];
    const found = bentNumbers(text, (p) => (asked.push(p), p[2] === 'n'));
    assert.deepEqual(asked, [['rows', 0, 'f'], ['rows', 0, 'n']]);
    assert.deepEqual(found, [{ path: ['rows', 0, 'n'], literal: '1.0000000000000000001', stored: '1' }]);
    assert.equal(bentNumbers(text).length, 2);
  });

  test('int32, int64 and timestamp refuse a literal a float64 bends, naming row, column and why; lists and structs too', () => {
    const cases: [string, string, string][] = [
      ['"n":1.0000000000000000001', 'n', 'row 1: column "n": expected int64, got 1.0000000000000000001, which is not a whole number (a JSON number is held as a float64, which would store it as 1: refused rather than rounded); nothing was written'],
      ['"i":-7.00000000000000000001', 'i', 'row 1: column "i": expected int32, got -7.00000000000000000001, which is not a whole number (a JSON number is held as a float64, which would store it as -7: refused rather than rounded); nothing was written'],
      // Just under 2^53: the validator takes the 9007199254740991 it is read as.
      ['"n":9007199254740990.6', 'n', 'row 1: column "n": expected int64, got 9007199254740990.6, which is not a whole number (a JSON number is held as a float64, which would store it as 9007199254740991: refused rather than rounded); nothing was written'],
      // Underflow: read as 0.
      ['"n":1e-400', 'n', 'row 1: column "n": expected int64, got 1e-400, which is not a whole number (a JSON number is held as a float64, which would store it as 0: refused rather than rounded); nothing was written'],
      ['"ts":1700000000000.00000001', 'ts', 'row 1: column "ts": epoch milliseconds must be a whole number, got 1700000000000.00000001 (a JSON number is held as a float64, which would store it as 1700000000000: refused rather than rounded); nothing was written'],
      ['"xs":[1,2.0000000000000000001]', 'xs[]', 'row 1: column "xs[]": expected int64, got 2.0000000000000000001, which is not a whole number (a JSON number is held as a float64, which would store it as 2: refused rather than rounded); nothing was written'],
      ['"st":{"b":0.30000000000000000001,"a":3.00000000000000000001}', 'st.a', 'row 1: column "st.a": expected int32, got 3.00000000000000000001, which is not a whole number (a JSON number is held as a float64, which would store it as 3: refused rather than rounded); nothing was written'],
      ['"j":{"x":[1.0000000000000000001]}', 'j', 'row 1: column "j": at x.0: 1.0000000000000000001 would be stored as 1, as a JSON number is held as a float64 (a float64 keeps 15 to 17 significant digits, fewer below 2.2e-308: send more as a string); nothing was written'],
    ];
    for (const [cells, field, message] of cases) {
      const e = judge(row(cells));
      assert.ok(e instanceof AsofError, cells);
      assert.equal(e.code, 'ASOF_INVALID_ROW');
      assert.equal(e.message, message);
      assert.deepEqual((e.details as { row: number; field: string }[]).map((d) => [d.row, d.field]), [[1, field]]);
    }
  });

  test('literals a float64 holds pass: 1, 1.0, 1e3, -0, 2^53 - 1, long ones in strings; float32, float64 and vectors take the nearest value', () => {
    const pass = [
      '"n":1,"i":1.0,"ts":1e3',
      '"n":-0,"i":-0.0,"ts":-0',
      '"n":9007199254740991,"i":2147483647,"ts":253402300799999',
      '"n":-9007199254740991.000000000000,"ts":1700000000000.000000000000000',
      '"n":100000000000000000000e-20,"i":1E2',
      '"f":0.1,"g":0.1,"v":[0.1,0.2]',
      '"f":0.1000000000000000055511151231257827,"g":1.00000000000000000001,"v":[1.00000000000000000001,12345678901234567890]',
      '"st":{"a":1,"b":0.30000000000000000001}',
      '"j":{"s":"1.0000000000000000001","x":[9007199254740992,1e300,0.1,5e-324]}',
    ];
    for (const cells of pass) assert.equal(judge(row(cells)), undefined, cells);
  });

  test('NDJSON text: the row is counted over non-blank lines', () => {
    const text = '{"id":1,"f":0.1000000000000000055511151231257827}\n\n{"id":2,"ts":1.5000000000000000001}\n';
    const rows = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown);
    noteRowsText(rows, { text, ndjson: true });
    assert.throws(() => checkBentNumbers(T, rows), (e: AsofError) => e.message.startsWith('row 1: column "ts": epoch milliseconds must be a whole number, got 1.5000000000000000001'));
  });

  test('a table with no int32, int64, timestamp or json part reads no text', () => {
    const floats = schemaOf([
      { name: 'id', type: 'string' },
      { name: 'f', type: 'float64' },
      { name: 'l', type: 'list<float32>' },
    ]);
    assert.equal(holdsExactNumbers(floats), false);
    assert.equal(holdsExactNumbers(T), true);
    assert.equal(holdsExactNumbers(schemaOf([{ name: 'id', type: 'string' }, { name: 's', type: 'struct<a:list<timestamp>>' }])), true);
  });
});
