/**
 * A pk table with an event-time column, keys written, deleted and rewritten:
 * what the online lookup, the audit replay (GET /audit/entities) and training
 * sets (both paths) answer, against each other and against DuckDB as an
 * independent oracle of DESIGN.md's rule ("event": the last version, +I/+U or
 * -D meaning absent, with event time <= t, ties to the highest offset;
 * "known": the last record committed by t). A delete's event time is its
 * commit time (README: "Event time of a column feature"; its -D record
 * carries the deleted row, whose event time it does not take).
 *
 * So in "event" mode a rewrite whose event time is before the delete's
 * commit sorts before the delete and stays deleted, while "known" (online,
 * audit) shows it: the first test writes those cases out by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DuckDBInstance } from '@duckdb/node-api';
import { testAsof, type TestAsof } from '../helpers.js';
import type { TrainingSetRequest } from '../../src/offline/training-set.js';
import { Clock, rng, trainingRows } from './training-fixtures.js';

const T0 = Date.UTC(2024, 0, 1);
const SEC = 1000;
const ACCT = {
  kind: 'pk',
  primaryKey: ['id'],
  eventTime: 'ts',
  columns: [
    { name: 'id', type: 'string', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'score', type: 'float64', nullable: false },
  ],
};
const VIEW = { source: 'acct', entity: 'id', features: [{ name: 'score', column: 'score' }] };
const iso = (ms: number): string => new Date(ms).toISOString();

async function ok(a: TestAsof, method: string, url: string, body?: unknown): Promise<any> {
  const r = await a.req(method, url, body);
  assert.ok(r.status === 200 || r.status === 201, `${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}
const online = async (a: TestAsof, key: string): Promise<number | null> => (await ok(a, 'GET', `/features/${key}?view=v`)).features['v:score'];
const audit = async (a: TestAsof, key: string, at: number, mode: 'known' | 'event'): Promise<number | null> =>
  (await ok(a, 'GET', `/audit/entities/${key}?view=v&at=${at}&pointInTime=${mode}`)).features['v:score'];
/** Training-set values of `v:score` for (key, t) rows, by both paths (asserted equal). */
async function training(a: TestAsof, rows: { id: string; timestamp: number }[], mode: 'known' | 'event'): Promise<(number | null)[]> {
  const req: TrainingSetRequest = { entities: { rows }, features: ['v:score'], pointInTime: mode };
  const fast = (await trainingRows(a.services, req)).map((r) => r.score as number | null);
  const slow = (await trainingRows(a.services, req, { forceEvaluator: true })).map((r) => r.score as number | null);
  assert.deepEqual(fast, slow, `${mode}: last-value path = evaluator path`);
  return fast;
}

