/**
 * Kill -9 during tiering, repeated: a real asof child process tiers
 * continuously (ASOF_TIER_AFTER=0s, ASOF_HOT_RETENTION=0s, small segments, so
 * segments are deleted as fast as they are tiered) while writers append, and
 * is SIGKILLed at random moments. After each restart the union read must hold
 * every offset exactly once, densely from 0, with commit times in order,
 * every acknowledged write at the offset its answer named, and the Lance
 * dataset itself no duplicated or missing offset.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as lancedb from '@lancedb/lancedb';
import { assertDense, killAll, killUnderLoad, readChangelog, readyChild, type ChildServer } from '../child-server.js';

const EVENTS = {
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['writer'],
  columns: [
    { name: 'writer', type: 'int32', nullable: false },
    { name: 'seq', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'pad', type: 'string' },
  ],
};
const ROUNDS = 5;
const WRITERS = 3;
const ENV = { ASOF_TIER_AFTER: '0s', ASOF_HOT_RETENTION: '0s', ASOF_SEGMENT_BYTES: '8192', ASOF_SNAPSHOT_EVERY: '500' };

after(killAll);

async function post(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

test('kill -9 during tiering, repeated, loses and duplicates nothing', { timeout: 240_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'asof-tier-crash-'));
  const acked = new Map<string, number>(); // "writer/seq" → offset its answer named
  let next = 0;
  let child: ChildServer | undefined;
  let tieredBefore = -1;
  try {
    await killUnderLoad(dir, ENV, ROUNDS, {
      pauseMs: [600, 2000],
      started: async (child, round) => {
        if (round === 0) assert.equal((await fetch(`${child.url}/tables/events`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(EVENTS) })).status, 201);
        // After the restart, through the union read: every offset once, densely from 0; every acknowledged write where its answer said.
        const records = await readChangelog(child.url, 'events');
        assertDense('events', records);
        for (const [k, o] of acked) {
          const r = records[o];
          assert.ok(r && `${r.row.writer}/${r.row.seq}` === k, `acknowledged ${k} at offset ${o}, found ${r ? `${r.row.writer}/${r.row.seq}` : 'nothing'}`);
        }
        const seen = new Set(records.map((r) => `${r.row.writer}/${r.row.seq}`));
        assert.equal(seen.size, records.length, 'no write recorded twice');
      },
      // Writers append while tiering runs, until the kill.
      writers: (url) =>
        Array.from({ length: WRITERS }, async (_, w) => {
          for (;;) {
            const seqs = Array.from({ length: 20 }, () => next++);
            const res = await post(`${url}/tables/events/rows`, { rows: seqs.map((seq) => ({ writer: w, seq, ts: 1_700_000_000_000 + seq, pad: 'x'.repeat(seq % 50) })) }).catch(() => undefined);
            if (!res) return;
            assert.equal(res.status, 200);
            seqs.forEach((seq, i) => acked.set(`${w}/${seq}`, res.body.firstOffset + i));
          }
        }),
      beforeKill: async (child) => {
        const d = (await (await fetch(`${child.url}/tables/events`)).json()) as { tieredOffset: number };
        tieredBefore = Math.max(tieredBefore, d.tieredOffset);
      },
    });
    assert.ok(tieredBefore > 0, 'tiering ran during the rounds');

    // Last look: the Lance dataset itself holds offsets 0..n-1 once each, after a final restart and catch-up.
    child = await readyChild(dir, ENV);
    const total = (await readChangelog(child.url, 'events')).length;
    for (let i = 0; i < 400; i++) {
      const d = (await (await fetch(`${child.url}/tables/events`)).json()) as { tieredOffset: number };
      if (d.tieredOffset === total - 1) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await child.kill('SIGTERM');
    const segs = (await readdir(join(dir, 'tables', 'events'))).filter((f) => f.startsWith('changelog-'));
    assert.ok(!segs.includes('changelog-00000000000000000000.log'), `tiered segments were deleted (${segs.join(', ')})`);
    const db = await lancedb.connect(join(dir, 'lance'));
    const ds = await db.openTable('events');
    const got = await ds.query().select(['_asof_offset']).toArrow();
    const offs = Array.from(got.getChild('_asof_offset')!.toArray() as BigInt64Array, Number).sort((a, b) => a - b);
    assert.equal(offs.length, total);
    assert.ok(offs.every((o, i) => o === i), 'Lance holds each offset once');
    db.close();
  } finally {
    await child?.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
