/**
 * The one evaluator against an independent brute-force computation written
 * here from DESIGN.md's rules, over generated changelogs: late and future
 * event times, nulls, ties, pk updates and deletes. Both the reference path
 * (`evaluateAt`) and the online path (state built record by record as the
 * materializer does, read later as time slides) must agree with it.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeType } from '../../src/engine/arrow-codec.js';
import { TableSchema, type ColumnDef } from '../../src/engine/schema.js';
import { defineTable } from '../../src/engine/table-def.js';
import type { FeatureDef, FeatureViewDef } from '../../src/features/definitions.js';
import { evaluateAt, ViewEvaluator, type EntityState, type SourceRecord } from '../../src/features/evaluator.js';

const MIN = 60_000;
const T0 = Date.parse('2026-03-01T12:00:00Z');

function schema(kind: 'log' | 'pk', columns: ColumnDef[], eventTime?: string, primaryKey?: string[]): TableSchema {
  return new TableSchema(defineTable('src', { kind, columns, eventTime, primaryKey }, undefined, 0).def);
}
const view = (features: FeatureDef[], ttl?: string): FeatureViewDef => ({ name: 'v', source: 'src', entity: 'id', features, ...(ttl ? { ttl } : {}), version: 1, createdAt: 0, updatedAt: 0 });

/** A deterministic generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

// ------------------------------------------------------------------ log views

const LOG = schema(
  'log',
  [
    { name: 'id', type: 'string', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'amount', type: 'float64', nullable: true },
    { name: 'cat', type: 'string', nullable: true },
  ],
  'ts',
);

const LOG_FEATURES: FeatureDef[] = [
  { name: 'last_amount', column: 'amount' },
  { name: 'last_cat', column: 'cat' },
  { name: 'n10m', agg: { fn: 'count', window: '10m' } },
  { name: 'n_amount_1h', agg: { fn: 'count', column: 'amount', window: '1h' } },
  { name: 'sum10m', agg: { fn: 'sum', column: 'amount', window: '10m' } },
  { name: 'avg1h', agg: { fn: 'avg', column: 'amount', window: '1h' } },
  { name: 'min30m', agg: { fn: 'min', column: 'amount', window: '30m' } },
  { name: 'max30m', agg: { fn: 'max', column: 'amount', window: '30m' } },
  { name: 'last_cat_5m', agg: { fn: 'last', column: 'cat', window: '5m' } },
  { name: 'max_ts_1d', agg: { fn: 'max', column: 'ts', window: '1d' } },
];

interface Ev {
  offset: number;
  commit: number;
  et: number;
  amount: number | null;
  cat: string | null;
}

/** Events for one entity: commit times ascending; event times mostly near the commit, some late (up to 40 min), some ahead (up to 8 min). */
function generateLog(seed: number, n: number): Ev[] {
  const r = rng(seed);
  const out: Ev[] = [];
  let commit = T0 - 2 * 3_600_000;
  for (let i = 0; i < n; i++) {
    commit += Math.floor(r() * 3 * MIN);
    const roll = r();
    const et = roll < 0.15 ? commit - Math.floor(r() * 40 * MIN) : roll < 0.25 ? commit + Math.floor(r() * 8 * MIN) : roll < 0.3 && out.length ? out[out.length - 1].et : commit - Math.floor(r() * 5000);
    out.push({ offset: i * 3 + 1, commit, et, amount: r() < 0.2 ? null : Math.floor(r() * 400) / 4, cat: r() < 0.3 ? null : `c${Math.floor(r() * 5)}` });
  }
  return out;
}

const toRecord = (e: Ev): SourceRecord => ({ offset: e.offset, change: ChangeType.INSERT, commitTime: e.commit, row: { id: 'e', ts: e.et, amount: e.amount, cat: e.cat } });

