/**
 * The short replay of pk views (audit/pk-cut.ts): a reconstruction whose
 * trail page ends before the entity's history does reads only the history's
 * first records and its last, and must answer exactly what reading the whole
 * history answers. Random upserts and deletes of a few keys (so each has many
 * records; -U/+U pairs; deletes and re-inserts), ttl, a pk table with its
 * own event-time column, a column added part way (schema versions), a log
 * table beside them (the trail merges both), replayed at random tokens
 * (cutting anywhere, between a -U and its +U too) and random "known" and
 * "event" times, with small trail pages at random places. Two oracles:
 *   - the same replay with a page that holds the whole history (the short
 *     path is not taken then: every record is read and applied), whose trail
 *     sliced to the page must equal the short one's;
 *   - the evaluator's reference (evaluateAt) over every record of the key
 *     read by a plain scan, for the values.
 * Checked with the records in the hot log, and again once they are in Lance
 * and the hot segments are deleted, and after a restart.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Config } from '../../src/config.js';
import { replay } from '../../src/audit/replay.js';
import { CHANGE_NAMES } from '../../src/engine/arrow-codec.js';
import { evaluateAt, ViewEvaluator, type PointInTime, type SourceRecord } from '../../src/features/evaluator.js';
import { ok, tempDir, testAsof, type TestAsof } from '../helpers.js';

const KEYS = ['k1', 'k2'];
const FEATURES = ['p:score', 'p:note', 'q:score', 'q:at', 'e:score', 'w:n', 'w:amt'];
const PK_TABLES = ['acct', 'acctE'];

type Op =
  | { op: 'upsert'; keys: string[]; score: number | null; skewMs: number }
  | { op: 'delete'; key: string }
  | { op: 'event'; key: string; amount: number; skewMs: number }
  | { op: 'tick'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('upsert' as const), keys: fc.subarray(KEYS, { minLength: 1 }), score: fc.option(fc.integer({ min: -20, max: 20 }), { nil: null }), skewMs: fc.integer({ min: -3_000, max: 1_000 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...KEYS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('event' as const), key: fc.constantFrom(...KEYS), amount: fc.integer({ min: 0, max: 9 }), skewMs: fc.integer({ min: -5_000, max: 1_000 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 2_000 }) }) },
);

interface Probe {
  key: string;
  /** Where a token or a time cuts, as a fraction of the key's records (1 and over: at the end). */
  where: number;
  /** 1: the token or time cuts just before that record. */
  before: number;
  mode: 'token' | PointInTime;
  from: number;
  limit: number;
}
const probeArb: fc.Arbitrary<Probe> = fc.record({
  key: fc.constantFrom(...KEYS),
  // Spread evenly (fc.double favours the ends of its range).
  where: fc.integer({ min: 0, max: 1050 }).map((x) => x / 1000),
  before: fc.constantFrom(0, 0, 1),
  mode: fc.constantFrom('token' as const, 'token' as const, 'known' as const, 'event' as const),
  from: fc.integer({ min: 0, max: 6 }),
  limit: fc.integer({ min: 1, max: 4 }),
});

