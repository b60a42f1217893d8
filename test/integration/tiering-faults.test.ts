/**
 * A cold-tier append that fails after its records were committed to Lance (a
 * real dataset in a temp folder; one LanceDB call made to throw once in the
 * LanceDB thread, test/fixtures/lance-faults.ts) does not stop tiering: the
 * next step continues where the data ends, every record is tiered once, and
 * hot segments go. Before, every later step was refused for good ("cold tier
 * of ... holds [0, N); refusing frames from M"). The same when Lance's add or
 * create itself commits and then throws (the append is taken as done; before,
 * the next step appended its records a second time), and when it throws
 * before committing (the next step writes them once).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import { openColdThread } from '../../src/engine/cold-thread.js';
import { hostModule, lanceHost } from '../../src/engine/lance-host.js';
import { captureLogger, tempDir, until, USER_EVENTS, userEventRows } from '../helpers.js';

const FAULTS = hostModule('../fixtures/lance-faults', import.meta.url);
const READS = hostModule('../fixtures/lance-reads', import.meta.url);

/**
 * Two batches of 500 records, each tiered in steps of its own, with a fault armed by `arm` (given the cold
 * tier's URI) before the first batch, or the second when `second` (the first step creates the dataset, later
 * ones append to it).
 */
async function tierWith(arm: (uri: string) => Promise<unknown>, second = false): Promise<{ lines: ReturnType<typeof captureLogger>['lines']; facts: { count: number; indexColumns: string[] }; all: number[]; offsets: number[] }> {
  const dir = await tempDir();
  const cap = captureLogger();
  const uri = join(dir.path, 'lance');
  const cold = openColdThread(uri, {}, cap.logger);
  const engine = await Engine.open({ dataDir: dir.path, logger: cap.logger, segmentBytes: 4096, tiering: { cold, tierAfterMs: 0, hotRetentionMs: 0 } });
  try {
    await engine.defineTable('events', USER_EVENTS);
    const t = engine.table('events');
    await lanceHost().call(FAULTS, 'reset', []);
    if (!second) await arm(uri);
    for (let b = 0; b < 5; b++) await engine.writable('events').write(userEventRows(b, 100), 'upsert');
    await until('the first batch tiered', () => t.tieredEnd === 500, 15_000);
    if (second) await arm(uri);
    for (let b = 5; b < 10; b++) await engine.writable('events').write(userEventRows(b, 100), 'upsert');
    await until('every record tiered and hot segments deleted', () => t.tieredEnd === 1000 && t.hotStart > 0, 15_000);
    const all: number[] = [];
    for await (const r of t.scan()) all.push(r.row.n as number);
    const facts = await lanceHost().call<{ count: number; indexColumns: string[] }>(READS, 'facts', [uri, 'events']);
    const rows = await lanceHost().call<{ _asof_offset: number }[]>(READS, 'rows', [uri, 'events', undefined, ['_asof_offset']]);
    return { lines: cap.lines, facts, all, offsets: rows.map((r) => r._asof_offset).sort((a, b) => a - b) };
  } finally {
    await engine.close();
    await dir.cleanup();
  }
}

/** `method` of LanceDB's Table failing once (before doing anything) in the first step. */
async function tierWithFault(method: string): Promise<{ lines: ReturnType<typeof captureLogger>['lines']; facts: { count: number; indexColumns: string[] }; all: number[] }> {
  const got = await tierWith(() => lanceHost().call(FAULTS, 'failNext', [method]));
  assert.equal(await lanceHost().call(FAULTS, 'injectedCount', [method]), 1, `${method} failed once`);
  return got;
}

const EVERY = [...Array(1000).keys()];

test('an index build failing after the first commit: the append stands, is logged, the build is retried, every record tiered once', async () => {
  const { lines, facts, all } = await tierWithFault('createIndex');
  assert.deepEqual(all, [...Array(1000).keys()]);
  assert.equal(facts.count, 1000);
  assert.deepEqual(facts.indexColumns.sort(), ['_asof_offset', 'user']);
  assert.ok(lines.some((l) => l.level === 'warn' && /index upkeep failed/.test(l.msg ?? '') && /injected createIndex failure/.test(String(l.obj.err))), 'the failure is logged');
});

// An append whose commit landed and that then failed, as an object store that took the manifest and answered an
// error: the records are in Lance though the call threw. Before, the next step resent them from the old end and
// Lance held them twice (1500 rows, every scan of the tiered range reading them twice).
for (const elsewhere of [false, true]) {
  test(`an append committing and then failing (${elsewhere ? 'its handle not seeing the commit' : 'through its own handle'}) is taken as done: every record tiered once`, async () => {
    const { lines, facts, all, offsets } = await tierWith((uri) => lanceHost().call(FAULTS, 'failAfterCommit', ['add', 1, elsewhere ? uri : undefined]), true);
    assert.equal(await lanceHost().call(FAULTS, 'injectedCount', ['committed:add']), 1, 'add failed once after its commit');
    assert.equal(facts.count, 1000);
    assert.deepEqual(offsets, EVERY);
    assert.deepEqual(all, EVERY);
    assert.ok(!lines.some((l) => /refusing frames/.test(String(l.obj.err))), 'no step was refused');
  });
}

test('the first step\'s create committing and then failing is taken as done: every record tiered once, no step refused', async () => {
  const { lines, facts, all, offsets } = await tierWith(() => lanceHost().call(FAULTS, 'failAfterCommit', ['createTable']));
  assert.equal(await lanceHost().call(FAULTS, 'injectedCount', ['committed:createTable']), 1);
  assert.equal(facts.count, 1000);
  assert.deepEqual(offsets, EVERY);
  assert.deepEqual(all, EVERY);
  assert.ok(!lines.some((l) => /refusing frames/.test(String(l.obj.err))), 'no step was refused');
});

test('an append failing before its commit fails the step; the retry writes its records once', async () => {
  const { lines, facts, all, offsets } = await tierWith(() => lanceHost().call(FAULTS, 'failNext', ['add', 1, true]), true);
  assert.equal(await lanceHost().call(FAULTS, 'injectedCount', ['native:add']), 1);
  assert.equal(facts.count, 1000);
  assert.deepEqual(offsets, EVERY);
  assert.deepEqual(all, EVERY);
  assert.ok(lines.some((l) => l.level === 'warn' && /tiering step failed/.test(l.msg ?? '') && /injected native:add failure/.test(String(l.obj.err))), 'the failed step is logged');
});

test('an append committing and then failing, and the read-back of what landed failing too: the next step reads it first, every record tiered once', async () => {
  const { facts, all, offsets } = await tierWith(async () => {
    await lanceHost().call(FAULTS, 'failAfterCommit', ['add']);
    await lanceHost().call(FAULTS, 'failNext', ['checkoutLatest', 1, true]);
  }, true);
  assert.equal(await lanceHost().call(FAULTS, 'injectedCount', ['native:checkoutLatest']), 1);
  assert.equal(facts.count, 1000);
  assert.deepEqual(offsets, EVERY);
  assert.deepEqual(all, EVERY);
});
