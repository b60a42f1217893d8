/**
 * The audit trail over two source tables: the records of both in one order
 * (time, then table name, then offset), each with the features it changed,
 * whole and page by page, in "known" (commit time) and "event" (event time)
 * order. The replay streams each table's records and keeps only those a page
 * can reach, so pages must still see what the records before them set.
 * Expected trails are written out by hand from the writes below.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
