/**
 * Rows parsed and validated on an ingest thread come back as columns and are
 * rebuilt (json-rows.ts). Oracle: the main thread's path for the same text,
 * JSON.parse then the table's validator. Every body the thread cannot answer
 * for exactly is declined (undefined), never bent.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { TableSchema, type TableDef } from '../../src/engine/schema.js';
import { columnar, fromColumns, parseWriteBody } from '../../src/ingest/json-rows.js';
import { heapAfterGc } from '../helpers.js';

const def = (columns: { name: string; type: string; nullable: boolean }[]): TableDef => ({
  name: 't',
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['id'],
  columns,
  schemaVersions: [{ version: 1, columnCount: columns.length, createdAt: 0 }],
  createdAt: 0,
});

const ALL = new TableSchema(
  def([
    { name: 'id', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'i', type: 'int32', nullable: true },
    { name: 'f', type: 'float32', nullable: true },
    { name: 'd', type: 'float64', nullable: true },
    { name: 's', type: 'string', nullable: true },
    { name: 'b', type: 'bool', nullable: true },
  ]),
);

/** A deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TEXTS = ['', 'a', 'São Paulo', '東京', '😀 emoji', 'quote " inside', 'back\\slash', 'tab\there', 'x'.repeat(40)];

function randomRow(r: () => number): Record<string, unknown> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const row: Record<string, unknown> = {
    id: pick([0, -1, 1, 2 ** 53 - 1, -(2 ** 53) + 1, Math.floor(r() * 1e6), '42', '9007199254740991']),
    ts: pick([Math.floor(r() * 2e12), '2026-01-01T00:00:00Z', '2026-03-04T05:06:07.891+02:00', '2024-02-29t23:59:59.1234z', '1767225600000']),
    i: pick([null, 0, -2147483648, 2147483647, Math.floor(r() * 1000), 3.0]),
    f: pick([null, 0.1, -0, 1e-40, 3.4e38, r() * 1000, 16777217]),
    d: pick([null, 0.1, -0, 5e-324, 1.7976931348623157e308, r() * 1e6 - 5e5, 123.456, 1e21]),
    s: pick([null, ...TEXTS]),
    b: pick([null, true, false]),
  };
  // Absent nullable columns are null; key order varies.
  if (r() < 0.2) delete row.s;
  if (r() < 0.2) delete row.b;
  const keys = Object.keys(row);
  if (r() < 0.5) keys.reverse();
  return Object.fromEntries(keys.map((k) => [k, row[k]]));
}

const bytes = (text: string): Uint8Array => Buffer.from(text, 'utf8');

describe('json-rows: rows across threads as columns', () => {
  test('generated bodies: the rows rebuilt from columns equal the main thread\'s validated rows, value for value and key for key', () => {
    const r = rng(7);
    for (let b = 0; b < 40; b++) {
      const rows = Array.from({ length: 1 + Math.floor(r() * 200) }, () => randomRow(r));
      const text = r() < 0.5 ? JSON.stringify({ rows }) : JSON.stringify({ op: 'upsert', rows }, null, 2);
      const oracle = ALL.validate(JSON.parse(text).rows);
      assert.deepEqual(oracle.issues, [], 'the generator makes valid rows only');
      const parsed = parseWriteBody(bytes(text), ALL, 100_000);
      assert.ok(parsed, `body ${b} is answered`);
      const rebuilt = fromColumns(ALL, parsed);
      assert.equal(rebuilt.length, oracle.rows.length);
      for (let i = 0; i < rebuilt.length; i++) {
        assert.deepEqual(Object.keys(rebuilt[i]), Object.keys(oracle.rows[i]), `row ${i}: same columns in the same order`);
        for (const k of Object.keys(oracle.rows[i])) assert.ok(Object.is(rebuilt[i][k], oracle.rows[i][k]), `body ${b} row ${i} column ${k}: ${String(rebuilt[i][k])} vs ${String(oracle.rows[i][k])}`);
      }
    }
  });

  for (const [label, fill] of [['ASCII', 'abcdefghij'], ['non-ASCII', 'ação, 東京 ']] as const) {
    test(`a rebuilt string (${label}) keeps no other row of its body alive`, () => {
      // A slice of the column's text would keep the whole text (every row's value) for as long as the one value lives.
      const bodies = 100;
      const rows = 1000;
      const value = (b: number, i: number): string => `${b}:${i}:`.padEnd(200, fill);
      const before = heapAfterGc();
      const kept: string[] = [];
      for (let b = 0; b < bodies; b++) {
        const text = JSON.stringify({ rows: Array.from({ length: rows }, (_, i) => ({ id: i, ts: '2026-01-01T00:00:00Z', s: i % 2 ? value(b, i) : `short ${i}` })) });
        const rebuilt = fromColumns(ALL, parseWriteBody(bytes(text), ALL, rows)!);
        for (let i = 0; i < rows; i++) assert.equal(rebuilt[i].s, i % 2 ? value(b, i) : `short ${i}`);
        kept.push(rebuilt[7].s as string);
      }
      const grown = heapAfterGc() - before;
      // Kept: 100 values of 200 characters (20-40 KB); the texts of their bodies: 100 x 100 KB-200 KB (10-20 MB).
      assert.ok(grown < 3e6, `the heap grew by ${(grown / 1e6).toFixed(1)} MB keeping ${kept.length} values of 200 characters`);
    });
  }

  test('declined, for the main thread to answer: anything it would refuse or handle otherwise', () => {
    const good = { id: 1, ts: '2026-01-01T00:00:00Z' };
    const declined = (text: string | Uint8Array, schema = ALL, maxRows = 100): void =>
      assert.equal(parseWriteBody(typeof text === 'string' ? bytes(text) : text, schema, maxRows), undefined, String(text).slice(0, 80));
    assert.ok(parseWriteBody(bytes(JSON.stringify({ rows: [good] })), ALL, 100), 'the good body is answered');
    declined(Buffer.from([0x7b, 0xff, 0x7d]));
    declined('{"rows": [');
    declined('');
    declined('[]');
    declined(JSON.stringify({ rows: {} }));
    declined(JSON.stringify({ rows: [good, null] }));
    declined(JSON.stringify({ rows: [good, [1]] }));
    declined(JSON.stringify({ rows: [good], op: 'delete' }));
    declined(JSON.stringify({ rows: [good], op: 'insert' }));
    declined(JSON.stringify({ rows: [good, { ...good, extra: 1 }] }), ALL);
    declined(JSON.stringify({ rows: [good, { id: 2 }] }));
    declined(JSON.stringify({ rows: [good, { ...good, i: 2 ** 31 }] }));
    declined(JSON.stringify({ rows: [good, { ...good, ts: 1.5 }] }));
    declined('{"rows": [{"id": 1, "ts": "2026-01-01T00:00:00Z", "s": "\\ud800"}]}');
    declined('{"rows": [{"id": 1, "ts": "2026-01-01T00:00:00Z", "__proto__": {"x": 1}}]}');
    // An int64 beyond 2^53 is a bigint once validated: it has no Float64 column form.
    declined(JSON.stringify({ rows: [{ ...good, id: '9007199254740993' }] }));
    declined(JSON.stringify({ rows: [good, good, good] }), ALL, 2);
    const withJson = new TableSchema(def([{ name: 'id', type: 'int64', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, { name: 'j', type: 'json', nullable: true }]));
    assert.equal(columnar(withJson), false);
    declined(JSON.stringify({ rows: [good] }), withJson);
  });
});
