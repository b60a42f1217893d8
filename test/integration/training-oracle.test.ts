/**
 * DuckDB as an independent oracle: on generated data, every last-value
 * feature of a training set (pointInTime "event") equals what DuckDB's
 * ASOF LEFT JOIN picks, with ties in event time broken by offset as DESIGN.md
 * says (highest offset wins), and the view's ttl applied on top.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { TrainingSets } from '../../src/offline/training-set.js';
import { testAsof, type TestAsof } from '../helpers.js';
import { rng, trainingRows } from './training-fixtures.js';

const T0 = Date.UTC(2024, 0, 1);
const HOUR = 3_600_000;
const TTL_MS = 6 * HOUR;

describe('training sets against DuckDB ASOF JOIN', () => {
  let asof: TestAsof;
  let duck: DuckDBConnection;
  let db: DuckDBInstance;
  const labels: { row: number; card: string; timestamp: number }[] = [];

  before(async () => {
    asof = await testAsof();
    const { engine, registry, ingest } = asof.services;
    await engine.defineTable('txn', {
      kind: 'log',
      eventTime: 'ts',
      columns: [
        { name: 'card', type: 'string', nullable: false },
        { name: 'ts', type: 'timestamp', nullable: false },
        { name: 'amount', type: 'float64', nullable: true },
        { name: 'merchant', type: 'string', nullable: true },
        { name: 'n', type: 'int64', nullable: true },
      ],
    });
    const cols = [{ name: 'amount', column: 'amount' }, { name: 'merchant', column: 'merchant' }, { name: 'n', column: 'n' }];
    await registry.defineView('txn_last', { source: 'txn', entity: 'card', features: cols });
    await registry.defineView('txn_ttl', { source: 'txn', entity: 'card', ttl: '6h', features: cols });

    // Feature rows in a shuffled order (event times out of order); a quarter reuse an earlier time of the same card (ties).
    const r = rng(11);
    const cards = Array.from({ length: 40 }, (_, i) => `card-${i}`);
    const rows: { card: string; ts: number; amount: number | null; merchant: string | null; n: number | null }[] = [];
    const times = new Map<string, number[]>();
    for (let i = 0; i < 4000; i++) {
      const card = r.pick(cards);
      const seen = times.get(card) ?? [];
      const ts = seen.length && r.chance(0.25) ? r.pick(seen) : T0 + r.int(0, 30 * 24) * HOUR + r.int(0, 3599) * 1000;
      times.set(card, [...seen, ts]);
      rows.push({ card, ts, amount: r.chance(0.1) ? null : r.int(-10_000, 100_000) / 100, merchant: r.chance(0.1) ? null : `m${r.int(1, 50)}`, n: r.chance(0.1) ? null : r.int(0, 1_000_000) });
    }
    for (let s = 0; s < rows.length; s += 500) await ingest.write('txn', rows.slice(s, s + 500));
    assert.equal(engine.table('txn').endOffset, rows.length, 'one record per row, offsets in write order');

    for (let i = 0; i < 600; i++) {
      const card = r.chance(0.05) ? 'unknown-card' : r.pick(cards);
      const known = times.get(card);
      // Some entity rows fall exactly on an event time (the tie must resolve to the highest offset).
      const timestamp = known && r.chance(0.2) ? r.pick(known) : T0 + r.int(-24, 32 * 24) * HOUR + r.int(0, 3599) * 1000;
      labels.push({ row: i, card, timestamp });
    }

    db = await DuckDBInstance.create(':memory:');
    duck = await db.connect();
    await duck.run('CREATE TABLE f (card VARCHAR, ts_ms BIGINT, off BIGINT, amount DOUBLE, merchant VARCHAR, n BIGINT)');
    await duck.run('CREATE TABLE l (row_id INTEGER, card VARCHAR, ts_ms BIGINT)');
    const fa = await duck.createAppender('f');
    rows.forEach((x, off) => {
      fa.appendVarchar(x.card);
      fa.appendBigInt(BigInt(x.ts));
      fa.appendBigInt(BigInt(off));
      if (x.amount === null) fa.appendNull();
      else fa.appendDouble(x.amount);
      if (x.merchant === null) fa.appendNull();
      else fa.appendVarchar(x.merchant);
      if (x.n === null) fa.appendNull();
      else fa.appendBigInt(BigInt(x.n));
      fa.endRow();
    });
    fa.closeSync();
    const la = await duck.createAppender('l');
    for (const x of labels) {
      la.appendInteger(x.row);
      la.appendVarchar(x.card);
      la.appendBigInt(BigInt(x.timestamp));
      la.endRow();
    }
    la.closeSync();
  });
  after(async () => {
    duck?.closeSync();
    db?.closeSync();
    await asof.destroy();
  });

  /** DuckDB's answer: the ASOF match on (event time, offset), so equal event times go to the highest offset. */
  async function oracle(ttlMs?: number): Promise<Record<string, unknown>[]> {
    const keep = ttlMs === undefined ? 'true' : `f.ts_ms >= l.ts_ms - ${ttlMs}`;
    const res = await duck.runAndReadAll(`
      SELECT l.row_id,
             CASE WHEN ${keep} THEN f.amount END AS amount,
             CASE WHEN ${keep} THEN f.merchant END AS merchant,
             CASE WHEN ${keep} THEN f.n END AS n
      FROM l ASOF LEFT JOIN f
        ON l.card = f.card AND l.ts_ms * 1000000 + 999999 >= f.ts_ms * 1000000 + f.off
      ORDER BY l.row_id`);
    return res.getRowObjectsJS().map((o) => ({ amount: o.amount, merchant: o.merchant, n: o.n === null ? null : Number(o.n) }));
  }

  for (const view of ['txn_last', 'txn_ttl'] as const) {
    for (const forceEvaluator of [false, true]) {
      test(`${view}: every entity row matches DuckDB (${forceEvaluator ? 'evaluator path' : 'last-value path'})`, async () => {
        const want = await oracle(view === 'txn_ttl' ? TTL_MS : undefined);
        const got = await trainingRows(asof.services, { entities: { rows: labels }, features: ['amount', 'merchant', 'n'].map((f) => `${view}:${f}`), pointInTime: 'event' }, { forceEvaluator });
        assert.equal(got.length, want.length);
        let set = 0;
        got.forEach((g, i) => {
          assert.deepEqual({ amount: g.amount, merchant: g.merchant, n: g.n }, want[i], `row ${i}: ${labels[i].card} at ${new Date(labels[i].timestamp).toISOString()}`);
          if (g.amount !== null) set++;
        });
        assert.ok(set > got.length / 3, `most rows should find a value (${set} of ${got.length})`);
      });
    }
  }

  test('small chunks, a tiny memory budget (entity partitions) and constant compaction give the same answers', async () => {
    const { engine, registry } = asof.services;
    // 50 entity rows per chunk; a budget of a few records, so every aggregate pass splits into partitions.
    const small = { trainingSets: new TrainingSets(engine, registry, { chunkRows: 50, memoryBytes: 1 }) };
    const features = ['amount', 'merchant', 'n'].map((f) => `txn_ttl:${f}`);
    const want = await oracle(TTL_MS);
    for (const internal of [{ compactAt: 1 }, { forceEvaluator: true }]) {
      const got = await trainingRows(small, { entities: { rows: labels }, features, pointInTime: 'event' }, internal);
      got.forEach((g, i) => assert.deepEqual({ amount: g.amount, merchant: g.merchant, n: g.n }, want[i], `${JSON.stringify(internal)} row ${i}`));
    }
  });
});