/** DESIGN.md's rules, computed directly: what each LOG_FEATURES feature is at t over the events committed by t. */
function bruteLog(events: Ev[], t: number, ttlMs?: number): { values: unknown[]; statuses: string[] } {
  const known = events.filter((e) => e.commit <= t);
  const byTime = (a: Ev, b: Ev) => a.et - b.et || a.offset - b.offset;
  const visible = known.filter((e) => e.et <= t).sort(byTime);
  const latest = visible[visible.length - 1];
  const col = (pick: (e: Ev) => unknown): [unknown, string] => {
    if (!latest) return [null, 'NOT_FOUND'];
    if (ttlMs !== undefined && latest.et < t - ttlMs) return [null, 'OUTSIDE_MAX_AGE'];
    const v = pick(latest);
    return v === null ? [null, 'NULL_VALUE'] : [v, 'PRESENT'];
  };
  const win = (ms: number) => known.filter((e) => e.et > t - ms && e.et <= t).sort(byTime);
  const nums = (ms: number) => win(ms).map((e) => e.amount).filter((a): a is number => a !== null);
  const agg = (v: unknown): [unknown, string] => [v, known.length === 0 ? 'NOT_FOUND' : v === null ? 'NULL_VALUE' : 'PRESENT'];
  const sum = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) : null);
  const cats = win(5 * MIN).map((e) => e.cat).filter((c) => c !== null);
  const pairs: [unknown, string][] = [
    col((e) => e.amount),
    col((e) => e.cat),
    agg(win(10 * MIN).length),
    agg(nums(60 * MIN).length),
    agg(sum(nums(10 * MIN))),
    agg(nums(60 * MIN).length ? sum(nums(60 * MIN))! / nums(60 * MIN).length : null),
    agg(nums(30 * MIN).length ? Math.min(...nums(30 * MIN)) : null),
    agg(nums(30 * MIN).length ? Math.max(...nums(30 * MIN)) : null),
    agg(cats.length ? cats[cats.length - 1] : null),
    agg(win(86_400_000).length ? Math.max(...win(86_400_000).map((e) => e.et)) : null),
  ];
  return { values: pairs.map((p) => p[0]), statuses: pairs.map((p) => p[1]) };
}

describe('log views against the brute-force reference', () => {
  const ev = new ViewEvaluator(view(LOG_FEATURES, '45m'), LOG);
  for (const seed of [1, 2, 3, 4, 5]) {
    test(`seed ${seed}: evaluateAt and the online path give DESIGN.md's values at every probed time`, () => {
      const events = generateLog(seed, 150);
      const records = events.map(toRecord);
      const last = events[events.length - 1].commit;
      // Probe times: before anything, between commits, at commits, and sliding past the end with no new events.
      const probes = [events[0].commit - 1, ...events.filter((_, i) => i % 7 === 0).map((e) => e.commit), ...events.filter((_, i) => i % 11 === 0).map((e) => e.commit + 37_000), last, last + 4 * MIN, last + 11 * MIN, last + 61 * MIN, last + 2 * 86_400_000];
      // Exact boundaries: the ttl (45m) and windows (5m, 10m, 30m, 1h) ending at an event, and 1 ms later.
      for (const e of events.slice(-12)) for (const d of [5, 10, 30, 45, 60]) probes.push(e.et + d * MIN, e.et + d * MIN + 1);
      let state: EntityState | undefined;
      let applied = 0;
      for (const t of probes.sort((a, b) => a - b)) {
        const want = bruteLog(events, t, 45 * MIN);
        const ref = evaluateAt(ev, records, t, 'known');
        assert.deepEqual({ values: ref.values, statuses: ref.statuses }, want, `evaluateAt at ${new Date(t).toISOString()}`);
        // Online: apply what was committed since, each record at its commit time (the materializer's clock), then read at t.
        while (applied < records.length && records[applied].commitTime <= t) {
          state = ev.apply(state, records[applied], records[applied].commitTime);
          applied++;
        }
        const online = ev.evaluate(state === undefined ? undefined : (JSON.parse(JSON.stringify(state)) as EntityState), t);
        assert.deepEqual({ values: online.values, statuses: online.statuses }, want, `online at ${new Date(t).toISOString()}`);
      }
    });
  }

  test('event times: a column feature reports its version; an aggregate the newest event in its window', () => {
    const events: Ev[] = [
      { offset: 0, commit: T0 - 20 * MIN, et: T0 - 20 * MIN, amount: 1, cat: 'a' },
      { offset: 1, commit: T0 - 2 * MIN, et: T0 - 3 * MIN, amount: null, cat: 'b' },
    ];
    const r = evaluateAt(ev, events.map(toRecord), T0, 'known');
    const at = (name: string) => r.eventTimes[LOG_FEATURES.findIndex((f) => f.name === name)];
    assert.equal(at('last_amount'), T0 - 3 * MIN);
    assert.equal(at('n10m'), T0 - 3 * MIN);
    assert.equal(at('min30m'), T0 - 3 * MIN, 'the newest event in the window, even when its value is null');
    assert.equal(r.statuses[0], 'NULL_VALUE');
  });
});

