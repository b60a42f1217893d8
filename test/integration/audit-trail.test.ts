/**
 * The audit trail over two source tables: the records of both in one order
 * (time, then table name, then offset), each with the features it changed,
 * whole and page by page, in "known" (commit time) and "event" (event time)
 * order. The replay streams each table's records and keeps only the page's,
 * so pages must still see what the records before them set.
 * Expected trails are written out by hand from the writes below.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { replay } from '../../src/audit/replay.js';
import { ok, testAsof, type TestAsof } from '../helpers.js';

const iso = (ms: number): string => new Date(ms).toISOString();

/** Writes at commit times 1000..3000; `acct` sorts before `ev`, so at equal times its records come first. */
async function world(asof: TestAsof, clock: { t: number }): Promise<void> {
  await ok(asof.req('PUT', '/tables/acct', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64', nullable: true }] }), 201);
  await ok(asof.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'at', columns: [{ name: 'user', type: 'string', nullable: false }, { name: 'amount', type: 'float64', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
  await ok(asof.req('PUT', '/feature-views/p', { source: 'acct', entity: 'id', features: [{ name: 'score', column: 'score' }] }), 201);
  await ok(asof.req('PUT', '/feature-views/w', { source: 'ev', entity: 'user', features: [{ name: 'n', agg: { fn: 'count', window: '10s' } }, { name: 'amt', column: 'amount' }] }), 201);
  const write = async (t: number, table: string, row: object) => {
    clock.t = t;
    await ok(asof.req('POST', `/tables/${table}/rows`, { rows: [row] }));
  };
  await write(1000, 'acct', { id: 'k1', score: 1 }); // acct 0 +I
  await write(1000, 'ev', { user: 'k1', amount: 5, at: 1000 }); // ev 0
  await write(1500, 'acct', { id: 'k2', score: 9 }); // acct 1, another entity
  await write(2000, 'ev', { user: 'k1', amount: 7, at: 2000 }); // ev 1, written before acct's update at the same time
  await write(2000, 'acct', { id: 'k1', score: 2 }); // acct 2 -U, 3 +U
  await write(3000, 'ev', { user: 'k1', amount: 9, at: 500 }); // ev 2, late: happened at 500
  clock.t = 4000;
}

const cells = (r: any) => [r.table, r.changeType, r.offset, r.commitTime, r.eventTime, r.changed];

test('trail over two tables: one order by time and table, the features each record changed, the same on every page', async () => {
  const clock = { t: 0 };
  const asof = await testAsof({}, { now: () => clock.t });
  try {
    await world(asof, clock);
    const url = '/audit/entities/k1?features=p:score,w:n,w:amt';
    const known = [
      ['acct', '+I', 0, iso(1000), iso(1000), ['p:score']],
      ['ev', '+I', 0, iso(1000), iso(1000), ['w:n', 'w:amt']],
      ['acct', '-U', 2, iso(2000), iso(2000), []],
      ['acct', '+U', 3, iso(2000), iso(2000), ['p:score']],
      ['ev', '+I', 1, iso(2000), iso(2000), ['w:n', 'w:amt']],
      // At 3000 the late event is the third in the window; the newest amount is still the one that happened at 2000.
      ['ev', '+I', 2, iso(3000), iso(500), ['w:n']],
    ];
    const all = await ok(asof.req('GET', url));
    assert.deepEqual([all.features, all.token], [{ 'p:score': 2, 'w:n': 3, 'w:amt': 7 }, { acct: 3, ev: 2 }]);
    assert.deepEqual(all.trail.map(cells), known);
    assert.deepEqual(all.trail[3].row, { id: 'k1', score: 2 });
    assert.deepEqual(all.trailPage, { from: 0, total: 6, next: null });
    for (const [from, limit, next] of [[0, 1, 1], [1, 2, 3], [2, 3, 5], [4, 2, null], [5, 100, null]] as const) {
      const page = await ok(asof.req('GET', `${url}&trailFrom=${from}&trailLimit=${limit}`));
      assert.deepEqual(page.trail.map(cells), known.slice(from, from + limit), `page from ${from}, ${limit} records`);
      assert.deepEqual(page.trailPage, { from, total: 6, next });
    }
    // What was known at 2000: the records committed by then (acct's update and ev 1 included).
    const at2000 = await ok(asof.req('GET', `${url}&at=${iso(2000)}&trailFrom=3`));
    assert.deepEqual([at2000.features, at2000.token, at2000.trail.map(cells), at2000.trailPage], [{ 'p:score': 2, 'w:n': 2, 'w:amt': 7 }, { acct: 3, ev: 1 }, known.slice(3, 5), { from: 3, total: 5, next: null }]);

    // By event time: the late event comes first, the -U is no version, and ties in time go to acct.
    const byEvent = [
      ['ev', '+I', 2, iso(3000), iso(500), ['w:n', 'w:amt']],
      ['acct', '+I', 0, iso(1000), iso(1000), ['p:score']],
      ['ev', '+I', 0, iso(1000), iso(1000), ['w:n', 'w:amt']],
      ['acct', '+U', 3, iso(2000), iso(2000), ['p:score']],
      ['ev', '+I', 1, iso(2000), iso(2000), ['w:n', 'w:amt']],
    ];
    const ev = await ok(asof.req('GET', `${url}&pointInTime=event`));
    assert.deepEqual([ev.features, ev.trail.map(cells), ev.trailPage], [{ 'p:score': 2, 'w:n': 3, 'w:amt': 7 }, byEvent, { from: 0, total: 5, next: null }]);
    const evPage = await ok(asof.req('GET', `${url}&pointInTime=event&trailFrom=2&trailLimit=2`));
    assert.deepEqual([evPage.trail.map(cells), evPage.trailPage], [byEvent.slice(2, 4), { from: 2, total: 5, next: 4 }]);
  } finally {
    await asof.destroy();
  }
});

test('every page of a long trail sees the state of the whole history, and shows whole rows', async () => {
  // Past its page, a replay reads only the views' columns (replay.ts, entityRecords): a column a view reads and the
  // page does not show (amount's sum, the pk's event time) must still reach the state. Expected values by hand.
  const clock = { t: 0 };
  const asof = await testAsof({}, { now: () => clock.t });
  try {
    await ok(asof.req('PUT', '/tables/acct', { kind: 'pk', primaryKey: ['id'], eventTime: 'at', columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64', nullable: true }, { name: 'note', type: 'string', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
    await ok(asof.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'at', primaryKey: ['user'], columns: [{ name: 'user', type: 'string', nullable: false }, { name: 'amount', type: 'float64', nullable: true }, { name: 'memo', type: 'string', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
    await ok(asof.req('PUT', '/feature-views/p', { source: 'acct', entity: 'id', ttl: '1h', features: [{ name: 'score', column: 'score' }] }), 201);
    await ok(asof.req('PUT', '/feature-views/w', { source: 'ev', entity: 'user', features: [{ name: 'total', agg: { fn: 'sum', column: 'amount', window: '20s' } }, { name: 'n', agg: { fn: 'count', window: '20s' } }] }), 201);
    let records = 0;
    const events: { amount: number; at: number }[] = [];
    for (let i = 0; i < 40; i++) {
      clock.t = 1000 * (i + 1);
      // Every other event happened 10 s before it was written; no event time falls on a window's edge.
      const e = { amount: i + 1, at: clock.t + 500 - (i % 2 === 0 ? 10_000 : 0) };
      events.push(e);
      await ok(asof.req('POST', '/tables/ev/rows', { rows: [{ user: 'k1', memo: `m${i}`, ...e }] }));
      records++;
      if (i % 3 === 0) {
        await ok(asof.req('POST', '/tables/acct/rows', { rows: [{ id: 'k1', score: i, note: `n${i}`, at: clock.t }] }));
        records += i === 0 ? 1 : 2; // +I, then -U and +U
      }
    }
    clock.t = 45_000;
    const inWindow = events.filter((e) => e.at > clock.t - 20_000);
    // The last score was written at i = 39.
    const expected = { 'p:score': 39, 'w:total': inWindow.reduce((a, e) => a + e.amount, 0), 'w:n': inWindow.length };
    assert.ok(inWindow.length > 5 && inWindow.length < 20);
    for (const limit of [1, 2, 7, records - 1, records, 10_000]) {
      const page = await ok(asof.req('GET', `/audit/entities/k1?features=p:score,w:total,w:n&trailLimit=${limit}`));
      assert.deepEqual(page.features, expected, `trail page of ${limit}`);
      assert.equal(page.trail.length, Math.min(limit, records));
      for (const r of page.trail) assert.ok(r.table === 'ev' ? typeof r.row.memo === 'string' && typeof r.row.amount === 'number' : r.changeType === '-U' || typeof r.row.note === 'string', JSON.stringify(r));
    }
  } finally {
    await asof.destroy();
  }
});

test('past the trail page, records read as columns from the cold tier and the hot log give the state whole records give', { timeout: 120_000 }, async () => {
  // Past its page, a replay reads the views' columns of the entity's records as columns (union-read.ts keyColumns): from
  // the cold tier (Lance) below the hot log, from hot frames above it. Held to the whole-record read (trailLimit past the
  // history) and to values worked out here, with a token and at a moment in the middle of the history ("known").
  const asof = await testAsof({ tierAfter: 0, hotRetention: 0, segmentBytes: 1 });
  try {
    await ok(asof.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'at', primaryKey: ['user'], columns: [{ name: 'user', type: 'string', nullable: false }, { name: 'amount', type: 'float64', nullable: true }, { name: 'memo', type: 'string', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }), 201);
    await ok(asof.req('PUT', '/feature-views/w', { source: 'ev', entity: 'user', features: [{ name: 'total', agg: { fn: 'sum', column: 'amount', window: '1d' } }, { name: 'n', agg: { fn: 'count', column: 'amount', window: '1d' } }, { name: 'last', column: 'amount' }] }), 201);
    const t0 = Date.now() - 3_600_000;
    const events: { amount: number | null; at: number }[] = [];
    const write = async (i: number) => {
      // Late events now and then (event time before the previous one's), a null amount every seventh, another entity's row in each frame.
      const e = { amount: i % 7 === 3 ? null : i + 1, at: t0 + 1000 * i - (i % 5 === 2 ? 4500 : 0) };
      await ok(asof.req('POST', '/tables/ev/rows', { rows: [{ user: 'other', amount: 1000, memo: 'o', at: e.at }, { user: 'k1', memo: `m${i}`, ...e }] }));
      events.push(e);
    };
    for (let i = 0; i < 40; i++) await write(i);
    const table = asof.services.engine.table('ev');
    for (let i = 0; i < 1200 && !(table.tieredEnd === table.endOffset && table.hotStart >= 60); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(table.hotStart >= 60, `the first records are only in the cold tier (hot log from ${table.hotStart})`);
    for (let i = 40; i < 50; i++) await write(i);
    assert.ok(table.hotStart < table.endOffset, 'the last records are read from the hot log');
    // Commit times as the engine stamped them (the whole trail shows them): "known" at t applies the records committed by t.
    const all = await ok(asof.req('GET', `/audit/entities/k1?features=w:total&trailLimit=10000`));
    const committed = new Map<string, number>(all.trail.map((r: { row: { memo: string }; commitTime: string }) => [r.row.memo, Date.parse(r.commitTime)]));
    const expected = (at: number) => {
      const known = events.filter((_, i) => committed.get(`m${i}`)! <= at);
      const set = known.filter((e) => e.amount !== null);
      const last = [...known].sort((a, b) => a.at - b.at).pop()!;
      return { 'w:total': set.reduce((a, e) => a + e.amount!, 0), 'w:n': set.length, 'w:last': last.amount };
    };
    // At the commit of the 40th record (the rest of the history committed later), and now.
    const middle = committed.get('m39')!;
    assert.ok(committed.get('m40')! > middle, 'the 41st record was committed after the 40th');
    for (const at of [middle, Date.now()]) {
      const q = `/audit/entities/k1?features=w:total,w:n,w:last&at=${new Date(at).toISOString()}`;
      const whole = await ok(asof.req('GET', `${q}&trailLimit=10000`));
      assert.deepEqual(whole.features, expected(at));
      for (const limit of [1, 3, 39]) {
        const page = await ok(asof.req('GET', `${q}&trailLimit=${limit}`));
        assert.deepEqual(page.features, whole.features, `trail page of ${limit} at ${new Date(at).toISOString()}`);
        assert.deepEqual(page.token, whole.token);
        assert.equal(page.trailPage.total, whole.trailPage.total);
      }
    }
    // With a token (what a decision replays): the records up to it, evaluated at the serving time.
    const { engine, registry } = asof.services;
    const token = engine.token(['ev']);
    await write(50);
    const views = new Map([['w', registry.view('w')]]);
    const args = { entity: 'k1', features: registry.resolve({ view: 'w' }), views, at: Date.now(), pointInTime: 'known' as const, token };
    const whole = await replay(engine, { ...args, trailLimit: 10_000 });
    assert.deepEqual(whole.features, expected(committed.get('m49')!));
    for (const limit of [1, 10]) assert.deepEqual((await replay(engine, { ...args, trailLimit: limit })).features, whole.features, `token, trail page of ${limit}`);
  } finally {
    await asof.destroy();
  }
});
