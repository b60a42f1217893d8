/**
 * The lookup cache must never change an answer. A served asof (cache on) is
 * read after random writes and clock moves (forward, backward, onto exact ttl
 * and future-version boundaries) and every answer is compared with a second
 * OnlineService over the same store and registry whose cache is off.
 */
import { after, before, test } from 'node:test';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import assert from 'node:assert/strict';
import { OnlineService, type EntityEval } from '../../src/online/service.js';
import { LookupCache } from '../../src/online/lookup-cache.js';
import { toObjects } from '../../src/online/service.js';
import { ok, testAsof, type TestAsof } from '../helpers.js';

const MIN = 60_000;
const T0 = Date.parse('2026-05-01T12:00:00Z');

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

let asof: TestAsof;
const clock = { t: T0 };

before(async () => {
  asof = await testAsof({}, { now: () => clock.t });
  await ok(asof.req('PUT', '/tables/events', { kind: 'log', eventTime: 'ts', columns: [{ name: 'card', type: 'string', nullable: false }, { name: 'ts', type: 'timestamp', nullable: false }, { name: 'amount', type: 'float64', nullable: true }, { name: 'merchant', type: 'string', nullable: true }] }), 201);
  await ok(asof.req('PUT', '/tables/cards', { kind: 'pk', primaryKey: ['card'], eventTime: 'updated', columns: [{ name: 'card', type: 'string', nullable: false }, { name: 'updated', type: 'timestamp', nullable: true }, { name: 'limit', type: 'int64', nullable: true }, { name: 'tier', type: 'string', nullable: true }] }), 201);
  await ok(asof.req('PUT', '/feature-views/last', { source: 'events', entity: 'card', ttl: '30m', features: [{ name: 'amount', column: 'amount' }, { name: 'merchant', column: 'merchant' }] }), 201);
  await ok(asof.req('PUT', '/feature-views/spend', { source: 'events', entity: 'card', features: [{ name: 'n10m', agg: { fn: 'count', window: '10m' } }, { name: 'sum1h', agg: { fn: 'sum', column: 'amount', window: '1h' } }] }), 201);
  await ok(asof.req('PUT', '/feature-views/card', { source: 'cards', entity: 'card', ttl: '1h', features: [{ name: 'limit', column: 'limit' }, { name: 'tier', column: 'tier' }] }), 201);
  await ok(asof.req('PUT', '/feature-views/card_forever', { source: 'cards', entity: 'card', features: [{ name: 'tier', column: 'tier' }] }), 201);
});

after(() => asof.destroy());

