/**
 * A changelog frame is never larger than start-up reads (frame.ts,
 * MAX_FRAME_BYTES): a longer one was written, fdatasync'd and acknowledged,
 * then read back as a short payload, so a kill -9 cut it as a torn tail (its
 * acknowledged rows lost) or, with frames after it, the table did not open.
 * Now a request that alone makes too large a frame is refused (413, nothing
 * written), and a group commit that together would is committed as several
 * frames. The limit is set small for the test (setMaxFrameBytesForTests), in
 * the child that writes and in this process that restarts after the kill.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/engine/engine.js';
import { setMaxFrameBytesForTests } from '../../src/engine/frame.js';
import { captureLogger, tempDir, testAsof } from '../helpers.js';
import { killAll } from '../child-server.js';
import { spawnChild } from '../../support/child-server.js';
import { FRAME_LIMIT, GROUP, LIMIT_TABLE, ROWS_PER_REQUEST, limitRows } from '../fixtures/frame-limit-rows.js';

const CHILD = fileURLToPath(new URL('../fixtures/frame-limit.ts', import.meta.url));
after(async () => {
  await killAll();
  setMaxFrameBytesForTests();
});

test('a group commit over the frame limit is split into frames, a request over it alone is refused, and after kill -9 every acknowledged row is there', async () => {
  const dir = await tempDir();
  try {
    const child = spawnChild(['--import', 'tsx', CHILD, dir.path], {});
    await child.readyLine(/^done$/m, { timeoutMs: 120_000 });
    await child.kill('SIGKILL');
    const answers = child
      .stdout()
      .split('\n')
      .filter((l) => /^(ack|refused) /.test(l))
      .map((l) => ({ acked: l.startsWith('ack '), ...(JSON.parse(l.slice(l.indexOf(' ') + 1)) as { req: number; firstOffset?: number; lastOffset?: number; code?: string }) }));
    assert.equal(answers.length, GROUP + 2, child.output());
    const big = answers.find((a) => a.req === 0)!;
    assert.equal(big.acked, false, 'a request whose rows alone make a frame over the limit must be refused');
    assert.equal(big.code, 'ASOF_PAYLOAD_TOO_LARGE');
    const acks = answers.filter((a) => a.acked);
    assert.equal(acks.length, GROUP + 1, `every request that fits a frame is acknowledged, though together they do not: ${child.stdout()}`);

    setMaxFrameBytesForTests(FRAME_LIMIT);
    const { logger, lines } = captureLogger();
    const engine = await Engine.open({ dataDir: dir.path, logger });
    try {
      assert.ok(engine.has('events'), JSON.stringify(lines.filter((l) => l.level !== 'info')));
      assert.deepEqual(lines.filter((l) => l.level !== 'info' && l.level !== 'debug'), [], 'nothing cut or refused at the restart');
      const byOffset = new Map<number, { req: number; i: number }>();
      for await (const r of engine.table('events').scan()) byOffset.set(r.offset, r.row as { req: number; i: number });
      assert.equal(byOffset.size, 1 + GROUP * ROWS_PER_REQUEST);
      assert.equal(engine.table('events').endOffset, byOffset.size);
      for (const a of acks) {
        const n = a.req === 1 ? 1 : ROWS_PER_REQUEST;
        assert.equal(a.lastOffset! - a.firstOffset! + 1, n);
        for (let i = 0; i < n; i++) {
          const r = byOffset.get(a.firstOffset! + i);
          assert.deepEqual([r?.req, r?.i], [a.req, i], `request ${a.req}, row ${i}`);
        }
      }
      assert.ok(![...byOffset.values()].some((r) => r.req === 0), 'the refused request wrote nothing');
    } finally {
      await engine.close();
      setMaxFrameBytesForTests();
    }
  } finally {
    await dir.cleanup();
  }
});

test('over HTTP, a request whose frame would exceed the limit answers 413 ASOF_PAYLOAD_TOO_LARGE and writes nothing', async () => {
  setMaxFrameBytesForTests(FRAME_LIMIT);
  const asof = await testAsof();
  try {
    assert.equal((await asof.req('PUT', '/tables/events', LIMIT_TABLE)).status, 201);
    const refused = await asof.req('POST', '/tables/events/rows', { rows: limitRows(0, ROWS_PER_REQUEST * GROUP) });
    assert.equal(refused.status, 413, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'ASOF_PAYLOAD_TOO_LARGE');
    assert.match(refused.body.error.message, /nothing was written/);
    assert.equal(asof.services.engine.table('events').endOffset, 0);
    assert.equal(asof.services.engine.table('events').logBytes, 0);
    const fits = await asof.req('POST', '/tables/events/rows', { rows: limitRows(1, ROWS_PER_REQUEST) });
    assert.equal(fits.status, 200, JSON.stringify(fits.body));
    assert.equal(fits.body.firstOffset, 0);
  } finally {
    await asof.destroy();
    setMaxFrameBytesForTests();
  }
});
