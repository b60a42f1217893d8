/**
 * SIGTERM under load, against a real process: writers keep writing while the
 * server is told to stop. It exits 0; every write it acknowledged is in the
 * changelog after a restart (at the offset it was given), and every other
 * write was refused (503 ASOF_NOT_READY, or a connection the server no longer
 * accepts), never answered with anything else.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { killAll, startChild } from '../child-server.js';
import { tempDir } from '../helpers.js';

after(killAll);

test('SIGTERM under load: exit 0; acknowledged writes survive the restart, the rest were refused', { timeout: 120_000 }, async () => {
  const dir = await tempDir('asof-sigterm-');
  const data = join(dir.path, 'data');
  const child = await startChild(data, { LOG_LEVEL: 'info' });
  try {
    await child.ready();
    const put = await fetch(child.url + '/tables/ev', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'who', type: 'string', nullable: false }, { name: 'pad', type: 'string', nullable: true }] }),
    });
    assert.equal(put.status, 201);
    // The request id a caller sends names the request in the (JSON) log lines, and comes back as a header.
    const traced = await fetch(child.url + '/tables/ev', { headers: { 'x-request-id': 'trace-sigterm-1' } });
    assert.equal(traced.headers.get('x-request-id'), 'trace-sigterm-1');

    const acked = new Map<string, { first: number; last: number; count: number }>();
    const statuses = new Map<number | string, number>();
    let stop = false;
    let seq = 0;
    // Writers of 1 to 2,000 rows, so some are mid-flight (parsing, appending, fsyncing) when the signal lands.
    const writer = async (w: number): Promise<void> => {
      while (!stop) {
        const id = `w${w}-${seq++}`;
        const n = 1 + ((seq * 7919) % 2000);
        const body = JSON.stringify({ rows: Array.from({ length: n }, (_, i) => ({ ts: Date.now(), who: i === 0 ? id : `${id}/${i}`, pad: 'x'.repeat(40) })) });
        let outcome: number | string;
        try {
          const r = await fetch(child.url + '/tables/ev/rows', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          outcome = r.status;
          const b = (await r.json()) as any;
          if (r.status === 200) acked.set(id, { first: b.firstOffset, last: b.lastOffset, count: b.count });
          else assert.equal(b.error.code, 'ASOF_NOT_READY', `refused with ${r.status} ${JSON.stringify(b)}`);
        } catch (e) {
          outcome = 'connection';
          await new Promise((r) => setTimeout(r, 20));
        }
        statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
      }
    };
    const writers = Array.from({ length: 12 }, (_, i) => writer(i));
    while (acked.size < 30) await new Promise((r) => setTimeout(r, 10));
    const exited = once(child.proc, 'exit');
    child.proc.kill('SIGTERM');
    const [code, signal] = await exited;
    stop = true;
    await Promise.all(writers);
    assert.equal(signal, null);
    assert.equal(code, 0, `exit code; output:\n${child.output().slice(-2000)}`);
    for (const k of statuses.keys()) assert.ok(k === 200 || k === 503 || k === 'connection', `an answer other than 200, 503 or a refused connection: ${k}`);
    assert.match(child.output(), /shutting down/);
    assert.match(child.output(), /"reqId":"trace-sigterm-1"/, 'log lines carry the request id');

    const again = await startChild(data);
    try {
      await again.ready();
      const info = (await (await fetch(again.url + '/tables/ev')).json()) as any;
      const total = [...acked.values()].reduce((n, a) => n + a.count, 0);
      assert.ok(info.latestOffset + 1 >= total, `every acknowledged row is there (${info.latestOffset + 1} records, ${total} acknowledged)`);
      for (const [id, a] of acked) {
        const r = (await (await fetch(`${again.url}/tables/ev/changelog?from=${a.first}&limit=1`)).json()) as any;
        assert.equal(r.records[0]?.row.who, id, `write ${id} acknowledged at offset ${a.first} is there after the restart`);
      }
      process.stdout.write(`# sigterm: ${acked.size} writes acknowledged and present after restart; answers ${JSON.stringify(Object.fromEntries(statuses))}\n`);
    } finally {
      await again.kill();
    }
  } finally {
    await child.kill();
    await dir.cleanup();
  }
});

test('SIGTERM with an SSE changelog follow open: the stream gets an ASOF_NOT_READY error event and the process exits at once, not after the grace', { timeout: 120_000 }, async () => {
  const dir = await tempDir('asof-ops-sse-sigterm-');
  // A long grace: were the follow waited for, the exit would come after it.
  const graceMs = 30_000;
  const child = await startChild(join(dir.path, 'data'), { ASOF_SHUTDOWN_GRACE_MS: String(graceMs) });
  try {
    await child.ready();
    const put = await fetch(child.url + '/tables/ev', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'who', type: 'string', nullable: false }] }),
    });
    assert.equal(put.status, 201);
    const w = await fetch(child.url + '/tables/ev/rows', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ rows: [{ ts: 1, who: 'a' }] }) });
    assert.equal(w.status, 200);

    const res = await fetch(child.url + '/tables/ev/changelog?from=0', { headers: { accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    // The existing record first: the follow is live.
    while (!text.includes('event: record')) {
      const { value, done } = await reader.read();
      assert.ok(!done, `stream ended before its first record: ${text}`);
      text += decoder.decode(value, { stream: true });
    }
    const exited = once(child.proc, 'exit');
    const signalled = performance.now();
    child.proc.kill('SIGTERM');
    // The rest of the stream, to its end; a connection cut instead of an ended stream is a failure.
    let cut: unknown;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
    } catch (e) {
      cut = e;
    }
    const [code] = await exited;
    const elapsed = performance.now() - signalled;
    assert.equal(cut, undefined, `the stream was cut, not ended, ${Math.round(elapsed)} ms after SIGTERM: ${JSON.stringify(text)}`);
    assert.equal(code, 0, child.output());
    assert.ok(elapsed < graceMs / 3, `exited ${Math.round(elapsed)} ms after SIGTERM; the grace is ${graceMs} ms`);
    const events = text.split('\n\n').filter(Boolean);
    const last = events.at(-1)!;
    assert.match(last, /^event: error\ndata: /, `the stream ends with an error event: ${JSON.stringify(text)}`);
    const body = JSON.parse(last.slice(last.indexOf('data: ') + 6));
    assert.equal(body.error.code, 'ASOF_NOT_READY');
    assert.equal(typeof body.error.message, 'string');
  } finally {
    await child.kill();
    await dir.cleanup();
  }
});