test('answers with the cache equal answers without it, through writes and clock moves', async () => {
  const s = asof.services;
  const reference = new OnlineService(s.registry, s.onlineStore, s.materializer, () => clock.t, 0);
  const selections = ['view=last', 'view=spend', 'view=card', 'view=card_forever', 'features=last:amount,card:tier,spend:n10m', 'features=card:limit,card_forever:tier'];
  const cards = ['c0', 'c1', 'c2', 'c3'];
  const r = rng(7);
  const boundaries: number[] = [];
  const hitsBefore = s.online.cache.hits;
  let compared = 0;
  for (let step = 0; step < 160; step++) {
    const roll = r();
    if (roll < 0.35) {
      const card = cards[Math.floor(r() * cards.length)];
      // Mostly now-ish, some late, some stamped up to 5 minutes ahead (they become visible later).
      const ts = clock.t + (r() < 0.2 ? Math.floor(r() * 5 * MIN) : -Math.floor(r() * 40 * MIN));
      await ok(asof.req('POST', '/tables/events/rows', { rows: [{ card, ts, amount: r() < 0.2 ? null : Math.floor(r() * 1000) / 4, merchant: r() < 0.3 ? null : `m${Math.floor(r() * 3)}` }] }));
      boundaries.push(ts, ts + 30 * MIN);
    } else if (roll < 0.5) {
      const card = cards[Math.floor(r() * cards.length)];
      const op = r() < 0.15 ? 'delete' : 'upsert';
      const updated = r() < 0.2 ? null : clock.t - Math.floor(r() * 50 * MIN);
      await ok(asof.req('POST', '/tables/cards/rows', { op, rows: [op === 'delete' ? { card } : { card, updated, limit: Math.floor(r() * 5000), tier: r() < 0.3 ? null : `t${Math.floor(r() * 3)}` }] }));
      if (updated !== null) boundaries.push(updated + 60 * MIN);
    } else if (roll < 0.65 && boundaries.length) {
      // Onto an exact boundary (a future version's time, a ttl's last ms) or the ms after it.
      clock.t = boundaries[Math.floor(r() * boundaries.length)] + (r() < 0.5 ? 0 : 1);
    } else if (roll < 0.7) {
      clock.t -= Math.floor(r() * 10 * MIN);
    } else {
      clock.t += Math.floor(r() * 4 * MIN);
    }
    // Read twice, so the second read is the cache's answer when nothing changed.
    for (let pass = 0; pass < 2; pass++) {
      for (const card of cards) {
        for (const q of selections) {
          const got = await ok(asof.req('GET', `/features/${card}?${q}`));
          const sel = q.startsWith('view=') ? { view: q.slice(5) } : { features: q.slice(9).split(',') };
          const want = toObjects([card], await reference.evaluate([card], await reference.plan(sel)))[0];
          assert.deepEqual(got, JSON.parse(JSON.stringify(want)), `step ${step}, ${card}?${q} at ${new Date(clock.t).toISOString()}`);
          compared++;
        }
      }
    }
    const batch = await ok(asof.req('POST', '/features', { entities: cards, view: 'last' }));
    const want = toObjects(cards, await reference.evaluate(cards, await reference.plan({ view: 'last' })));
    assert.deepEqual(batch.results, JSON.parse(JSON.stringify(want)), `step ${step}, batch`);
  }
  assert.ok(compared > 1000);
  // The comparison means something only if the cache answered a good share of the reads.
  assert.ok(s.online.cache.hits - hitsBefore > 1000, `cache hits: ${s.online.cache.hits - hitsBefore}`);
});

test('LookupCache: admits a state on its second miss, reuses it only within its time range, keeps to its budget', () => {
  const entry = (from: number, until: number): EntityEval => ({ values: [1], statuses: ['PRESENT'], eventTimes: [5], from, until, kept: false, used: false });
  const c = new LookupCache(1_000_000);
  const e = entry(100, 200);
  assert.equal(c.offer('v@1', 'state-a', e), false, 'the first miss is only remembered');
  assert.equal(c.get('v@1', 'state-a', 150), undefined);
  assert.equal(c.offer('v@1', 'state-a', e), true, 'the second is kept');
  assert.equal(c.get('v@1', 'state-a', 100), e);
  assert.equal(c.get('v@1', 'state-a', 200), e);
  assert.equal(c.get('v@1', 'state-a', 99), undefined, 'before it was made (a clock moved back)');
  assert.equal(c.get('v@1', 'state-a', 201), undefined, 'after it stopped holding');
  assert.equal(c.get('v@2', 'state-a', 150), undefined, 'another namespace');
  assert.equal(c.get('v@1', 'state-b', 150), undefined, 'another state');

  // Each entry is estimated at 2 x 100 + 200 + 160 = 560 bytes: a 56,000-byte budget keeps 50 to 100 of them.
  const small = new LookupCache(56_000);
  const key = (i: number) => String(i).padStart(100, '0');
  for (let i = 0; i < 1000; i++) for (let twice = 0; twice < 2; twice++) small.offer('v@1', key(i), entry(0, Infinity));
  // The most recent survive; the oldest are gone.
  assert.ok(small.get('v@1', key(999), 1));
  let kept = 0;
  for (let i = 999; i >= 0; i--) if (small.get('v@1', key(i), 1)) kept++;
  assert.ok(kept >= 40 && kept <= 100, `kept ${kept}`);
  assert.equal(small.get('v@1', key(0), 1), undefined);

  // A working set of 80% of the budget stays whole once admitted (two generations held at most half).
  const ws = new LookupCache(56_000);
  for (let round = 0; round < 4; round++) for (let i = 0; i < 80; i++) if (!ws.get('v@1', key(i), 1)) ws.offer('v@1', key(i), entry(0, Infinity));
  const hitsBefore = ws.hits;
  for (let i = 0; i < 80; i++) ws.get('v@1', key(i), 1);
  assert.equal(ws.hits - hitsBefore, 80);

  // Second chance: a state hit between admissions survives however many others pass through; the unused go.
  const clock = new LookupCache(56_000);
  const hot = entry(0, Infinity);
  clock.offer('v@1', 'hot', hot);
  clock.offer('v@1', 'hot', hot);
  for (let i = 0; i < 1000; i++) {
    for (let twice = 0; twice < 2; twice++) clock.offer('v@1', key(i), entry(0, Infinity));
    assert.equal(clock.get('v@1', 'hot', 1), hot, `evicted after ${i} others`);
  }
  assert.ok(clock.size <= 100, `holds ${clock.size}`);
  assert.equal(clock.get('v@1', key(0), 1), undefined);

  // States visited once each in turn, more of them than the doorkeeper remembers, are never admitted.
  const cycling = new LookupCache(1024 * 4096);
  let admitted = 0;
  for (let round = 0; round < 3; round++) for (let i = 0; i < 5000; i++) if (cycling.offer('v@1', key(i), entry(0, Infinity))) admitted++;
  assert.equal(admitted, 0);

  const off = new LookupCache(0);
  assert.equal(off.offer('v@1', 'x', entry(0, Infinity)), false);
  assert.equal(off.offer('v@1', 'x', entry(0, Infinity)), false);
  assert.equal(off.get('v@1', 'x', 1), undefined);
});