test('written, deleted, rewritten: the delete happens at its commit; online, audit and training agree by DESIGN.md (values written out by hand)', async () => {
  const clock = new Clock(T0);
  const a = await testAsof({}, { now: clock.now });
  try {
    await ok(a, 'PUT', '/tables/acct', ACCT);
    await ok(a, 'PUT', '/feature-views/v', VIEW);
    const c1 = clock.advance(10 * SEC);
    // A: rewritten with an event time before the delete's commit. B: after it. C: the same row restored.
    // D: stamped in the future, deleted before that time comes.
    await ok(a, 'POST', '/tables/acct/rows', { rows: [{ id: 'A', ts: T0, score: 1 }, { id: 'B', ts: T0, score: 1 }, { id: 'C', ts: T0, score: 1 }, { id: 'D', ts: T0 + 100 * SEC, score: 1 }] });
    const c2 = clock.advance(10 * SEC);
    await ok(a, 'POST', '/tables/acct/rows', { op: 'delete', rows: [{ id: 'A' }, { id: 'B' }, { id: 'C' }, { id: 'D' }] });
    clock.advance(10 * SEC);
    await ok(a, 'POST', '/tables/acct/rows', { rows: [{ id: 'A', ts: c2 - 5 * SEC, score: 3 }, { id: 'B', ts: c2 + 5 * SEC, score: 3 }, { id: 'C', ts: T0, score: 1 }] });
    const now = clock.advance(10 * SEC);

    // The -D's event time in the audit trail is its commit time, not the deleted row's ts.
    const trail = (await ok(a, 'GET', `/audit/entities/A?view=v`)).trail;
    assert.deepEqual(trail.map((r: any) => [r.changeType, r.eventTime]), [['+I', iso(T0)], ['-D', iso(c2)], ['+I', iso(c2 - 5 * SEC)]]);

    // Now, "known": the table as it is (online = audit = training).
    const want = { A: 3, B: 3, C: 1, D: null };
    for (const [key, v] of Object.entries(want)) {
      assert.equal(await online(a, key), v, `online ${key}`);
      assert.equal(await audit(a, key, now, 'known'), v, `audit known ${key}`);
    }
    assert.deepEqual(await training(a, Object.keys(want).map((id) => ({ id, timestamp: now })), 'known'), Object.values(want));

    // "event", by the rule: versions ordered by event time, the delete at c2.
    const cases: [string, number, number | null, string][] = [
      ['A', c1 - 1, 1, 'the first version, event time T0'],
      ['A', c2 - 5 * SEC, 3, 'the rewrite happened (by its event time) before the delete'],
      ['A', now, null, 'the delete (at c2) came after the rewrite (c2 - 5s): still deleted'],
      ['B', c2, null, 'deleted'],
      ['B', c2 + 5 * SEC, 3, 'rewritten after the delete'],
      ['C', c2 - 1, 1, 'T0: the original and its restored copy tie; the restore (higher offset) wins'],
      ['C', now, null, 'the restore carries T0, before the delete: still deleted'],
      ['D', now, null, 'not happened yet'],
      ['D', T0 + 100 * SEC, 1, 'its event time came after the delete (c2): present'],
    ];
    const got = await training(a, cases.map(([id, timestamp]) => ({ id, timestamp })), 'event');
    for (let i = 0; i < cases.length; i++) {
      const [key, t, v, why] = cases[i];
      assert.equal(got[i], v, `training event ${key} at ${iso(t)}: ${why}`);
      assert.equal(await audit(a, key, t, 'event'), v, `audit event ${key} at ${iso(t)}: ${why}`);
    }
  } finally {
    await a.destroy();
  }
});

interface Rec {
  id: string;
  offset: number;
  commit: number;
  ts: number;
  score: number;
  del: boolean;
}

