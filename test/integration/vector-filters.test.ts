/**
 * Structured filters give the same rows on rows in memory and on rows in a
 * Lance dataset with a trained ANN index, and both equal an oracle written
 * here (SQL semantics: a null never compares true; strings by code point).
 * Hostile strings (quotes, `' OR 1=1 --`, backslashes, backticks, newlines,
 * emoji) are data: a filter on them matches exactly the rows holding them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof, type TestAsof } from '../helpers.js';
import { rng } from '../../support/rng.js';

const D = 4;
const HOSTILE = ["it's", "' OR 1=1 --", "'; DROP TABLE x; --", '\\', "\\'", '`n` > 0', '"quoted"', 'line\nbreak', '', 'é€😀', '\u{10000}', '\uffff', 'a%_b', 'NULL'];
const STRINGS = [...HOSTILE, 'apple', 'banana', 'Apple', 'zeta'];
const INTS = [-3, 0, 1, 2, 7, 1_000_000, '9007199254740993', '-9007199254740993'];
const FLOATS = [-2.5, 0, 0.1, 1e-7, 3.75, 1e21, 123456.789];
const TIMES = ['2025-01-01T00:00:00.000Z', '2025-06-01T12:00:00.000Z', '2026-01-01T00:00:00.000Z'];

const pick = <T>(r: () => number, xs: T[]): T => xs[Math.floor(r() * xs.length)];
const maybe = <T>(r: () => number, v: T): T | null => (r() < 0.15 ? null : v);

type Row = { id: string; s: string | null; i: number | string | null; f: number | null; b: boolean | null; t: string | null; emb: number[] };

/** The oracle's comparison: null never compares; int64 beyond 2^53 as BigInt; strings by code point. */
function cmp(col: string, a: unknown, b: unknown): number {
  if (a === null || a === undefined) return NaN;
  if (col === 'i') {
    const x = BigInt(a as string), y = BigInt(b as string);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (col === 's') {
    const x = [...(a as string)].map((c) => c.codePointAt(0)!), y = [...(b as string)].map((c) => c.codePointAt(0)!);
    for (let k = 0; k < Math.min(x.length, y.length); k++) if (x[k] !== y[k]) return x[k] - y[k];
    return x.length - y.length;
  }
  if (col === 't') return Date.parse(a as string) - Date.parse(b as string);
  if (col === 'b') return a === b ? 0 : 1;
  return (a as number) - (b as number);
}
function oracle(f: any, row: Row): boolean {
  return Object.entries(f).every(([k, v]: [string, any]) => {
    if (k === 'and') return v.every((g: any) => oracle(g, row));
    if (k === 'or') return v.some((g: any) => oracle(g, row));
    const x = (row as any)[k];
    if (v === null) return x === null;
    if (typeof v !== 'object') return cmp(k, x, v) === 0;
    return Object.entries(v).every(([op, y]: [string, any]) => {
      if (op === 'ne' && y === null) return x !== null;
      if (op === 'in') return y.some((z: any) => cmp(k, x, z) === 0);
      const c = cmp(k, x, y);
      return { ne: c !== 0 && !Number.isNaN(c), gt: c > 0, gte: c >= 0, lt: c < 0, lte: c <= 0 }[op as 'gt']!;
    });
  });
}

const VALUES: Record<string, unknown[]> = { s: STRINGS, i: INTS, f: FLOATS, t: TIMES, b: [true, false] };
function randomFilter(r: () => number, depth = 0): any {
  const x = r();
  if (depth < 2 && x < 0.2) return { and: [randomFilter(r, depth + 1), randomFilter(r, depth + 1)] };
  if (depth < 2 && x < 0.4) return { or: [randomFilter(r, depth + 1), randomFilter(r, depth + 1)] };
  const col = pick(r, ['s', 'i', 'f', 't', 'b']);
  const vals = VALUES[col];
  const op = col === 'b' ? pick(r, ['eq', 'ne', 'in']) : pick(r, ['eq', 'ne', 'in', 'gt', 'gte', 'lt', 'lte', 'null', 'notnull']);
  if (op === 'eq') return { [col]: pick(r, vals) };
  if (op === 'null') return { [col]: null };
  if (op === 'notnull') return { [col]: { ne: null } };
  if (op === 'in') return { [col]: { in: [pick(r, vals), pick(r, vals)] } };
  return { [col]: { [op]: pick(r, vals) } };
}

async function define(a: TestAsof, name: string): Promise<void> {
  const res = await a.req('PUT', `/tables/${name}`, {
    kind: 'pk',
    primaryKey: ['id'],
    columns: [
      { name: 'id', type: 'string', nullable: false },
      { name: 's', type: 'string' },
      { name: 'i', type: 'int64' },
      { name: 'f', type: 'float64' },
      { name: 'b', type: 'bool' },
      { name: 't', type: 'timestamp' },
      { name: 'emb', type: `vector<${D}>`, metric: 'l2' },
    ],
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

test('filters: rows in memory and in an indexed Lance dataset match the same rows as the oracle; hostile values are data', async () => {
  // Index trained at 100 rows, so the cold table is searched through IVF_HNSW_SQ with a where clause.
  const a = await testAsof({ vectorFlushMs: 3_600_000, vectorIndexMinRows: 100 });
  try {
    const r = rng(11);
    const rows: Row[] = [];
    for (let n = 0; n < 300; n++) {
      rows.push({
        id: `r${n}`,
        s: maybe(r, n < STRINGS.length ? STRINGS[n] : pick(r, STRINGS)),
        i: maybe(r, pick(r, INTS)),
        f: maybe(r, pick(r, FLOATS)),
        b: maybe(r, r() < 0.5),
        t: maybe(r, pick(r, TIMES)),
        emb: Array.from({ length: D }, () => Math.fround(r() * 2 - 1)),
      });
    }
    for (const t of ['hot', 'cold']) {
      await define(a, t);
      assert.equal((await a.req('POST', `/tables/${t}/rows`, { rows })).status, 200);
    }
    const cold = a.services.vectors.column('cold', 'emb')!;
    await cold.settle();
    assert.ok(cold.indexMetric, 'the cold column has a trained index');
    assert.equal(cold.hotRows, 0);
    assert.equal(a.services.vectors.column('hot', 'emb')!.hotRows, 300);
    const metrics = (await a.req('GET', '/metrics')).body as string;
    for (const line of ['table="cold",column="emb",state="indexed"} 300', 'table="cold",column="emb",state="memory"} 0', 'table="hot",column="emb",state="memory"} 300', 'table="hot",column="emb",state="indexed"} 0']) {
      assert.ok(metrics.includes(`asof_vector_rows{${line}`), line);
    }

    const q = [0.1, -0.2, 0.3, 0.05];
    const run = async (table: string, filter: unknown): Promise<string[]> => {
      const s = await a.req('POST', '/vectors/search', { table, vector: q, k: 1000, filter });
      assert.equal(s.status, 200, `${table} ${JSON.stringify(filter)}: ${JSON.stringify(s.body)}`);
      return s.body.results.map((x: any) => x.key).sort();
    };
    const filters: unknown[] = [
      ...HOSTILE.map((h) => ({ s: h })),
      { s: { in: HOSTILE } },
      { s: { gt: "' OR 1=1 --" } },
      { or: [{ s: "' OR 1=1 --" }, { i: { gt: 5 } }] },
      { i: { gt: '9007199254740992' } },
      { f: { lte: 1e-7 } },
      { f: 1e21 },
    ];
    for (let n = 0; n < 120; n++) filters.push(randomFilter(r));
    for (const f of filters) {
      const want = rows.filter((row) => oracle(f, row)).map((row) => row.id).sort();
      const hot = await run('hot', f);
      const coldRows = await run('cold', f);
      assert.deepEqual(hot, want, `memory vs oracle for ${JSON.stringify(f)}`);
      assert.deepEqual(coldRows, want, `Lance vs oracle for ${JSON.stringify(f)}`);
    }
    // A hostile value matches exactly the row holding it: the value never became SQL.
    assert.deepEqual(await run('cold', { s: "' OR 1=1 --" }), rows.filter((x) => x.s === "' OR 1=1 --").map((x) => x.id).sort());
    assert.ok((await run("cold", { s: "' OR 1=1 --" })).length < rows.length / 4);
    // k results whenever k rows match, through the index and a selective filter.
    const few = rows.filter((x) => x.b === true).length;
    for (const t of ['hot', 'cold']) {
      const s = await a.req('POST', '/vectors/search', { table: t, vector: q, k: 10, filter: { b: true } });
      assert.equal(s.body.results.length, Math.min(10, few));
    }
  } finally {
    await a.destroy();
  }
});
