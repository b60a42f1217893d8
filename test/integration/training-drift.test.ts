/**
 * Zero drift: what online serving answered at a moment is what a training set
 * with pointInTime "known" gives for that (entity, moment), feature by feature.
 *
 * Random event streams under an injected clock: log and pk sources, event
 * times out of order, late and ahead of the clock, updates and deletes. At
 * random moments the test records what the online service evaluates; at the end it
 * asks for the training set of all those (entity, moment) pairs.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { testAsof } from '../helpers.js';
import type { Config } from '../../src/config.js';
import { toObjects } from '../../src/online/service.js';
import { Clock, rng, trainingRows } from './training-fixtures.js';

const MIN = 60_000;

const VIEWS = {
  // Column features over a log table, with a ttl.
  clicks_last: { source: 'clicks', entity: 'user', ttl: '15m', features: [{ name: 'page', column: 'page' }, { name: 'dwell', column: 'dwell' }] },
  // Every aggregate function.
  clicks_agg: {
    source: 'clicks',
    entity: 'user',
    features: [
      { name: 'n_10m', agg: { fn: 'count' as const, window: '10m' } },
      { name: 'n_dwell_1h', agg: { fn: 'count' as const, column: 'dwell', window: '1h' } },
      { name: 'sum_dwell_30m', agg: { fn: 'sum' as const, column: 'dwell', window: '30m' } },
      { name: 'avg_dwell_1h', agg: { fn: 'avg' as const, column: 'dwell', window: '1h' } },
      { name: 'min_dwell_30m', agg: { fn: 'min' as const, column: 'dwell', window: '30m' } },
      { name: 'max_dwell_30m', agg: { fn: 'max' as const, column: 'dwell', window: '30m' } },
      { name: 'last_page_2h', agg: { fn: 'last' as const, column: 'page', window: '2h' } },
    ],
  },
  // Column features over a pk table with an event-time column and a ttl.
  wallet: { source: 'wallets', entity: 'id', ttl: '20m', features: [{ name: 'balance', column: 'balance' }, { name: 'status', column: 'status' }] },
  // Column features over a pk table without event time (commit time), no ttl.
  tier: { source: 'tiers', entity: 'id', features: [{ name: 'tier', column: 'tier' }, { name: 'since', column: 'since' }] },
};
type ViewName = keyof typeof VIEWS;
const ENTITIES: Record<ViewName, unknown[]> = { clicks_last: [1, 2, 3, 4], clicks_agg: [1, 2, 3, 4], wallet: ['w1', 'w2', 'w3'], tier: ['w1', 'w2', 'w3', 'w4'] };

// Default tiering (10s: the clock moves minutes a step, so records tier as they go), and tiering at
// once with no hot retention and small segments: the training sets then read most records from Lance.
const CONFIGS: [string, Partial<Config>, number[]][] = [
  ['', {}, [1, 2, 3]],
  [', ASOF_TIER_AFTER=0s and ASOF_HOT_RETENTION=0s', { tierAfter: 0, hotRetention: 0, segmentBytes: 4096 }, [1, 2]],
];
for (const [label, config, seeds] of CONFIGS) for (const seed of seeds) {
  describe(`zero drift between online serving and training sets (seed ${seed}${label})`, () => {
    test('every value online served equals the training set\'s "known" value for that entity and moment', async () => {
      const clock = new Clock(Date.UTC(2025, 0, 1, 12));
      const asof = await testAsof(config, { now: clock.now });
      try {
        const { engine, registry, ingest, online } = asof.services;
        await engine.defineTable('clicks', {
          kind: 'log',
          eventTime: 'ts',
          columns: [
            { name: 'user', type: 'int64', nullable: false },
            { name: 'ts', type: 'timestamp', nullable: false },
            { name: 'page', type: 'string', nullable: true },
            { name: 'dwell', type: 'float64', nullable: true },
          ],
        });
        await engine.defineTable('wallets', {
          kind: 'pk',
          primaryKey: ['id'],
          eventTime: 'as_of',
          columns: [
            { name: 'id', type: 'string', nullable: false },
            { name: 'balance', type: 'float64', nullable: true },
            { name: 'status', type: 'string', nullable: true },
            { name: 'as_of', type: 'timestamp', nullable: true },
          ],
        });
        await engine.defineTable('tiers', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'tier', type: 'string', nullable: true }, { name: 'since', type: 'timestamp', nullable: true }] });
        for (const [name, def] of Object.entries(VIEWS)) await registry.defineView(name, def);

        const r = rng(seed);
        const served: { view: ViewName; entity: unknown; at: number; values: Record<string, unknown> }[] = [];
        for (let step = 0; step < 300; step++) {
          // Time moves before every write, so a read never shares its moment with a later write.
          clock.advance(r.int(1, 3 * MIN));
          const what = r.next();
          if (what < 0.4) {
            await ingest.write(
              'clicks',
              Array.from({ length: r.int(1, 3) }, () => ({
                user: r.int(1, 4),
                ts: clock.t + r.int(-90 * MIN, 5 * MIN), // late arrivals and events ahead of the clock
                page: r.chance(0.1) ? null : r.pick(['home', 'cart', 'pay']),
                dwell: r.chance(0.15) ? null : r.int(1, 600) / 10,
              })),
            );
          } else if (what < 0.6) {
            const id = r.pick(['w1', 'w2', 'w3']);
            if (r.chance(0.25)) await ingest.write('wallets', [{ id }], 'delete');
            else await ingest.write('wallets', [{ id, balance: r.int(0, 10_000) / 100, status: r.pick(['ok', 'frozen', null]), as_of: r.chance(0.2) ? null : clock.t + r.int(-40 * MIN, 1 * MIN) }]);
          } else if (what < 0.75) {
            const id = r.pick(['w1', 'w2', 'w3', 'w4']);
            if (r.chance(0.2)) await ingest.write('tiers', [{ id }], 'delete');
            else await ingest.write('tiers', [{ id, tier: r.pick(['gold', 'basic']), since: clock.t - r.int(0, 1000 * MIN) }]);
          } else {
            // A read at this moment: a few entities of one view, all its features.
            const view = r.pick(Object.keys(VIEWS) as ViewName[]);
            const entities = ENTITIES[view].filter(() => r.chance(0.6));
            if (!entities.length) continue;
            const answer = await online.evaluate(entities, await online.plan({ view }));
            toObjects(entities, answer).forEach((res) => served.push({ view, entity: res.entity, at: answer.at, values: res.features }));
          }
        }
        assert.ok(served.length > 100, `only ${served.length} reads`);
        if (config.hotRetention === 0) {
          // The hot log of each table must have lost its first segments: the training sets below read Lance.
          for (let i = 0; i < 400 && ['clicks', 'wallets'].some((t) => engine.table(t).hotStart === 0); i++) await new Promise((res) => setTimeout(res, 50));
          for (const t of ['clicks', 'wallets']) assert.ok(engine.table(t).hotStart > 0, `table ${t}: hot log still starts at 0`);
        }

        let compared = 0;
        let nonNull = 0;
        for (const view of Object.keys(VIEWS) as ViewName[]) {
          const mine = served.filter((s) => s.view === view);
          const key = VIEWS[view].entity;
          const rows = mine.map((s) => ({ [key]: s.entity, timestamp: s.at }));
          const features = VIEWS[view].features.map((f) => `${view}:${f.name}`);
          const got = await trainingRows(asof.services, { entities: { rows }, features, pointInTime: 'known' });
          mine.forEach((s, i) => {
            for (const f of VIEWS[view].features) {
              const online = s.values[`${view}:${f.name}`];
              assert.deepEqual(got[i][f.name], online, `${view}:${f.name} for ${String(s.entity)} at ${new Date(s.at).toISOString()}: training set ${JSON.stringify(got[i][f.name])}, online ${JSON.stringify(online)}`);
              compared++;
              if (online !== null && online !== 0) nonNull++;
            }
          });
        }
        assert.ok(nonNull > compared * 0.3, `the streams should give mostly set values: ${nonNull} of ${compared}`);
      } finally {
        await asof.destroy();
      }
    });
  });
}