test('a 10-minute count read at 12:10 covers (12:00, 12:10], and slides with no new event', () => {
  const ev = new ViewEvaluator(view([{ name: 'n', agg: { fn: 'count', window: '10m' } }]), LOG);
  const at = (hhmm: string) => Date.parse(`2026-03-01T${hhmm}Z`);
  const recs = ['12:00:00.000', '12:00:00.001', '12:05:00.000', '12:10:00.000'].map((ts, i) => ({ offset: i, change: ChangeType.INSERT, commitTime: at(ts), row: { id: 'e', ts: at(ts), amount: 1, cat: null } }));
  let s: EntityState | undefined;
  for (const r of recs) s = ev.apply(s, r, r.commitTime);
  assert.equal(ev.evaluate(s, at('12:10:00.000')).values[0], 3, '12:00:00.000 is outside, 12:00:00.001 inside');
  assert.equal(ev.evaluate(s, at('12:10:00.001')).values[0], 2);
  assert.equal(ev.evaluate(s, at('12:15:00.000')).values[0], 1);
  assert.equal(ev.evaluate(s, at('12:19:59.999')).values[0], 1);
  assert.equal(ev.evaluate(s, at('12:20:00.000')).values[0], 0);
  assert.equal(ev.evaluate(s, at('12:20:00.000')).statuses[0], 'PRESENT', 'a known entity with nothing in the window counts 0');
  assert.equal(ev.evaluate(undefined, at('12:20:00.000')).statuses[0], 'NOT_FOUND');
});

test('windows from 1s to 90d', () => {
  const ev = new ViewEvaluator(view([{ name: 's1', agg: { fn: 'count', window: '1s' } }, { name: 'd90', agg: { fn: 'count', window: '90d' } }]), LOG);
  const day = 86_400_000;
  let s: EntityState | undefined;
  const ets = [T0 - 91 * day, T0 - 89 * day, T0 - 1500, T0 - 999, T0];
  ets.forEach((et, i) => (s = ev.apply(s, { offset: i, change: ChangeType.INSERT, commitTime: T0, row: { id: 'e', ts: et, amount: 1, cat: null } }, T0)));
  assert.deepEqual(ev.evaluate(s, T0).values, [2, 4]);
  assert.deepEqual(ev.evaluate(s, T0 + day).values, [0, 3]);
});

// ------------------------------------------------------------------ pk views

const PK = schema(
  'pk',
  [
    { name: 'id', type: 'string', nullable: false },
    { name: 'updated', type: 'timestamp', nullable: true },
    { name: 'balance', type: 'float64', nullable: true },
    { name: 'tier', type: 'string', nullable: true },
  ],
  'updated',
  ['id'],
);

