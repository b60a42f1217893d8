/**
 * The cold tier on object storage: ASOF_LANCE_URI=s3://... with
 * ASOF_LANCE_STORAGE_OPTIONS, against an S3-compatible server (s3rver) this
 * test starts on a free local port. Lance commits there; tiering, segment
 * deletion, union reads and a restart that replays the cold tier all work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import { testAsof, type TestAsof } from '../helpers.js';

const EVENTS = {
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'what', type: 'string', nullable: true },
  ],
};

test('tiering to s3:// (s3rver): union reads and recovery from the object store', async () => {
  const s3dir = await mkdtemp(join(tmpdir(), 'asof-s3rver-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: s3dir, configureBuckets: [{ name: 'asof-cold', configs: [] }] });
  const { port } = (await server.run()) as { port: number };
  const config = {
    tierAfter: 0,
    hotRetention: 0,
    segmentBytes: 2048,
    lanceUri: 's3://asof-cold/tier-test',
    // s3rver's fixed credentials; plain HTTP on loopback.
    lanceStorageOptions: { aws_access_key_id: 'S3RVER', aws_secret_access_key: 'S3RVER', aws_endpoint: `http://127.0.0.1:${port}`, aws_region: 'us-east-1', allow_http: 'true' },
  };
  const now = () => 1_800_000_000_000;
  const off = await testAsof({ tierAfter: null }, { now });
  let on: TestAsof | undefined = await testAsof(config, { now });
  try {
    for (const a of [off, on]) {
      assert.equal((await a.req('PUT', '/tables/events', EVENTS)).status, 201);
      for (let b = 0; b < 30; b++) {
        const rows = Array.from({ length: 10 }, (_, i) => ({ user: (b * 10 + i) % 7, ts: 1_700_000_000_000 + b * 100 + i, what: `w${b}/${i}` }));
        assert.equal((await a.req('POST', '/tables/events/rows', { rows })).status, 200);
      }
    }
    const read = async (a: TestAsof) => [(await a.req('GET', '/tables/events/changelog?limit=10000')).body, (await a.req('GET', '/tables/events/changelog?key=3&limit=10000')).body];
    const expected = await read(off);
    const t = on.services.engine.table('events');
    for (let i = 0; i < 600 && (t.hotStart === 0 || t.tieredEnd < 300); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(on.services.engine.table('events').hotStart > 0, 'segments below the tiered position were deleted');
    assert.equal((await on.req('GET', '/tables/events')).body.tieredOffset, 299);
    assert.deepEqual(await read(on), expected);
    // Restart without the snapshot: recovery replays the frames below the hot log from the object store.
    const dataDir = on.dataDir;
    await on.close();
    await rename(join(dataDir, 'tables', 'events', 'state.snapshot'), join(dataDir, 'old.snapshot'));
    on = await testAsof(config, { now, dataDir });
    assert.deepEqual(await read(on), expected);
  } finally {
    await off.destroy();
    await on?.destroy();
    await server.close();
    await rm(s3dir, { recursive: true, force: true });
  }
});
