/**
 * Property: random decisions among random writes, over a pk source (ttl) and
 * a log source (windows, ttl, late and future event times), with the clock
 * moving: every decision's replay equals what its lookup answered (the HTTP
 * answer itself, not only what was recorded), and still does after a
 * restart. The online answer comes from the incremental online state; the
 * replay from the changelog records: two paths that must agree.
 * Tiering (issue 11) has not landed: "after tiering" is not exercised yet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { tempDir, testAsof, type TestAsof } from '../helpers.js';

const KEYS = ['k1', 'k2', 'k3'];
const FEATURES = ['p:score', 'w:n10s', 'w:sum10s', 'w:amt'];

type Op =
  | { op: 'upsert'; key: string; score: number | null }
  | { op: 'delete'; key: string }
  | { op: 'event'; key: string; amount: number; skewMs: number }
  | { op: 'tick'; ms: number }
  | { op: 'decide'; key: string; batch: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('upsert' as const), key: fc.constantFrom(...KEYS), score: fc.option(fc.integer({ min: -50, max: 50 }).map((x) => x / 4), { nil: null }) }),
  fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom(...KEYS) }),
  // Events up to 15 s late or 2 s in the future.
  fc.record({ op: fc.constant('event' as const), key: fc.constantFrom(...KEYS), amount: fc.integer({ min: 0, max: 100 }), skewMs: fc.integer({ min: -15_000, max: 2_000 }) }),
  fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 4_000 }) }),
  fc.record({ op: fc.constant('decide' as const), key: fc.constantFrom(...KEYS), batch: fc.boolean() }),
);

async function setup(asof: TestAsof): Promise<void> {
  const must = async (p: Promise<{ status: number; body: unknown }>) => {
    const r = await p;
    assert.ok(r.status < 300, JSON.stringify(r.body));
  };
  await must(asof.req('PUT', '/tables/acct', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'score', type: 'float64', nullable: true }] }));
  await must(asof.req('PUT', '/tables/ev', { kind: 'log', eventTime: 'at', primaryKey: ['user'], columns: [{ name: 'user', type: 'string', nullable: false }, { name: 'amount', type: 'float64', nullable: true }, { name: 'at', type: 'timestamp', nullable: false }] }));
  await must(asof.req('PUT', '/feature-views/p', { source: 'acct', entity: 'id', ttl: '5s', features: [{ name: 'score', column: 'score' }] }));
  await must(
    asof.req('PUT', '/feature-views/w', {
      source: 'ev',
      entity: 'user',
      ttl: '3s',
      features: [
        { name: 'n10s', agg: { fn: 'count', window: '10s' } },
        { name: 'sum10s', agg: { fn: 'sum', column: 'amount', window: '10s' } },
        { name: 'amt', column: 'amount' },
      ],
    }),
  );
}

test('property: every decision replays to exactly what its lookup answered, before and after a restart', { timeout: 600_000 }, async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), async (ops) => {
      const clock = { t: 1_000_000 };
      const dir = await tempDir();
      let asof = await testAsof({}, { now: () => clock.t, dataDir: dir.path });
      const answered = new Map<string, { features: unknown; statuses: unknown; eventTimes: unknown }>();
      try {
        await setup(asof);
        let n = 0;
        for (const o of ops) {
          if (o.op === 'tick') clock.t += o.ms;
          else if (o.op === 'upsert') assert.equal((await asof.req('POST', '/tables/acct/rows', { rows: [{ id: o.key, score: o.score }] })).status, 200);
          else if (o.op === 'delete') assert.equal((await asof.req('POST', '/tables/acct/rows', { rows: [{ id: o.key }], op: 'delete' })).status, 200);
          else if (o.op === 'event') assert.equal((await asof.req('POST', '/tables/ev/rows', { rows: [{ user: o.key, amount: o.amount, at: clock.t + o.skewMs }] })).status, 200);
          else {
            const id = `r${run}-d${++n}`;
            const r = o.batch
              ? await asof.req('POST', '/features', { entities: [o.key], features: FEATURES, decisions: [id] })
              : await asof.req('GET', `/features/${o.key}?features=${FEATURES.join(',')}&decision=${id}`);
            assert.equal(r.status, 200, JSON.stringify(r.body));
            const body = o.batch ? r.body.results[0] : r.body;
            answered.set(id, { features: body.features, statuses: body.statuses, eventTimes: body.eventTimes });
          }
        }
        const check = async (when: string) => {
          for (const [id, served] of answered) {
            const a = await asof.req('GET', `/audit/decisions/${id}`);
            assert.equal(a.status, 200, JSON.stringify(a.body));
            assert.deepEqual(a.body.served, served, `${when}: decision ${id} recorded what was answered`);
            assert.deepEqual({ features: a.body.reconstructed.features, statuses: a.body.reconstructed.statuses, eventTimes: a.body.reconstructed.eventTimes }, served, `${when}: decision ${id} replays to what was answered`);
            assert.equal(a.body.match, true);
            assert.equal(a.body.history.ok, true);
          }
        };
        await check('live');
        await asof.close();
        clock.t += 60_000;
        asof = await testAsof({}, { now: () => clock.t, dataDir: dir.path });
        await check('after a restart');
      } finally {
        run++;
        await asof.close();
        await dir.cleanup();
      }
    }),
    { numRuns: 12 },
  );
});
