/**
 * The tiering loop backs off a table whose steps fail (doubling waits up to a
 * maximum, reset by a success) while other tables go on every round. The
 * tables are stand-ins whose tierStep fails on demand: what is tested is the
 * loop's schedule (tiering-faults.test.ts fails real Lance steps).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tiering } from '../../src/engine/tiering.js';
import type { Table } from '../../src/engine/table.js';
import { captureLogger } from '../helpers.js';

/** A table whose steps fail while `fail()` says so; the times (performance.now()) each step began. */
function standIn(name: string, fail: () => boolean): { table: Table; starts: number[] } {
  const starts: number[] = [];
  const table = {
    name,
    async tierStep() {
      starts.push(performance.now());
      if (fail()) throw new Error(`${name}: injected step failure`);
      return 0;
    },
    async dropTieredSegments() {
      return 0;
    },
  } as unknown as Table;
  return { table, starts };
}

const gaps = (t: number[]) => t.slice(1).map((x, i) => x - t[i]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a failing table is retried after doubling waits up to the maximum; a healthy one goes on every round', async () => {
  const bad = standIn('bad', () => true);
  const good = standIn('good', () => false);
  const { logger, lines } = captureLogger();
  const tiering = new Tiering(() => [bad.table, good.table], { tierAfterMs: 0, hotRetentionMs: 0, now: Date.now, logger, retryMs: { first: 40, max: 160 } });
  tiering.start();
  await sleep(1000);
  await tiering.stop();
  // 0, 40, 120, 280, 440, 600, 760, 920: 8 steps (every round, 10 ms apart, was ~100).
  assert.ok(bad.starts.length >= 4 && bad.starts.length <= 9, `failing table stepped ${bad.starts.length} times`);
  gaps(bad.starts).forEach((g, i) => assert.ok(g >= Math.min(160, 40 * 2 ** i) - 1, `wait ${i} was ${g.toFixed(1)} ms`));
  assert.ok(good.starts.length > 3 * bad.starts.length, `healthy table stepped ${good.starts.length} times`);
  const warns = lines.filter((l) => l.level === 'warn');
  assert.equal(warns.length, bad.starts.length);
  assert.deepEqual(warns.slice(0, 4).map((l) => l.obj.retryInMs), [40, 80, 160, 160]);
});

test('a success resets the backoff: the next failure waits the first interval again', async () => {
  let failing = true;
  const t = standIn('t', () => failing);
  const tiering = new Tiering(() => [t.table], { tierAfterMs: 0, hotRetentionMs: 0, now: Date.now, logger: captureLogger().logger, retryMs: { first: 50, max: 400 } });
  tiering.start();
  // Failures at 0, 50, 150, 350: the next wait would be 400.
  while (t.starts.length < 4) await sleep(5);
  failing = false;
  while (t.starts.length < 5) await sleep(5);
  failing = true;
  const n = t.starts.length;
  while (t.starts.length < n + 3) await sleep(5);
  await tiering.stop();
  const g = gaps(t.starts);
  // After the success, the next failing step came a round later; the one after it waited 50 ms, not 400.
  const after = g[n];
  assert.ok(after >= 49 && after < 300, `wait after the first failure following a success: ${after.toFixed(1)} ms (gaps ${g.map((x) => x.toFixed(0))})`);
});