// Without ttl the view's features read the row's columns in order: evaluate takes its short path for such rows (rowEvaluated).
for (const ttl of ['1h', undefined]) test(`pk views: the row as the engine holds it after the records committed by t; ${ttl ? 'ttl on its event time' : 'no ttl'}`, () => {
  const ev = new ViewEvaluator(view([{ name: 'balance', column: 'balance' }, { name: 'tier', column: 'tier' }], ttl), PK);
  const r = rng(9);
  // A pk changelog for one key: +I, then -U/+U pairs, deletes (-D), re-inserts; event times sometimes missing (then the commit time).
  const records: SourceRecord[] = [];
  let row: { id: string; updated: number | null; balance: number | null; tier: string | null } | undefined;
  let commit = T0 - 5 * 3_600_000;
  let offset = 0;
  for (let i = 0; i < 120; i++) {
    commit += Math.floor(r() * 10 * MIN);
    if (row && r() < 0.15) {
      records.push({ offset: offset++, change: ChangeType.DELETE, commitTime: commit, row });
      row = undefined;
      continue;
    }
    const next = { id: 'k', updated: r() < 0.2 ? null : commit - Math.floor(r() * 90 * MIN), balance: r() < 0.2 ? null : Math.floor(r() * 1000) / 8, tier: r() < 0.3 ? null : `t${Math.floor(r() * 3)}` };
    if (row) records.push({ offset: offset++, change: ChangeType.UPDATE_BEFORE, commitTime: commit, row }, { offset: offset++, change: ChangeType.UPDATE_AFTER, commitTime: commit, row: next });
    else records.push({ offset: offset++, change: ChangeType.INSERT, commitTime: commit, row: next });
    row = next;
  }
  let state: EntityState | undefined;
  let applied = 0;
  const probes: number[] = [];
  for (let t = T0 - 5 * 3_600_000; t <= commit + 2 * 3_600_000; t += 7 * MIN) probes.push(t);
  // Exact ttl boundaries of the last versions, and 1 ms later.
  for (const rec of ttl ? records.slice(-10) : []) {
    const et = (rec.row.updated as number | null) ?? rec.commitTime;
    if (et + 3_600_000 >= rec.commitTime) probes.push(et + 3_600_000, et + 3_600_001);
  }
  probes.sort((a, b) => a - b);
  for (const t of probes) {
    // Brute force: replay the records committed by t into "the row the engine holds".
    let held: (typeof records)[number]['row'] | undefined;
    let heldAt = 0;
    for (const rec of records) {
      if (rec.commitTime > t) break;
      if (rec.change === ChangeType.DELETE) held = undefined;
      else if (rec.change !== ChangeType.UPDATE_BEFORE) {
        held = rec.row;
        heldAt = (rec.row.updated as number | null) ?? rec.commitTime;
      }
    }
    const want = ['balance', 'tier'].map((c) => {
      if (!held) return [null, 'NOT_FOUND', null];
      if (ttl && heldAt < t - 3_600_000) return [null, 'OUTSIDE_MAX_AGE', heldAt];
      return held[c] === null ? [null, 'NULL_VALUE', heldAt] : [held[c], 'PRESENT', heldAt];
    });
    while (applied < records.length && records[applied].commitTime <= t) state = ev.apply(state, records[applied], records[applied++].commitTime);
    for (const got of [evaluateAt(ev, records, t, 'known'), ev.evaluate(state, t)]) {
      assert.deepEqual(
        got.values.map((v, i) => [v, got.statuses[i], got.eventTimes[i]]),
        want,
        `at ${new Date(t).toISOString()}`,
      );
    }
  }
});

test('pk views, pointInTime "event": the last version with event time <= t, a delete meaning absent', () => {
  const ev = new ViewEvaluator(view([{ name: 'balance', column: 'balance' }]), PK);
  const row = (balance: number, updated: number) => ({ id: 'k', updated, balance, tier: null });
  // Committed out of event-time order: the second write happened earlier than the first.
  const records: SourceRecord[] = [
    { offset: 0, change: ChangeType.INSERT, commitTime: T0, row: row(1, T0 - 10 * MIN) },
    { offset: 1, change: ChangeType.UPDATE_BEFORE, commitTime: T0 + MIN, row: row(1, T0 - 10 * MIN) },
    { offset: 2, change: ChangeType.UPDATE_AFTER, commitTime: T0 + MIN, row: row(2, T0 - 20 * MIN) },
    { offset: 3, change: ChangeType.DELETE, commitTime: T0 + 2 * MIN, row: row(2, T0 - 20 * MIN) },
  ];
  const at = (t: number, mode: 'event' | 'known') => evaluateAt(ev, records, t, mode).values[0];
  assert.equal(at(T0 - 15 * MIN, 'event'), 2);
  assert.equal(at(T0 - 5 * MIN, 'event'), 1, 'version 1 has the later event time');
  assert.equal(at(T0 + 3 * MIN, 'event'), null, 'deleted at its commit');
  assert.equal(at(T0 + 30_000, 'known'), 1);
  assert.equal(at(T0 + 90_000, 'known'), 2, 'known: the row the engine held, whatever its event time');
});

