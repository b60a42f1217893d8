/**
 * Both ways the training set computes values (the columnar last-value path
 * and the evaluator path) agree with the evaluator's own reference,
 * `evaluateAt`, entity row by entity row, on random changelogs: log and pk
 * sources, out-of-order and future event times, ties, nulls, int64 beyond
 * 2^53, updates, deletes, ttl and every aggregate, in both pointInTime modes.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CHANGE_NAMES } from '../../src/engine/arrow-codec.js';
import { evaluateAt, type PointInTime, type SourceRecord } from '../../src/features/evaluator.js';
import { testAsof, type TestAsof } from '../helpers.js';
import { Clock, rng, trainingRows } from './training-fixtures.js';

const T0 = Date.UTC(2024, 4, 1);
const MIN = 60_000;

describe('training sets: last-value path = evaluator path = evaluateAt', () => {
  let asof: TestAsof;
  const clock = new Clock(T0);
  const eventTimes: number[] = [];

  before(async () => {
    asof = await testAsof({}, { now: clock.now });
    const { engine, registry } = asof.services;
    await engine.defineTable('ev', {
      kind: 'log',
      eventTime: 'ts',
      columns: [
        { name: 'user', type: 'int64', nullable: false },
        { name: 'ts', type: 'timestamp', nullable: false },
        { name: 'amount', type: 'float64', nullable: true },
        { name: 'kind', type: 'string', nullable: true },
        { name: 'big', type: 'int64', nullable: true },
      ],
    });
    await engine.defineTable('acct', {
      kind: 'pk',
      primaryKey: ['id'],
      eventTime: 'updated',
      columns: [
        { name: 'id', type: 'string', nullable: false },
        { name: 'balance', type: 'float64', nullable: true },
        { name: 'tier', type: 'string', nullable: true },
        { name: 'updated', type: 'timestamp', nullable: true },
      ],
    });
    await engine.defineTable('prof', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int32', nullable: false }, { name: 'score', type: 'int32', nullable: true }] });
    await registry.defineView('lv', { source: 'ev', entity: 'user', ttl: '20m', features: [{ name: 'amount', column: 'amount' }, { name: 'kind', column: 'kind' }, { name: 'big', column: 'big' }] });
    await registry.defineView('la', {
      source: 'ev',
      entity: 'user',
      features: [
        { name: 'n', agg: { fn: 'count', window: '10m' } },
        { name: 'n_amount', agg: { fn: 'count', column: 'amount', window: '30m' } },
        { name: 'total', agg: { fn: 'sum', column: 'amount', window: '1h' } },
        { name: 'mean', agg: { fn: 'avg', column: 'amount', window: '1h' } },
        { name: 'low', agg: { fn: 'min', column: 'amount', window: '30m' } },
        { name: 'high', agg: { fn: 'max', column: 'amount', window: '30m' } },
        { name: 'last_kind', agg: { fn: 'last', column: 'kind', window: '1h' } },
        { name: 'amount', column: 'amount' },
      ],
    });
    await registry.defineView('pa', { source: 'acct', entity: 'id', ttl: '30m', features: [{ name: 'balance', column: 'balance' }, { name: 'tier', column: 'tier' }] });
    await registry.defineView('pp', { source: 'prof', entity: 'id', features: [{ name: 'score', column: 'score' }] });

    const r = rng(7);
    const write = (table: string, rows: unknown[], op: 'upsert' | 'delete' = 'upsert') => asof.services.ingest.write(table, rows, op);
    for (let step = 0; step < 400; step++) {
      clock.advance(r.int(1, 4 * MIN));
      const what = r.next();
      if (what < 0.5) {
        const rows = Array.from({ length: r.int(1, 4) }, () => {
          // Mostly recent, some late (up to 2 h old), some ahead of the clock; a third repeat an earlier event time (ties).
          const ts = eventTimes.length && r.chance(0.3) ? r.pick(eventTimes) : Math.floor((clock.t + r.int(-120 * MIN, 10 * MIN)) / 1000) * 1000;
          eventTimes.push(ts);
          return { user: r.int(1, 3), ts, amount: r.chance(0.15) ? null : r.int(-500, 5000) / 100, kind: r.chance(0.2) ? null : r.pick(['a', 'b', 'c']), big: r.chance(0.3) ? '9007199254740993' : r.chance(0.5) ? null : r.int(0, 100) };
        });
        await write('ev', rows);
      } else if (what < 0.8) {
        const id = r.pick(['a', 'b', 'c', 'd']);
        if (r.chance(0.2)) await write('acct', [{ id }], 'delete');
        else await write('acct', [{ id, balance: r.int(0, 10000) / 10, tier: r.pick(['gold', 'silver', null]), updated: r.chance(0.2) ? null : r.chance(0.3) && eventTimes.length ? r.pick(eventTimes) : clock.t + r.int(-60 * MIN, 2 * MIN) }]);
      } else {
        const id = r.int(1, 4);
        if (r.chance(0.2)) await write('prof', [{ id }], 'delete');
        else await write('prof', [{ id, score: r.int(0, 100) }]);
      }
    }
  });
  after(() => asof.destroy());

  /** Entity rows at random times over the whole history, plus exact event times (ties), plus times before and after it. */
  function entityRows(key: string, values: unknown[], seed: number): Record<string, unknown>[] {
    const r = rng(seed);
    const rows: Record<string, unknown>[] = [];
    for (let i = 0; i < 150; i++) {
      const t = i % 5 === 0 && eventTimes.length ? r.pick(eventTimes) : r.int(T0 - 3 * 60 * MIN, clock.t + 60 * MIN);
      rows.push({ [key]: r.pick(values), timestamp: t, row: i });
    }
    return rows;
  }

  async function reference(view: string, rows: Record<string, unknown>[], key: string, mode: PointInTime): Promise<unknown[][]> {
    const { registry, engine } = asof.services;
    const ev = registry.evaluator(view);
    const records: SourceRecord[] = [];
    for await (const c of engine.table(ev.view.source).scan()) records.push({ offset: c.offset, change: CHANGE_NAMES.indexOf(c.changeType), commitTime: c.commitTime, row: c.row });
    return rows.map((lr) => {
      const mine = records.filter((rec) => ev.entityOf(rec.row) === String(lr[key]));
      const got = evaluateAt(ev, mine, lr.timestamp as number, mode);
      return ev.features.map((_, i) => ev.toJson(i, got.values[i]));
    });
  }

  const cases: { view: string; key: string; values: unknown[] }[] = [
    { view: 'lv', key: 'user', values: [1, 2, 3, 99] },
    { view: 'la', key: 'user', values: [1, 2, 3, 99] },
    { view: 'pa', key: 'id', values: ['a', 'b', 'c', 'd', 'zz'] },
    { view: 'pp', key: 'id', values: [1, 2, 3, 4, 77] },
  ];
  for (const { view, key, values } of cases) {
    for (const mode of ['event', 'known'] as const) {
      test(`view ${view}, pointInTime ${mode}`, async () => {
        const rows = entityRows(key, values, view.length * 31 + mode.length);
        const ev = asof.services.registry.evaluator(view);
        const features = ev.features.map((f) => `${view}:${f.name}`);
        const want = await reference(view, rows, key, mode);
        for (const forceEvaluator of [false, true]) {
          const got = await trainingRows(asof.services, { entities: { rows }, features, pointInTime: mode }, { forceEvaluator });
          assert.equal(got.length, rows.length);
          got.forEach((g, i) => {
            assert.equal(g.row, i, 'entity rows come back in input order');
            const values = ev.features.map((f) => g[f.name]);
            assert.deepEqual(values, want[i], `${forceEvaluator ? 'evaluator' : 'default'} path, row ${i} (${key}=${String(rows[i][key])} at ${new Date(rows[i].timestamp as number).toISOString()})`);
          });
        }
        // Not trivially all-null: the data must exercise the rules.
        const all = want.flat();
        const present = all.filter((v) => v !== null && v !== 0).length;
        assert.ok(present > all.length * 0.05, `only ${present} of ${all.length} values are set`);
      });
    }
  }
});
