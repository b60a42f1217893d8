/**
 * `applyColumns` (records held as columns, what the audit's replay reads past
 * the trail's page) against `ViewEvaluator.applyAll` (records as objects):
 * over random records cut into random chunks, state after state, the two
 * must build the same state. Log views with one aggregate input and with
 * several, column features, future and late event times, ties, unset event
 * times, deletes, nulls and int64 beyond 2^53; and a pk view.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeType } from '../../src/engine/arrow-codec.js';
import { TableSchema, type ColumnDef } from '../../src/engine/schema.js';
import { defineTable } from '../../src/engine/table-def.js';
import type { FeatureDef, FeatureViewDef } from '../../src/features/definitions.js';
import { applyColumns } from '../../src/features/apply-columns.js';
import { ViewEvaluator, type EntityState, type SourceColumns, type SourceRecord } from '../../src/features/evaluator.js';

const MIN = 60_000;
const T0 = Date.parse('2026-03-01T12:00:00Z');

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const COLUMNS: ColumnDef[] = [
  { name: 'id', type: 'string', nullable: false },
  // Never null as written; null here stands for a record older than the column, or a pk row without one.
  { name: 'ts', type: 'timestamp', nullable: false },
  { name: 'amount', type: 'float64', nullable: true },
  { name: 'big', type: 'int64', nullable: true },
  { name: 'cat', type: 'string', nullable: true },
];
const schema = (kind: 'log' | 'pk'): TableSchema => new TableSchema(defineTable('src', { kind, columns: COLUMNS, eventTime: 'ts', primaryKey: kind === 'pk' ? ['id'] : undefined }, undefined, 0).def);
const view = (features: FeatureDef[]): FeatureViewDef => ({ name: 'v', source: 'src', entity: 'id', features, version: 1, createdAt: 0, updatedAt: 0 });

const VIEWS: [string, 'log' | 'pk', FeatureDef[]][] = [
  ['log, one aggregate input', 'log', [{ name: 'n', agg: { fn: 'count', window: '10m' } }, { name: 's', agg: { fn: 'sum', column: 'amount', window: '30m' } }, { name: 'last', column: 'amount' }]],
  [
    'log, several aggregate inputs',
    'log',
    [
      { name: 'last_amount', column: 'amount' },
      { name: 'last_big', column: 'big' },
      { name: 's', agg: { fn: 'sum', column: 'amount', window: '10m' } },
      { name: 'c', agg: { fn: 'last', column: 'cat', window: '5m' } },
      { name: 'b', agg: { fn: 'max', column: 'big', window: '1h' } },
    ],
  ],
  ['log, aggregates only', 'log', [{ name: 'n', agg: { fn: 'count', window: '10m' } }]],
  ['log, column features only', 'log', [{ name: 'cat', column: 'cat' }, { name: 'amount', column: 'amount' }]],
  ['pk', 'pk', [{ name: 'amount', column: 'amount' }, { name: 'cat', column: 'cat' }, { name: 'big', column: 'big' }]],
];

function records(r: () => number, n: number, pk: boolean): SourceRecord[] {
  const out: SourceRecord[] = [];
  let commit = T0;
  for (let i = 0; i < n; i++) {
    commit += Math.floor(r() * 3 * MIN);
    // Event times late, on time, tied (a few distinct values) and in the future; sometimes unset.
    const ts = r() < 0.1 ? null : commit + Math.floor((r() - 0.6) * 40) * MIN;
    const x = r();
    const change = pk ? (x < 0.15 ? ChangeType.DELETE : x < 0.4 ? ChangeType.UPDATE_BEFORE : x < 0.7 ? ChangeType.UPDATE_AFTER : ChangeType.INSERT) : x < 0.05 ? ChangeType.DELETE : ChangeType.INSERT;
    const row = {
      id: 'e',
      ts,
      amount: r() < 0.2 ? null : Math.round(r() * 1000) / 10,
      big: r() < 0.2 ? null : r() < 0.3 ? 2n ** 60n + BigInt(i) : i * 7,
      cat: r() < 0.2 ? null : ['a', 'b', 'c'][Math.floor(r() * 3)],
    };
    out.push({ offset: i * 2 + Math.floor(r() * 2), change, commitTime: commit, row });
  }
  return out;
}

/** The records as the engine's key reads give them as columns (KeyColumns), with the view's columns only. */
function asColumns(recs: SourceRecord[], columns: readonly string[]): SourceColumns {
  return {
    count: recs.length,
    offsets: Float64Array.from(recs, (r) => r.offset),
    changes: Int8Array.from(recs, (r) => r.change),
    commitTimes: Float64Array.from(recs, (r) => r.commitTime),
    columns,
    values: columns.map((c) => recs.map((r) => r.row[c] ?? null)),
  };
}

describe('applyColumns = applyAll', () => {
  for (const [name, kind, features] of VIEWS) {
    for (let seed = 1; seed <= 25; seed++) {
      test(`${name}, seed ${seed}`, () => {
        const r = rng(seed * 7919);
        const ev = new ViewEvaluator(view(features), schema(kind));
        const recs = records(r, 20 + Math.floor(r() * 300), kind === 'pk');
        let a: EntityState | undefined;
        let b: EntityState | undefined;
        for (let i = 0; i < recs.length; ) {
          const chunk = recs.slice(i, i + 1 + Math.floor(r() * 60));
          i += chunk.length;
          // Read at a moment around the chunk's last commit: some versions still in the future, some events out of every window.
          const now = chunk[chunk.length - 1].commitTime + Math.floor((r() - 0.3) * 30) * MIN;
          a = ev.applyAll(a, chunk, now);
          b = applyColumns(ev, b, asColumns(chunk, ev.sourceColumns), now);
          assert.deepEqual(b, a, `after the records up to offset ${chunk[chunk.length - 1].offset}`);
          assert.deepEqual(ev.evaluate(b, now), ev.evaluate(a, now));
        }
      });
    }
  }

  test('a column the view reads that was not read is an error, not a null', () => {
    const ev = new ViewEvaluator(view(VIEWS[0][2]), schema('log'));
    const recs = records(rng(3), 5, false);
    assert.throws(() => applyColumns(ev, undefined, asColumns(recs, ['ts']), T0), /column "amount" of view "v" was not read/);
  });
});
