/**
 * A cold-tier append that fails after its records were committed to Lance (a
 * real dataset in a temp folder; one LanceDB call made to throw once in the
 * LanceDB thread, test/fixtures/lance-faults.ts) does not stop tiering: the
 * next step continues where the data ends, every record is tiered once, and
 * hot segments go. Before, every later step was refused for good ("cold tier
 * of ... holds [0, N); refusing frames from M").
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



/** Two batches of 500 records, each tiered in steps of its own, with `method` failing once in the first step. */
async function tierWithFault(method: string): Promise<{ lines: ReturnType<typeof captureLogger>['lines']; facts: { count: number; indexColumns: string[] }; all: number[] }> {
  const dir = await tempDir();
  const cap = captureLogger();
  const cold = openColdThread(join(dir.path, 'lance'), {}, cap.logger);
  const engine = await Engine.open({ dataDir: dir.path, logger: cap.logger, segmentBytes: 4096, tiering: { cold, tierAfterMs: 0, hotRetentionMs: 0 } });
  try {
    await engine.defineTable('events', USER_EVENTS);
    const t = engine.table('events');
    await lanceHost().call(FAULTS, 'failNext', [method]);
    for (let b = 0; b < 5; b++) await engine.writable('events').write(userEventRows(b, 100), 'upsert');
    await until('the first batch tiered', () => t.tieredEnd === 500, 15_000);
    assert.equal(await lanceHost().call(FAULTS, 'injectedCount', [method]), 1, `${method} failed once`);
    for (let b = 5; b < 10; b++) await engine.writable('events').write(userEventRows(b, 100), 'upsert');
    await until('every record tiered and hot segments deleted', () => t.tieredEnd === 1000 && t.hotStart > 0, 15_000);
    const all: number[] = [];
    for await (const r of t.scan()) all.push(r.row.n as number);
    const facts = await lanceHost().call<{ count: number; indexColumns: string[] }>(READS, 'facts', [join(dir.path, 'lance'), 'events']);
    return { lines: cap.lines, facts, all };
  } finally {
    await engine.close();
    await dir.cleanup();
  }
}

test('an index build failing after the first commit: the append stands, is logged, the build is retried, every record tiered once', async () => {
  const { lines, facts, all } = await tierWithFault('createIndex');
  assert.deepEqual(all, [...Array(1000).keys()]);
  assert.equal(facts.count, 1000);
  assert.deepEqual(facts.indexColumns.sort(), ['_asof_offset', 'user']);
  assert.ok(lines.some((l) => l.level === 'warn' && /index upkeep failed/.test(l.msg ?? '') && /injected createIndex failure/.test(String(l.obj.err))), 'the failure is logged');
});

test('version() failing after a commit fails the step; the next one resumes from where the data ends, every record tiered once', async () => {
  const { lines, facts, all } = await tierWithFault('version');
  assert.deepEqual(all, [...Array(1000).keys()]);
  assert.equal(facts.count, 1000);
  assert.ok(lines.some((l) => l.level === 'warn' && /tiering step failed/.test(l.msg ?? '') && /injected version failure/.test(String(l.obj.err))), 'the failed step is logged');
  assert.ok(!lines.some((l) => /refusing frames/.test(String(l.obj.err))), 'no step was refused');
});
