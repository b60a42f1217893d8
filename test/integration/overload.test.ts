/**
 * Overload against a real process: far more concurrent writes (many of them
 * large bodies) and lookups than the limits admit. Every answer is 200 or 429
 * with Retry-After, never a 5xx; the server's resident memory stays under a
 * stated bound; every write acknowledged with 200 is in the changelog at the
 * offsets it was given, and nothing else is (a refused write wrote nothing).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAll, startChild } from '../child-server.js';
import { tempDir } from '../helpers.js';

after(killAll);

/** Resident memory of a process, bytes (Linux). */
const rssOf = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

const LIMITS = {
  ASOF_MAX_IN_FLIGHT_WRITES: '4',
  ASOF_MAX_QUEUED_WRITES: '16',
  ASOF_MAX_IN_FLIGHT_WRITE_BYTES: String(16 * 1024 * 1024),
  ASOF_MAX_IN_FLIGHT_LOOKUPS: '8',
  ASOF_MAX_QUEUED_LOOKUPS: '16',
  ASOF_MAX_QUEUE_WAIT_MS: '3000',
};
/** Large bodies: each ~11 MB of JSON (the case was one 61 MB body taking RSS from 88 to 490 MB). */
const BIG_ROWS = 90_000;
const BIG = 40;
const SMALL = 300;
const LOOKUPS = 300;
/** Stated bound on the server's RSS during the storm: what one admitted budget of bodies costs parsed, plus the process at rest. */
const RSS_BOUND = 700 * 1024 * 1024;

test('far above the limits: 200 or 429 with Retry-After, never 5xx; memory bounded; every acknowledged write is in the changelog', { timeout: 240_000 }, async () => {
  const dir = await tempDir('asof-overload-');
  const child = await startChild(join(dir.path, 'data'), LIMITS);
  try {
    await child.ready();
    const post = (path: string, body: string) => fetch(child.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal((await fetch(child.url + '/tables/ev', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'who', type: 'string', nullable: false }, { name: 'pad', type: 'string', nullable: true }] }) })).status, 201);
    await fetch(child.url + '/feature-views/evv', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: 'ev', entity: 'who', features: [{ name: 'pad', column: 'pad' }] }) });
    const bigBody = JSON.stringify({ rows: Array.from({ length: BIG_ROWS }, (_, i) => ({ ts: Date.now(), who: `big${i}`, pad: 'p'.repeat(60) + i })) });
    const rssBefore = rssOf(child.proc.pid!);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      try {
        rssPeak = Math.max(rssPeak, rssOf(child.proc.pid!));
      } catch {
        /* exited: the test fails elsewhere */
      }
    }, 20);

    type Outcome = { status: number; retryAfter: string | null; who: string; body: any };
    const send = async (who: string, body: string): Promise<Outcome> => {
      const r = await post('/tables/ev/rows', body);
      return { status: r.status, retryAfter: r.headers.get('retry-after'), who, body: await r.json() };
    };
    // A large body alone is within the limits: it is acknowledged. (In the storm below, whether any large body
    // wins a slot depends on scheduling; on a busy CI machine none did, so that is reported, not asserted.)
    const alone = await send('big', bigBody);
    assert.equal(alone.status, 200, `a large body alone: ${JSON.stringify(alone.body).slice(0, 300)}`);
    const writes: Promise<Outcome>[] = [Promise.resolve(alone)];
    for (let i = 0; i < BIG; i++) writes.push(send('big', bigBody));
    // The large bodies first, so some of them are among the admitted ones; then the rest of the storm.
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < SMALL; i++) writes.push(send(`w${i}`, JSON.stringify({ rows: [{ ts: Date.now(), who: `w${i}` }] })));
    const lookups = Array.from({ length: LOOKUPS }, async (_, i) => {
      const r = await fetch(`${child.url}/features/w${i}?view=evv`);
      return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() };
    });
    const t0 = Date.now();
    const [w, l] = await Promise.all([Promise.all(writes), Promise.all(lookups)]);
    process.stdout.write(`# storm took ${Date.now() - t0} ms\n`);
    clearInterval(sampler);

    for (const o of [...w, ...l]) {
      assert.ok(o.status === 200 || o.status === 429, `status ${o.status}: ${JSON.stringify(o.body).slice(0, 300)}`);
      if (o.status === 429) {
        assert.equal(o.body.error.code, 'ASOF_OVERLOADED');
        assert.ok(Number(o.retryAfter) >= 1, 'a 429 carries Retry-After');
      }
    }
    const acked = w.filter((o) => o.status === 200);
    const refused = w.length - acked.length;
    assert.ok(refused > 0, 'the storm was far above the limits: some writes were refused');
    // Which small writes win a slot during the storm depends on scheduling (at load 13 none did once), so that is
    // reported; what must hold is that the storm leaves nothing stuck: a small write after it is acknowledged.
    process.stdout.write(`# acknowledged during the storm: large ${acked.filter((o) => o.who === 'big').length - 1} of ${BIG}, small ${acked.filter((o) => o.who !== 'big').length} of ${SMALL}\n`);
    const after = await send('after', JSON.stringify({ rows: [{ ts: Date.now(), who: 'after' }] }));
    assert.equal(after.status, 200, `a small write after the storm: ${JSON.stringify(after.body).slice(0, 300)}`);
    acked.push(after);
    const lookupAfter = await fetch(`${child.url}/features/after?view=evv`);
    assert.equal(lookupAfter.status, 200, 'a lookup after the storm is answered');
    assert.ok(rssPeak < RSS_BOUND, `RSS peaked at ${(rssPeak / 2 ** 20).toFixed(0)} MB (from ${(rssBefore / 2 ** 20).toFixed(0)} MB); bound ${RSS_BOUND / 2 ** 20} MB`);

    // Every acknowledged write is in the changelog where its answer said, and the changelog holds nothing else.
    const total = acked.reduce((n, o) => n + o.body.count, 0);
    const info = (await (await fetch(child.url + '/tables/ev')).json()) as any;
    assert.equal(info.latestOffset + 1, total, 'records = rows of acknowledged writes: refused ones wrote nothing');
    for (const o of acked) {
      for (const offset of [o.body.firstOffset, o.body.lastOffset]) {
        const r = (await (await fetch(`${child.url}/tables/ev/changelog?from=${offset}&limit=1`)).json()) as any;
        assert.equal(r.records[0].offset, offset);
        const who = o.who === 'big' ? `big${offset === o.body.firstOffset ? 0 : BIG_ROWS - 1}` : o.who;
        assert.equal(r.records[0].row.who, who, `offset ${offset} holds the write that was acknowledged with it`);
      }
    }
    process.stdout.write(`# overload: ${acked.length} writes acknowledged, ${refused} refused (429); lookups ${l.filter((o) => o.status === 200).length} answered, ${l.filter((o) => o.status === 429).length} refused; RSS ${(rssBefore / 2 ** 20).toFixed(0)} -> peak ${(rssPeak / 2 ** 20).toFixed(0)} MB\n`);
  } finally {
    await child.kill();
    await dir.cleanup();
  }
});