test('random writes, deletes and rewrites of pk keys: training sets = DuckDB (event and known), = online and audit as they answered at each time', async () => {
  const clock = new Clock(T0);
  const a = await testAsof({}, { now: clock.now });
  const db = await DuckDBInstance.create(':memory:');
  const duck = await db.connect();
  try {
    await ok(a, 'PUT', '/tables/acct', ACCT);
    await ok(a, 'PUT', '/feature-views/v', VIEW);
    const r = rng(7);
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    // The test's own model of the changelog (DESIGN.md: +I, -U/+U for an update, -D for a delete of a present key, nothing for an absent one); -U left out.
    const live = new Map<string, { ts: number; score: number }>();
    const recs: Rec[] = [];
    const seenTs = new Map<string, number[]>();
    let offset = 0;
    const snapshots: { t: number; values: Map<string, number | null> }[] = [];
    const labelTimes = new Set<number>();
    for (let step = 0; step < 300; step++) {
      const commit = clock.advance(r.int(1, 20) * SEC);
      labelTimes.add(commit).add(commit - 1);
      const id = r.pick(keys);
      if (r.chance(0.3)) {
        await ok(a, 'POST', '/tables/acct/rows', { op: 'delete', rows: [{ id }] });
        const old = live.get(id);
        if (old) recs.push({ id, offset: offset++, commit, ts: old.ts, score: old.score, del: true });
        live.delete(id);
      } else {
        // Event times behind, at, or ahead of the commit, sometimes one the key had before (ties).
        const prior = seenTs.get(id) ?? [];
        const ts = prior.length && r.chance(0.25) ? r.pick(prior) : commit + r.int(-60, 30) * SEC;
        seenTs.set(id, [...prior, ts]);
        labelTimes.add(ts);
        const score = r.int(0, 1_000_000) / 100;
        await ok(a, 'POST', '/tables/acct/rows', { rows: [{ id, ts, score }] });
        if (live.has(id)) offset++; // its -U
        recs.push({ id, offset: offset++, commit, ts, score, del: false });
        live.set(id, { ts, score });
      }
      if (step % 20 === 19) {
        // Online at this moment; the next write commits later (clock.advance >= 1 s).
        const values = new Map<string, number | null>();
        for (const k of keys) values.set(k, await online(a, k));
        snapshots.push({ t: clock.t, values });
      }
    }
    assert.equal(a.services.engine.table('acct').endOffset, offset, 'the model counts the records the table wrote');

    await duck.run('CREATE TABLE f (id VARCHAR, et BIGINT, ct BIGINT, off BIGINT, del BOOLEAN, score DOUBLE)');
    await duck.run('CREATE TABLE l (row_id INTEGER, id VARCHAR, t BIGINT)');
    const fa = await duck.createAppender('f');
    for (const x of recs) {
      fa.appendVarchar(x.id);
      fa.appendBigInt(BigInt(x.del ? x.commit : x.ts)); // a delete happens at its commit
      fa.appendBigInt(BigInt(x.commit));
      fa.appendBigInt(BigInt(x.offset));
      fa.appendBoolean(x.del);
      fa.appendDouble(x.score);
      fa.endRow();
    }
    fa.closeSync();
    const labels: { id: string; timestamp: number }[] = [];
    for (const t of [...labelTimes, ...snapshots.map((s) => s.t), T0 - SEC, clock.t + 3600 * SEC]) for (const id of keys) labels.push({ id, timestamp: t });
    const la = await duck.createAppender('l');
    labels.forEach((x, i) => {
      la.appendInteger(i);
      la.appendVarchar(x.id);
      la.appendBigInt(BigInt(x.timestamp));
      la.endRow();
    });
    la.closeSync();
    /** DuckDB's answer: the ASOF match on (time, offset), ties in time to the highest offset; a -D is absent. */
    const oracle = async (time: 'et' | 'ct'): Promise<(number | null)[]> => {
      const res = await duck.runAndReadAll(`
        SELECT CASE WHEN f.del THEN NULL ELSE f.score END AS score
        FROM l ASOF LEFT JOIN f ON l.id = f.id AND l.t * 1000000 + 999999 >= f.${time} * 1000000 + f.off
        ORDER BY l.row_id`);
      return res.getRowObjectsJS().map((o) => o.score as number | null);
    };

    for (const mode of ['event', 'known'] as const) {
      const want = await oracle(mode === 'event' ? 'et' : 'ct');
      const got = await training(a, labels, mode);
      assert.equal(got.length, want.length);
      labels.forEach((x, i) => assert.equal(got[i], want[i], `${mode}: ${x.id} at ${iso(x.timestamp)}`));
      assert.ok(want.filter((v) => v === null).length > labels.length / 10 && want.filter((v) => v !== null).length > labels.length / 3, `${mode}: both present and absent keys are asked about`);
    }
    // Event and known differ somewhere (late and backdated rewrites): the modes are told apart.
    assert.notDeepEqual(await oracle('et'), await oracle('ct'));

    // What online answered at each snapshot = training "known" at that time = the audit's replay ("known") at that time;
    // the audit's "event" replay = training "event".
    const rows = snapshots.flatMap((s) => keys.map((id) => ({ id, timestamp: s.t })));
    const known = await training(a, rows, 'known');
    const event = await training(a, rows, 'event');
    for (let i = 0; i < rows.length; i++) {
      const { id, timestamp: t } = rows[i];
      const served = snapshots[Math.floor(i / keys.length)].values.get(id);
      assert.equal(known[i], served, `training known = online, ${id} at ${iso(t)}`);
      assert.equal(await audit(a, id, t, 'known'), served, `audit known = online, ${id} at ${iso(t)}`);
      assert.equal(await audit(a, id, t, 'event'), event[i], `audit event = training event, ${id} at ${iso(t)}`);
    }
  } finally {
    duck.closeSync();
    db.closeSync();
    await a.destroy();
  }
});