test('int64 values beyond 2^53 survive the state and come back as strings; within it as numbers', () => {
  const s = schema('log', [{ name: 'id', type: 'string', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, { name: 'big', type: 'int64', nullable: true }], 'ts');
  const ev = new ViewEvaluator(view([{ name: 'big', column: 'big' }, { name: 'last_big', agg: { fn: 'last', column: 'big', window: '1h' } }]), s);
  let st: EntityState | undefined;
  st = ev.apply(st, { offset: 0, change: 0, commitTime: T0, row: { id: 'e', ts: T0, big: 2n ** 62n } }, T0);
  const packed = JSON.parse(JSON.stringify(st)) as EntityState;
  const r = ev.evaluate(packed, T0);
  assert.deepEqual(r.values.map((v, i) => ev.toJson(i, v)), ['4611686018427387904', '4611686018427387904']);
  st = ev.apply(packed, { offset: 1, change: 0, commitTime: T0, row: { id: 'e', ts: T0, big: 12 } }, T0);
  assert.deepEqual(ev.evaluate(st, T0).values.map((v, i) => ev.toJson(i, v)), [12, 12]);
});

// ------------------------------------------------------------------ stableUntil

describe('stableUntil: how long an evaluation may be reused', () => {
  /** Times worth probing after t: the next ms, every event time, ttl boundary and window edge near it, and far out. */
  const candidates = (t: number, events: Ev[]): number[] => {
    const out = [t, t + 1, t + 2 * 86_400_000];
    for (const e of events) for (const d of [0, 45 * MIN]) out.push(e.et + d - 1, e.et + d, e.et + d + 1);
    return out.filter((x) => x >= t).sort((a, b) => a - b);
  };
  const same = (a: ReturnType<ViewEvaluator['evaluate']>, b: ReturnType<ViewEvaluator['evaluate']>): boolean => JSON.stringify(a) === JSON.stringify(b);

  for (const ttl of [undefined, '45m'] as const) {
    test(`log view of column features${ttl ? ', ttl 45m' : ''}: the answer holds through stableUntil and changes the ms after`, () => {
      const ev = new ViewEvaluator(view(LOG_FEATURES.slice(0, 2), ttl), LOG);
      for (const seed of [11, 12, 13]) {
        const events = generateLog(seed, 60);
        const records = events.map(toRecord);
        let state: EntityState | undefined;
        for (let i = 0; i < records.length; i++) {
          // The materializer applies at commit time; reads come at or after it, while future versions wait in the state.
          state = ev.apply(state, records[i], records[i].commitTime);
          const t = records[i].commitTime + (i % 3) * 20_000;
          const until = ev.stableUntil(state, t);
          assert.ok(until >= t, 'an answer holds at least at the time it was made');
          const at = ev.evaluate(state, t);
          for (const t2 of candidates(t, events)) {
            if (t2 > until) break;
            assert.ok(same(ev.evaluate(state, t2), at), `seed ${seed}, record ${i}: the answer at ${t} changed at ${t2} <= stableUntil ${until}`);
          }
          if (Number.isFinite(until)) assert.ok(!same(ev.evaluate(state, until + 1), at), `seed ${seed}, record ${i}: stableUntil ${until} is not the last ms of the answer`);
        }
      }
    });
  }

  test('pk view with ttl: until the version leaves the ttl; without ttl, forever; an absent entity, forever', () => {
    const cols = [{ name: 'balance', column: 'balance' }];
    const withTtl = new ViewEvaluator(view(cols, '1h'), PK);
    const noTtl = new ViewEvaluator(view(cols), PK);
    const rec: SourceRecord = { offset: 4, change: ChangeType.INSERT, commitTime: T0, row: { id: 'k', updated: T0 - 10 * MIN, balance: 3 } };
    const s = withTtl.apply(undefined, rec, T0)!;
    assert.equal(withTtl.stableUntil(s, T0), T0 + 50 * MIN);
    assert.equal(withTtl.evaluate(s, T0 + 50 * MIN).statuses[0], 'PRESENT');
    assert.equal(withTtl.evaluate(s, T0 + 50 * MIN + 1).statuses[0], 'OUTSIDE_MAX_AGE');
    // Once outside the ttl it stays outside: nothing but a new record changes it.
    assert.equal(withTtl.stableUntil(s, T0 + 50 * MIN + 1), Infinity);
    assert.equal(noTtl.stableUntil(noTtl.apply(undefined, rec, T0), T0), Infinity);
    assert.equal(withTtl.stableUntil(undefined, T0), Infinity);
  });

  test('views with aggregates hold only at the time they were made', () => {
    const ev = new ViewEvaluator(view(LOG_FEATURES), LOG);
    const records = generateLog(21, 20).map(toRecord);
    let state: EntityState | undefined;
    for (const r of records) state = ev.apply(state, r, r.commitTime);
    const t = records[records.length - 1].commitTime;
    assert.equal(ev.stableUntil(state, t), t);
  });
});