test('large answers written into reused buffers stay intact when many are in flight at once', async () => {
  const bio = (id: number): string => `person ${id} ` + 'ü✓'.repeat(id % 40) + '.'.repeat(2800);
  const served = await testAsof({}, { listen: true });
  try {
    await ok(served.req('PUT', '/tables/people', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'bio', type: 'string', nullable: true }] }), 201);
    await ok(served.req('POST', '/tables/people/rows', { rows: Array.from({ length: 2000 }, (_, id) => ({ id, bio: bio(id) })) }));
    await ok(served.req('PUT', '/feature-views/people', { source: 'people', entity: 'id', features: [{ name: 'bio', column: 'bio' }] }), 201);
    // Twelve batches of 2,000 entities in different orders: each answer is about 6 MB, more than the kernel's socket buffers take.
    const orders = Array.from({ length: 12 }, (_, k) => Array.from({ length: 2000 }, (_, i) => (i * (2 * k + 1) + k) % 2000));
    const port = Number(new URL(served.url).port);
    // Clients that do not read until every answer is written: the kernel cannot take whole answers, so each
    // stays partly queued in the server while the next ones are rendered. Reusing a buffer too early would show.
    const sockets = await Promise.all(
      orders.map(
        (entities) =>
          new Promise<Socket>((resolve, reject) => {
            const body = JSON.stringify({ entities, view: 'people' });
            const sock = connect(port, '127.0.0.1', () => {
              sock.pause();
              sock.write(`POST /features HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
              resolve(sock);
            });
            sock.on('error', reject);
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 500));
    const answers = await Promise.all(
      sockets.map(async (sock) => {
        const chunks: Buffer[] = [];
        sock.on('data', (c: Buffer) => chunks.push(c));
        sock.resume();
        await once(sock, 'end');
        const raw = Buffer.concat(chunks);
        const headEnd = raw.indexOf('\r\n\r\n');
        assert.match(raw.toString('latin1', 0, headEnd), /^HTTP\/1\.1 200/);
        return JSON.parse(raw.subarray(headEnd + 4).toString('utf8')) as { results: { entity: number; features: Record<string, string> }[] };
      }),
    );
    answers.forEach((a, k) => {
      assert.equal(a.results.length, 2000);
      a.results.forEach((r, i) => {
        assert.equal(r.entity, orders[k][i]);
        assert.equal(r.features['people:bio'], bio(orders[k][i]));
      });
    });
  } finally {
    await served.destroy();
  }
});
