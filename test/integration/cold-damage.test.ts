/**
 * A frame damaged in the cold tier (its bytes changed in Lance after they
 * were tiered) answers as a damaged hot frame does: 503 ASOF_TABLE_UNAVAILABLE,
 * not retriable, over REST and gRPC, though the frame is read and checked in
 * the process's LanceDB thread (its error keeps its code across the thread).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { hostModule, lanceHost } from '../../src/engine/lance-host.js';
import { testAsof, USER_EVENTS } from '../helpers.js';

const READS = hostModule('../fixtures/lance-reads', import.meta.url);

test('a frame damaged in the cold tier is a 503 ASOF_TABLE_UNAVAILABLE naming it, not a retriable 500', async () => {
  const a = await testAsof({ tierAfter: 0, hotRetention: 0, segmentBytes: 2048 });
  try {
    assert.equal((await a.req('PUT', '/tables/events', USER_EVENTS)).status, 201);
    for (let b = 0; b < 20; b++) {
      const rows = Array.from({ length: 10 }, (_, i) => ({ user: `u${i}`, ts: 1_700_000_000_000 + b * 100 + i, n: b + i }));
      assert.equal((await a.req('POST', '/tables/events/rows', { rows })).status, 200);
    }
    for (let i = 0; i < 600 && a.services.engine.table('events').hotStart === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(a.services.engine.table('events').hotStart > 10, 'the first frames are in the cold tier alone');
    const before = await a.req('GET', '/tables/events/changelog?from=0&limit=5');
    assert.equal(before.status, 200, JSON.stringify(before.body));

    await lanceHost().call(READS, 'damageFrame', [join(a.dataDir, 'lance'), 'events', 0]);
    // The server's handle reads the dataset as of its last append: one more tiered write brings it to the damaged version.
    const tiered = a.services.engine.table('events').endOffset;
    assert.equal((await a.req('POST', '/tables/events/rows', { rows: [{ user: 'late', ts: 1_700_000_100_000, n: 1 }] })).status, 200);
    for (let i = 0; i < 600 && (await a.req('GET', '/tables/events')).body.tieredOffset < tiered; i++) await new Promise((r) => setTimeout(r, 50));
    const res = await a.req('GET', '/tables/events/changelog?from=0&limit=5');
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'ASOF_TABLE_UNAVAILABLE');
    assert.equal(res.body.error.details.where, 'cold tier of "events"', JSON.stringify(res.body));
    assert.match(res.body.error.message, /fails its checksum/);
  } finally {
    await a.destroy();
  }
});