async function setup(asof: TestAsof): Promise<void> {
  await ok(asof.req('PUT', '/tables/acct', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64', nullable: true }] }), 201);
  await ok(asof.req('PUT', '/tables/acctE', { kind: 'pk', primaryKey: ['id'], eventTime: 'at', columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'int64', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
  await ok(asof.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'at', columns: [{ name: 'user', type: 'string', nullable: false }, { name: 'amount', type: 'float64', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
  await ok(asof.req('PUT', '/feature-views/q', { source: 'acctE', entity: 'id', ttl: '4s', features: [{ name: 'score', column: 'score' }, { name: 'at', column: 'at' }] }), 201);
  await ok(asof.req('PUT', '/feature-views/e', { source: 'acctE', entity: 'id', features: [{ name: 'score', column: 'score' }] }), 201);
  await ok(asof.req('PUT', '/feature-views/w', { source: 'ev', entity: 'user', features: [{ name: 'n', agg: { fn: 'count', window: '10s' } }, { name: 'amt', column: 'amount' }] }), 201);
}

/** Part way: `acct` gains a nullable column (older records read it as null) and view p reads it. */
async function evolve(asof: TestAsof): Promise<void> {
  await ok(asof.req('PUT', '/tables/acct', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64', nullable: true }, { name: 'note', type: 'string', nullable: true }] }), 200);
  await ok(asof.req('PUT', '/feature-views/p', { source: 'acct', entity: 'id', ttl: '5s', features: [{ name: 'score', column: 'score' }, { name: 'note', column: 'note' }] }), 201);
}

async function apply(asof: TestAsof, clock: { t: number }, o: Op, evolved: boolean): Promise<void> {
  if (o.op === 'tick') clock.t += o.ms;
  else if (o.op === 'upsert') {
    await ok(asof.req('POST', '/tables/acct/rows', { rows: o.keys.map((id) => ({ id, score: o.score, ...(evolved ? { note: o.score === null ? null : `n${o.score}` } : {}) })) }));
    await ok(asof.req('POST', '/tables/acctE/rows', { rows: o.keys.map((id) => ({ id, score: o.score, at: clock.t + o.skewMs })) }));
  } else if (o.op === 'delete') {
    for (const t of PK_TABLES) await ok(asof.req('POST', `/tables/${t}/rows`, { rows: [{ id: o.key }], op: 'delete' }));
  } else await ok(asof.req('POST', '/tables/ev/rows', { rows: [{ user: o.key, amount: o.amount, at: clock.t + o.skewMs }] }));
}

/** Every probe's short replay against the whole-history replay and the evaluator's reference. Returns how many probes took the short path. */
async function check(asof: TestAsof, probes: Probe[], t1: number, when: string): Promise<number> {
  const { engine, registry } = asof.services;
  const features = registry.resolve({ features: FEATURES });
  const views = new Map(['p', 'q', 'e', 'w'].map((v) => [v, registry.view(v)]));
  let short = 0;
  for (const p of probes) {
    // A token cuts each table at one of the key's records (a -U as often as not), just before it, or at the table's end.
    const cutAt = (t: string): number => {
      const offs = engine.table(t).offsetsOf(p.key);
      if (p.where >= 1 || offs.length === 0) return engine.table(t).endOffset - 1;
      return offs[Math.floor(p.where * offs.length)] - p.before;
    };
    const token = p.mode === 'token' ? Object.fromEntries(['acct', 'acctE', 'ev'].map((t) => [t, cutAt(t)])) : undefined;
    // A "known" or "event" time is one of the key's commit times in acct (or a millisecond before it), or the end.
    const offs = engine.table('acct').offsetsOf(p.key);
    const at = p.mode === 'token' || p.where >= 1 || offs.length === 0 ? t1 : engine.table('acct').commitTimeAt(offs[Math.floor(p.where * offs.length)]) - p.before;
    const pointInTime: PointInTime = p.mode === 'token' ? 'known' : p.mode;
    const base = { entity: p.key, features, views, at, pointInTime, token };
    const whole = await replay(engine, { ...base, trailLimit: 10_000 });
    const page = await replay(engine, { ...base, trailFrom: p.from, trailLimit: p.limit });
    const what = `${when}: ${JSON.stringify(p)}`;
    assert.deepEqual({ ...page, trail: undefined, trailPage: undefined }, { ...whole, trail: undefined, trailPage: undefined }, `${what}: values and token`);
    assert.deepEqual(page.trail, whole.trail.slice(p.from, p.from + p.limit), `${what}: the trail page`);
    assert.equal(page.trailPage.total, whole.trailPage.total, `${what}: trail records in all`);
    assert.equal(page.trailPage.next, p.from + p.limit < whole.trailPage.total ? p.from + p.limit : null, `${what}: next page`);
    // The reference: every record of the key, read by a plain scan, through evaluateAt.
    let pkRecords = 0;
    for (const v of ['p', 'q', 'e']) {
      const def = views.get(v)!;
      const table = engine.table(def.source);
      const ev = new ViewEvaluator(def, table.schema);
      const all: SourceRecord[] = [];
      for await (const r of table.scan({ key: p.key })) all.push({ offset: r.offset, change: CHANGE_NAMES.indexOf(r.changeType), commitTime: r.commitTime, row: r.row });
      const upTo = token ? token[def.source] : Infinity;
      const recs = all.filter((r) => r.offset <= upTo);
      pkRecords = Math.max(pkRecords, recs.length);
      const e = evaluateAt(ev, recs, at, pointInTime);
      def.features.forEach((f, j) => {
        const ref = `${v}:${f.name}`;
        assert.deepEqual(page.features[ref], ev.toJson(j, e.values[j]), `${what}: ${ref} as the evaluator's reference has it`);
        assert.equal(page.statuses[ref], e.statuses[j], `${what}: ${ref}'s status`);
      });
    }
    if (pointInTime === 'known' && pkRecords > p.from + p.limit) short++;
  }
  return short;
}

const segmentFiles = async (dir: string, table: string): Promise<string[]> => (await readdir(join(dir, 'tables', table))).filter((n) => n.startsWith('changelog-')).sort();

async function run(ops: Op[], probes: Probe[], config: Partial<Config>, tiered: boolean): Promise<number> {
  const clock = { t: 1_000_000 };
  const dir = await tempDir();
  let asof = await testAsof(config, { now: () => clock.t, dataDir: dir.path });
  let short = 0;
  try {
    await setup(asof);
    for (let i = 0; i < ops.length; i++) {
      if (i === Math.floor(ops.length / 3)) await evolve(asof);
      await apply(asof, clock, ops[i], i >= Math.floor(ops.length / 3));
    }
    const t1 = clock.t;
    short += await check(asof, probes, t1, 'hot');
    if (tiered) {
      const engine = asof.services.engine;
      // Tiered, and the first segments deleted: hotStart moves before the files are gone, so both are waited for.
      const settled = async (): Promise<boolean> => {
        for (const t of PK_TABLES) {
          const x = engine.table(t);
          if (x.tieredEnd !== x.endOffset || x.hotStart === 0 || (await segmentFiles(asof.dataDir, t)).length >= 4) return false;
        }
        return true;
      };
      for (let i = 0; i < 1200 && !(await settled()); i++) await new Promise((r) => setTimeout(r, 50));
      for (const t of PK_TABLES) {
        assert.equal(engine.table(t).tieredEnd, engine.table(t).endOffset, `${t}: every record is in the cold tier`);
        assert.ok(engine.table(t).hotStart > 0 && (await segmentFiles(asof.dataDir, t)).length < 4, `${t}: the hot log no longer holds the first records`);
      }
      short += await check(asof, probes, t1, 'tiered');
    }
    await asof.close();
    clock.t += 60_000;
    asof = await testAsof(config, { now: () => clock.t, dataDir: dir.path });
    short += await check(asof, probes, t1, 'after a restart');
  } finally {
    await asof.close();
    await dir.cleanup();
  }
  return short;
}

const args = fc.tuple(fc.array(opArb, { minLength: 20, maxLength: 60 }), fc.array(probeArb, { minLength: 8, maxLength: 16 }));

test('pk short replay: a page of the trail and the state read from the history\'s ends equal the whole-history replay and the evaluator\'s reference', { timeout: 600_000 }, async () => {
  let short = 0;
  await fc.assert(
    fc.asyncProperty(args, async ([ops, probes]) => {
      short += await run(ops, probes, {}, false);
    }),
    { numRuns: 8, endOnFailure: true },
  );
  assert.ok(short > 20, `the short path was taken (${short} probes)`);
});

test('pk short replay from the cold tier: the same once the records are in Lance and the hot segments deleted, and after a restart', { timeout: 600_000 }, async () => {
  let short = 0;
  await fc.assert(
    fc.asyncProperty(args, async ([ops, probes]) => {
      short += await run(ops, probes, { tierAfter: 0, hotRetention: 0, segmentBytes: 1 }, true);
    }),
    { numRuns: 3, endOnFailure: true },
  );
  assert.ok(short > 5, `the short path was taken (${short} probes)`);
});
