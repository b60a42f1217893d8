/**
 * Tiering runs in the process's LanceDB thread (lance-host.ts, through
 * cold-thread.ts): LanceDB is never loaded on the main thread, the thread
 * answering is not the main thread, a thread that dies in the middle of a
 * tiering step is reported (logged, counted as a failed step) and the step is
 * retried by a new one, with every record tiered exactly once, and every cold
 * tier of the process shares the thread, which no close stops.
 *
 * This file imports nothing that loads LanceDB: each test file runs in its
 * own process, so the main thread's module cache shows what it loaded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { Engine } from '../../src/engine/engine.js';
import { openColdThread, type ColdThreadTier } from '../../src/engine/cold-thread.js';
import { captureLogger, tempDir, until, USER_EVENTS, userEventRows } from '../helpers.js';




async function open(dir: string, cold: ColdThreadTier, logger = captureLogger().logger, clock?: () => number, tierAfterMs = 0, stepRecords?: number): Promise<Engine> {
  const engine = await Engine.open({ dataDir: dir, logger, now: clock, segmentBytes: 4096, tiering: { cold, tierAfterMs, hotRetentionMs: 0, stepRecords } });
  await engine.defineTable('events', USER_EVENTS);
  return engine;
}

async function allN(engine: Engine): Promise<number[]> {
  const out: number[] = [];
  for await (const r of engine.table('events').scan()) out.push(r.row.n as number);
  return out;
}

test('tiering runs in a worker thread: LanceDB is never loaded on the main thread, and reads below the hot log come from the worker', async () => {
  const dir = await tempDir();
  const { logger } = captureLogger();
  const cold = openColdThread(join(dir.path, 'lance'), {}, logger);
  const engine = await open(dir.path, cold, logger);
  try {
    for (let b = 0; b < 20; b++) await engine.writable('events').write(userEventRows(b, 50), 'upsert');
    const t = engine.table('events');
    // Everything tiered and the hot segments deleted: the first records are only in Lance.
    await until('all records tiered and hot segments deleted', () => t.tieredEnd === 1000 && t.hotStart > 0, 60_000);
    assert.deepEqual(await allN(engine), [...Array(1000).keys()]);
    assert.ok(cold.threadId !== undefined && cold.threadId !== threadId, `the worker's thread id (${cold.threadId}) is not the main thread's (${threadId})`);
    const lanceOnMain = Object.keys(createRequire(import.meta.url).cache).filter((p) => p.includes('@lancedb'));
    assert.deepEqual(lanceOnMain, [], 'the main thread loaded no LanceDB module');
    assert.equal(cold.starts, 1);
  } finally {
    await engine.close();
    await dir.cleanup();
  }
});

test('a worker that dies during a tiering step is reported and the step retried by a new worker; every record tiered once', async () => {
  const dir = await tempDir();
  const cap = captureLogger();
  const cold = openColdThread(join(dir.path, 'lance'), {}, cap.logger);
  // Records tier a minute after their commit: none does while the writes go in; then the clock jumps
  // and one step takes them all, the first commit of the dataset (a long one: it builds the indexes too).
  let now = 1_800_000_000_000;
  const engine = await open(dir.path, cold, cap.logger, () => now, 60_000);
  try {
    const t = engine.table('events');
    for (let b = 0; b < 40; b++) await engine.writable('events').write(userEventRows(b, 100), 'upsert');
    assert.equal(t.tieredEnd, 0);
    now += 120_000;
    for (const end = Date.now() + 30_000; cold.inFlight === 0; await new Promise((r) => setImmediate(r))) {
      if (Date.now() > end) assert.fail('no tiering step began');
    }
    const first = cold.threadId;
    await cold.kill();
    await until('all records tiered', () => t.tieredEnd === 4000 && t.hotStart > 0, 60_000);

    assert.ok(engine.tiering!.stats.failures >= 1, 'the failed step was counted');
    const stopped = cap.lines.find((l) => l.level === 'error' && /worker thread stopped/.test(l.msg ?? ''));
    assert.ok(stopped, `the worker's death was logged: ${JSON.stringify(cap.lines)}`);
    const retried = cap.lines.find((l) => l.level === 'warn' && /tiering step failed/.test(l.msg ?? '') && /worker thread stopped/.test(String(l.obj.err)));
    assert.ok(retried, 'the tiering step that failed says why');
    assert.equal(cold.starts, 2, 'a new worker took over');
    assert.notEqual(cold.threadId, first);
    // Exactly once, in order: no record lost or tiered twice by the retry.
    assert.deepEqual(await allN(engine), [...Array(4000).keys()]);
  } finally {
    await engine.close();
    await dir.cleanup();
  }
});

test('a tiering step fills up: records past ASOF_TIER_AFTER wait (up to half of it) for a full step, then go in one commit; full steps go at once, one full step per commit', async () => {
  const dir = await tempDir();
  const { logger } = captureLogger();
  const cold = openColdThread(join(dir.path, 'lance'), {}, logger);
  let now = 1_800_000_000_000;
  // Full at 100,000 records here (a Lance fragment, 1,048,576, by default).
  const engine = await open(dir.path, cold, logger, () => now, 10_000, 100_000);
  const stats = engine.tiering!.stats;
  const rounds = async (n: number): Promise<void> => {
    const from = stats.rounds;
    await until(`${n} more tiering rounds`, () => stats.rounds >= from + n, 60_000);
  };
  try {
    const t = engine.table('events');
    for (let b = 0; b < 10; b++) await engine.writable('events').write(userEventRows(b, 100), 'upsert');
    // Old enough to tier, 1,000 records, and not yet 5 s (half of 10 s) past it: the step waits.
    now += 10_500;
    await rounds(3);
    now += 4_000;
    await rounds(3);
    assert.equal(t.tieredEnd, 0, 'a step that is not full waits while nothing in it is overdue');
    now += 600;
    await until('the overdue records tiered', () => t.tieredEnd === 1000, 60_000);
    assert.equal(stats.steps, 1, 'in one commit');

    // 250,000 records old enough: two full steps go at once, one commit each; the other 50,000 wait.
    for (let b = 0; b < 25; b++) await engine.writable('events').write(userEventRows(b, 10_000).map((r) => ({ ...r, n: 1000 + r.n })), 'upsert');
    now += 10_001;
    await until('two full steps tiered at once', () => t.tieredEnd === 201_000, 60_000);
    assert.equal(stats.steps, 3, 'one commit per full step');
    await rounds(3);
    assert.equal(t.tieredEnd, 201_000, 'the rest waits');
    now += 5_000;
    await until('the rest tiered once overdue', () => t.tieredEnd === 251_000, 60_000);
    assert.equal(stats.steps, 4);
    assert.deepEqual(await allN(engine), [...Array(251_000).keys()]);
  } finally {
    await engine.close();
    await dir.cleanup();
  }
});

test('every cold tier of the process shares one LanceDB thread, which no close stops', async () => {
  const dir = await tempDir();
  const { logger, lines } = captureLogger();
  const a = openColdThread(join(dir.path, 'a', 'lance'), {}, logger);
  const b = openColdThread(join(dir.path, 'b', 'lance'), {}, logger);
  const ea = await open(join(dir.path, 'a'), a, logger);
  const eb = await open(join(dir.path, 'b'), b, logger);
  let thread: number | undefined;
  let starts = 0;
  try {
    for (let n = 0; n < 5; n++) {
      await ea.writable('events').write(userEventRows(n, 50), 'upsert');
      await eb.writable('events').write(userEventRows(n, 50), 'upsert');
    }
    await until('records tiered', () => ea.table('events').tieredEnd === 250 && eb.table('events').tieredEnd === 250, 60_000);
    thread = a.threadId;
    starts = a.starts;
    assert.ok(thread !== undefined && thread !== threadId);
    assert.equal(b.threadId, thread, 'two engines, one LanceDB thread');
    await ea.close();
    await eb.writable('events').write(userEventRows(5, 50), 'upsert');
    await until('records tiered after the other engine closed', () => eb.table('events').tieredEnd === 300, 60_000);
    assert.equal(b.threadId, thread, 'closing one engine leaves the thread to the other');
  } finally {
    await ea.close();
    await eb.close();
  }
  // A third cold tier, after both closed: the same thread, still running (idle and unref'd: it keeps no process alive).
  const c = openColdThread(join(dir.path, 'a', 'lance'), {}, logger);
  const ec = await open(join(dir.path, 'a'), c, logger);
  try {
    assert.equal(ec.table('events').tieredEnd, 250, 'the tiered end read back');
    assert.equal(c.threadId, thread, 'no new thread after every tier closed');
    assert.equal(c.starts, starts);
  } finally {
    await ec.close();
    await dir.cleanup();
  }
  assert.equal(c.threadId, thread, 'closing stops no thread');
  assert.deepEqual(lines.filter((l) => l.level === 'error').map((l) => l.msg), [], 'nothing logged as a death');
});
