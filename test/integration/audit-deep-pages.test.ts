/**
 * Deep pages of the audit trail (audit/steps.ts): a page far into an entity's
 * history answers exactly what the whole trail says at that place (records,
 * what each changed, trailPage, values, token), while the replay holds the
 * page's records and the entity's state, not every record before the page.
 *
 * The reference is the same replay asked for the whole trail in one page:
 * there every record is on the page, applied and evaluated one at a time at
 * its own time; a deep page instead applies the records before it a chunk at
 * a time and keeps none of them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { replay, type Replay, type ReplayInput } from '../../src/audit/replay.js';
import type { Token } from '../../src/engine/engine.js';
import type { Table } from '../../src/engine/table.js';
import type { PointInTime } from '../../src/features/evaluator.js';
import { rng } from '../../support/rng.js';
import { heapAfterGc, ok, tempDir, testAsof, until, type TestAsof } from '../helpers.js';

/** acct (pk) and ev (log) are keyed by the entity; clicks has no key (read by scanning the table). */
async function setup(asof: TestAsof): Promise<void> {
  await ok(asof.req('PUT', '/tables/acct', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64', nullable: true }, { name: 'note', type: 'string', nullable: true }] }), 201);
  await ok(asof.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'at', primaryKey: ['user'], columns: [{ name: 'user', type: 'string', nullable: false }, { name: 'amount', type: 'float64', nullable: true }, { name: 'memo', type: 'string', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
  await ok(asof.req('PUT', '/tables/clicks', { kind: 'log', eventTime: 'at', columns: [{ name: 'user', type: 'string', nullable: false }, { name: 'page', type: 'string', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
  await ok(asof.req('PUT', '/feature-views/p', { source: 'acct', entity: 'id', ttl: '20s', features: [{ name: 'score', column: 'score' }, { name: 'note', column: 'note' }] }), 201);
  await ok(asof.req('PUT', '/feature-views/w', { source: 'ev', entity: 'user', ttl: '15s', features: [{ name: 'n', agg: { fn: 'count', window: '10s' } }, { name: 'total', agg: { fn: 'sum', column: 'amount', window: '1m' } }, { name: 'amt', column: 'amount' }] }), 201);
  await ok(asof.req('PUT', '/feature-views/c', { source: 'clicks', entity: 'user', features: [{ name: 'n', agg: { fn: 'count', window: '20s' } }, { name: 'page', column: 'page' }] }), 201);
}

/**
 * `rounds` commits of random writes to k1 (and another entity), the clock
 * moving 0-3 s between them (0: tables committed at one time, ordered by
 * name): several records of k1 per commit (a pk key upserted twice in one
 * write is -U/+U twice), deletes, null values, events up to 15 s late or 5 s
 * ahead of their commit (windows and future versions), on whole seconds (ties
 * in event time). Returns a token and a commit time from the middle.
 */
async function history(asof: TestAsof, clock: { t: number }, rounds: number, seed: number): Promise<{ token: Token; middle: number }> {
  const r = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  let token: Token = {};
  let middle = 0;
  for (let i = 0; i < rounds; i++) {
    clock.t += r() < 0.3 ? 0 : int(1, 3000);
    if (i === Math.floor(rounds / 2)) {
      token = asof.services.engine.token(['acct', 'ev', 'clicks']);
      middle = clock.t;
    }
    const p = r();
    if (p < 0.35) {
      const rows = Array.from({ length: int(1, 3) }, (_, j) => ({ id: 'k1', score: r() < 0.15 ? null : int(-50, 50), note: `n${i}.${j}` }));
      await ok(asof.req('POST', '/tables/acct/rows', { rows: [...rows, { id: 'k2', score: 1, note: 'x' }] }));
    } else if (p < 0.4) {
      await ok(asof.req('POST', '/tables/acct/rows', { rows: [{ id: 'k1' }], op: 'delete' }));
    } else if (p < 0.75) {
      const rows = Array.from({ length: int(1, 4) }, (_, j) => ({ user: 'k1', amount: r() < 0.1 ? null : int(0, 99), memo: `m${i}.${j}`, at: clock.t + int(-15, 5) * 1000 }));
      await ok(asof.req('POST', '/tables/ev/rows', { rows: [{ user: 'k2', amount: 1, memo: 'o', at: clock.t }, ...rows] }));
    } else {
      const rows = Array.from({ length: int(1, 3) }, () => ({ user: 'k1', page: `/p${int(0, 9)}`, at: clock.t + int(-3, 1) * 5000 }));
      await ok(asof.req('POST', '/tables/clicks/rows', { rows: [...rows, { user: 'k2', page: '/o', at: clock.t }] }));
    }
  }
  return { token, middle };
}

const values = (x: Replay) => ({ features: x.features, statuses: x.statuses, eventTimes: x.eventTimes, token: x.token });

test('a deep page is the whole trail\'s slice: every view and read mode, pages starting and ending inside one commit', { timeout: 300_000 }, async () => {
  const clock = { t: 1_000_000 };
  const asof = await testAsof({}, { now: () => clock.t });
  try {
    await setup(asof);
    const { token, middle } = await history(asof, clock, 700, 7);
    const { engine, registry } = asof.services;
    const end = clock.t + 2000;
    const modes: { name: string; at: number; pointInTime: PointInTime; token?: Token }[] = [
      { name: 'known', at: end, pointInTime: 'known' },
      { name: 'known, mid-history', at: middle, pointInTime: 'known' },
      { name: 'token', at: end, pointInTime: 'known', token },
      { name: 'event', at: end, pointInTime: 'event' },
      { name: 'event, mid-history', at: middle, pointInTime: 'event' },
    ];
    let insideCommit = 0;
    // One source (keyed log, pk, unkeyed log: only the page is read whole) and all three (the walk merges them).
    for (const views of [['w'], ['p'], ['c'], ['p', 'w', 'c']]) {
      const base = { entity: 'k1', features: views.flatMap((v) => registry.resolve({ view: v })), views: new Map(views.map((v) => [v, registry.view(v)])) };
      for (const m of modes) {
        const input: ReplayInput = { ...base, at: m.at, pointInTime: m.pointInTime, token: m.token };
        const whole = await replay(engine, { ...input, trailLimit: 10_000 });
        const total = whole.trailPage.total;
        const what = `${views.join('+')}, ${m.name}`;
        assert.equal(whole.trail.length, total, `${what}: the whole trail fits one page`);
        assert.ok(total > 100, `${what}: a long trail (${total} records)`);
        // Where a record has the time of the one before it (its commit, or another table's at that time; its event
        // time for "event"): a page starting there must still see the first one's change, one ending there stop there.
        const time = (rec: Replay['trail'][number]) => (m.pointInTime === 'event' ? rec.eventTime : rec.commitTime);
        const shared = whole.trail.flatMap((rec, i) => (i > 0 && time(whole.trail[i - 1]) === time(rec) ? [i] : []));
        assert.ok(shared.length >= 6, `${what}: records that share their time with the one before (${shared.length})`);
        const pages: [number, number][] = [
          [1, 1],
          [shared[3], 1],
          [shared[5], 7],
          [shared[shared.length - 2], 100],
          [shared[Math.floor(shared.length / 2)] - 3, 3],
          [Math.floor(total / 2), 50],
          [total - 100, 100],
          [total - 1, 10],
          [total, 5],
          [total + 40, 1],
        ];
        for (const [from, limit] of pages) {
          const page = await replay(engine, { ...input, trailFrom: from, trailLimit: limit });
          assert.deepEqual(page.trail, whole.trail.slice(from, from + limit), `${what}: records ${from} to ${from + limit - 1}`);
          assert.deepEqual(page.trailPage, { from, total, next: from + limit < total ? from + limit : null }, `${what}: page from ${from}`);
          assert.deepEqual(values(page), values(whole), `${what}: values and token with the page from ${from}`);
          if (shared.includes(from) || shared.includes(from + limit)) insideCommit++;
        }
        // Page after page, as a client follows `next`.
        const followed: unknown[] = [];
        for (let from: number | null = 0; from !== null; ) {
          const page = await replay(engine, { ...input, trailFrom: from, trailLimit: 97 });
          followed.push(...page.trail);
          from = page.trailPage.next;
        }
        assert.deepEqual(followed, whole.trail, `${what}: the pages in turn`);
      }
    }
    assert.ok(insideCommit >= 40, `pages cut inside a commit (${insideCommit})`);
  } finally {
    await asof.destroy();
  }
});

test('deep pages from the cold tier: a page in the records only Lance holds, across its end, and in the hot log', { timeout: 300_000 }, async () => {
  // Before a single table's page only its views' columns are read, a limited number of records (table-scan.ts
  // scanKeyColumns): from the cold tier (one key query) below the hot log, from hot frames above it.
  const clock = { t: 1_000_000 };
  const dir = await tempDir();
  let asof = await testAsof({ tierAfter: 0, hotRetention: 0, segmentBytes: 1 }, { now: () => clock.t, dataDir: dir.path });
  try {
    await setup(asof);
    await history(asof, clock, 300, 11);
    const tiered = (a: TestAsof) => ['acct', 'ev'].map((n) => a.services.engine.table(n));
    await until('the records only in the cold tier', () => tiered(asof).every((t) => t.tieredEnd === t.endOffset && t.hotStart > t.endOffset * 0.9), 60_000);
    // Restarted without tiering: what is in Lance stays there, what comes next stays in the hot log.
    await asof.close();
    asof = await testAsof({ tierAfter: 3_600_000 }, { now: () => clock.t, dataDir: dir.path });
    await history(asof, clock, 100, 12);
    const { engine, registry } = asof.services;
    for (const views of [['w'], ['p'], ['p', 'w']]) {
      const input: ReplayInput = { entity: 'k1', features: views.flatMap((v) => registry.resolve({ view: v })), views: new Map(views.map((v) => [v, registry.view(v)])), at: clock.t, pointInTime: 'known' };
      const whole = await replay(engine, { ...input, trailLimit: 10_000 });
      const total = whole.trailPage.total;
      // The first record of the hot log in the trail: pages end before it, start before it and end after, start after.
      const hot = whole.trail.findIndex((r) => r.offset >= engine.table(r.table).hotStart);
      assert.ok(hot > 20 && hot < total - 20, `${views}: the trail's records ${hot} to ${total - 1} are hot`);
      for (const [from, limit] of [[hot - 15, 10], [hot - 5, 10], [hot + 3, 10], [total - 10, 10]]) {
        const page = await replay(engine, { ...input, trailFrom: from, trailLimit: limit });
        assert.deepEqual(page.trail, whole.trail.slice(from, from + limit), `${views}: records ${from} to ${from + limit - 1}`);
        assert.deepEqual(values(page), values(whole), `${views}: values and token with the page from ${from}`);
      }
    }
  } finally {
    await asof.close();
    await dir.cleanup();
  }
});

/**
 * Weak references to the rows of the first quarter of k1's records the
 * tables' key reads hand out whole (as the trail page shows them): `held` is
 * the most of them still reachable after a full collection, looked at as
 * each chunk of the last quarter is handed out. By then the walk is far past
 * them: a read chunk is a run of frames of up to 1 MB, a few hundred records
 * here, and the walk holds one chunk per table and the one being read.
 */
function trackRows(tables: Table[]): { held: () => number; looks: () => number; handed: () => number; restore: () => void } {
  let held = 0;
  let looks = 0;
  let handed = 0;
  const early: WeakRef<object>[] = [];
  const restores = tables.map((t) => {
    const n = t.offsetsOf('k1').length;
    let i = 0;
    const scanKey = t.scanKey;
    t.scanKey = async function* (key, opts) {
      for await (const recs of scanKey.call(t, key, opts)) {
        if (i >= (3 * n) / 4) {
          // A reference made or followed in this job keeps its target alive to the job's end: collected in a later one.
          await new Promise((r) => setImmediate(r));
          heapAfterGc();
          held = Math.max(held, early.filter((w) => w.deref() !== undefined).length);
          looks++;
        }
        for (const rec of recs) if (i++ < n / 4) early.push(new WeakRef(rec.row));
        handed += recs.length;
        yield recs;
      }
    };
    return () => void (t.scanKey = scanKey);
  });
  return { held: () => held, looks: () => looks, handed: () => handed, restore: () => restores.forEach((f) => f()) };
}

test('a page deep in a long history holds the page\'s records, not the records before it', { timeout: 300_000 }, async (t) => {
  const clock = { t: 1_000_000 };
  const asof = await testAsof({}, { now: () => clock.t });
  try {
    await setup(asof);
    // About 4,000 records of k1 in each keyed table, 100 a commit; a 150 kB row of another entity in each frame keeps a
    // key read's chunk (a run of frames up to 1 MB) to 6 frames, 600 records.
    const wide = 'x'.repeat(150_000);
    for (let i = 0; i < 40; i++) {
      clock.t += 1000;
      const ev = Array.from({ length: 100 }, (_, j) => ({ user: 'k1', amount: j, memo: `m${i}.${j}`, at: clock.t - 5000 + j }));
      await ok(asof.req('POST', '/tables/ev/rows', { rows: [...ev, { user: 'o', memo: wide, at: clock.t }] }));
      const acct = Array.from({ length: 50 }, (_, j) => ({ id: 'k1', score: i + j, note: `n${i}.${j}` }));
      await ok(asof.req('POST', '/tables/acct/rows', { rows: [...acct, { id: 'o', note: wide }] }));
    }
    const { engine, registry } = asof.services;
    const tables = [engine.table('ev'), engine.table('acct')];
    for (const views of [['w'], ['p', 'w']]) {
      await t.test(views.join('+'), async () => {
        const input: ReplayInput = { entity: 'k1', features: views.flatMap((v) => registry.resolve({ view: v })), views: new Map(views.map((v) => [v, registry.view(v)])), at: clock.t, pointInTime: 'known' };
        const total = (await replay(engine, { ...input, trailLimit: 1 })).trailPage.total;
        assert.ok(total >= 4000, `${views}: ${total} records`);
        const tracked = trackRows(tables);
        let page: Replay;
        try {
          page = await replay(engine, { ...input, trailFrom: total - 50, trailLimit: 50 });
        } finally {
          tracked.restore();
        }
        assert.equal(page.trail.length, 50);
        if (views.length === 1) {
          // One table: its steps are the trail's, so only the page's records are read whole (the others as columns).
          assert.equal(tracked.handed(), 50, `${views}: records read whole`);
        } else {
          // Two: every record up to the page's end is read whole, and let go once the walk has passed it.
          assert.ok(tracked.looks() > 2, `${views}: looked ${tracked.looks()} times`);
          assert.equal(tracked.held(), 0, `${views}: records of the first quarter still held while the last quarter was read (${tracked.handed()} read whole)`);
        }
      });
    }
  } finally {
    await asof.destroy();
  }
});
