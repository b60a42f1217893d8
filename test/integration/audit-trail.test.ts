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
