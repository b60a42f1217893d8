/**
 * Property: random decisions among random writes, over a pk source (ttl) and
 * a log source (windows, ttl, late and future event times), with the clock
 * moving: every decision's replay equals what its lookup answered (the HTTP
 * answer itself, not only what was recorded), and still does after a
 * restart. The online answer comes from the incremental online state; the
 * replay from the changelog records: two paths that must agree.
 *
 * After tiering: the same property on a server that tiers at once and keeps
 * nothing hot (ASOF_TIER_AFTER=0s, ASOF_HOT_RETENTION=0s, one frame per
 * segment), checked live (tiering under way), once every record is in Lance
 * and the sealed hot segments are deleted (shown through /tables, /metrics
 * and the segment files on disk), and after a restart (which reads what went
 * below the hot log from Lance only).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Config } from '../../src/config.js';
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

/** The tables written: their records must all reach the cold tier, and the sealed segments of those with 3 or more frames go. */
const TABLES = ['acct', 'ev', '_asof_decisions'];

const segmentFiles = async (dir: string, table: string): Promise<string[]> => (await readdir(join(dir, 'tables', table))).filter((n) => n.startsWith('changelog-')).sort();

/**
 * Waits until every record of every table is in the cold tier and each
 * table's sealed segments are deleted, then shows it: /tables and /metrics
 * say the tiered offset is the latest, the hot log no longer starts at 0, and
 * the only segment file left is the one being written. Returns how many
 * tables had records moved out of the hot log.
 */
async function waitTiered(asof: TestAsof, frames: Map<string, number>): Promise<number> {
  const engine = asof.services.engine;
  const settled = async (t: string) => {
    const d = (await asof.req('GET', `/tables/${t}`)).body;
    return d.tieredOffset === d.latestOffset && ((frames.get(t) ?? 0) < 3 || (await segmentFiles(asof.dataDir, t)).length === 1);
  };
  for (let i = 0; i < 1200; i++) {
    let all = true;
    for (const t of TABLES) all = all && (await settled(t));
    if (all) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const metrics = (await asof.req('GET', '/metrics')).body as unknown as string;
  let moved = 0;
  for (const t of TABLES) {
    const d = (await asof.req('GET', `/tables/${t}`)).body;
    assert.equal(d.tieredOffset, d.latestOffset, `${t}: every record is in the cold tier`);
    assert.ok(String(metrics).includes(`asof_tiered_offset{table="${t}"} ${d.latestOffset}`), `${t}: /metrics shows asof_tiered_offset ${d.latestOffset}`);
    if ((frames.get(t) ?? 0) < 3) continue;
    const files = await segmentFiles(asof.dataDir, t);
    assert.equal(files.length, 1, `${t}: only the segment being written stays hot (${files.join(', ')})`);
    assert.notEqual(files[0], 'changelog-00000000000000000000.log', `${t}: the first segment was deleted`);
    assert.ok(engine.table(t).hotStart > 0, `${t}: the hot log no longer starts at 0`);
    moved++;
  }
  return moved;
}

/**
 * One property run: the ops against a fresh server with `config`; every
 * decision checked live and after a restart, and with `tiered`, also once
 * every record is in the cold tier and the hot segments are gone.
 */
async function runOps(ops: Op[], run: number, config: Partial<Config>, tiered: boolean): Promise<number> {
  const clock = { t: 1_000_000 };
  const dir = await tempDir();
  let asof = await testAsof(config, { now: () => clock.t, dataDir: dir.path });
  const answered = new Map<string, { features: unknown; statuses: unknown; eventTimes: unknown }>();
  // Frames written per table (one per request; a recorded decision is one frame of _asof_decisions).
  const frames = new Map<string, number>();
  const write = async (t: string, body: unknown) => {
    const r = await asof.req('POST', `/tables/${t}/rows`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // A request that wrote no record (a delete of an absent key) wrote no frame.
    if (r.body.count > 0) frames.set(t, (frames.get(t) ?? 0) + 1);
  };
  let moved = 0;
  try {
    await setup(asof);
    let n = 0;
    for (const o of ops) {
      if (o.op === 'tick') clock.t += o.ms;
      else if (o.op === 'upsert') await write('acct', { rows: [{ id: o.key, score: o.score }] });
      else if (o.op === 'delete') await write('acct', { rows: [{ id: o.key }], op: 'delete' });
      else if (o.op === 'event') await write('ev', { rows: [{ user: o.key, amount: o.amount, at: clock.t + o.skewMs }] });
      else {
        const id = `r${run}-d${++n}`;
        const r = o.batch
          ? await asof.req('POST', '/features', { entities: [o.key], features: FEATURES, decisions: [id] })
          : await asof.req('GET', `/features/${o.key}?features=${FEATURES.join(',')}&decision=${id}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const body = o.batch ? r.body.results[0] : r.body;
        answered.set(id, { features: body.features, statuses: body.statuses, eventTimes: body.eventTimes });
        frames.set('_asof_decisions', (frames.get('_asof_decisions') ?? 0) + 1);
      }
    }
    const check = async (when: string) => {
      for (const [id, served] of answered) {
        const a = await asof.req('GET', `/audit/decisions/${id}`);
        assert.equal(a.status, 200, JSON.stringify(a.body));
        assert.deepEqual(a.body.served, served, `${when}: decision ${id} recorded what was answered`);
        assert.deepEqual({ features: a.body.reconstructed.features, statuses: a.body.reconstructed.statuses, eventTimes: a.body.reconstructed.eventTimes }, served, `${when}: decision ${id} replays to what was answered`);
        assert.equal(a.body.match, true);
        assert.equal(a.body.history.ok, true, `${when}: decision ${id}: the chains it read still hash to their recorded heads`);
      }
    };
    await check('live');
    if (tiered) {
      moved = await waitTiered(asof, frames);
      await check('after tiering');
    }
    await asof.close();
    clock.t += 60_000;
    asof = await testAsof(config, { now: () => clock.t, dataDir: dir.path });
    await check('after a restart');
    if (tiered) for (const t of TABLES) if ((frames.get(t) ?? 0) >= 3) assert.ok(asof.services.engine.table(t).hotStart > 0, `${t}: after the restart, the records below the hot log come from the cold tier`);
  } finally {
    await asof.close();
    await dir.cleanup();
  }
  return moved;
}

test('property: every decision replays to exactly what its lookup answered, before and after a restart', { timeout: 600_000 }, async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), async (ops) => {
      await runOps(ops, run++, {}, false);
    }),
    { numRuns: 12 },
  );
});

test('property, after tiering: every decision replays to what its lookup answered once its records are in Lance and the hot segments deleted, and after a restart', { timeout: 600_000 }, async () => {
  let run = 0;
  let moved = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), async (ops) => {
      moved += await runOps(ops, run++, { tierAfter: 0, hotRetention: 0, segmentBytes: 1 }, true);
    }),
    { numRuns: 8 },
  );
  assert.ok(moved > 0, 'some table had its records moved out of the hot log');
});
