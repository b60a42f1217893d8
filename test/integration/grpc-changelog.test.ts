import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { grpcAsof, asofError, grpc, type GrpcAsof } from './grpc-helpers.js';
import { countScans, heapAfterGc, recordWaiters } from '../helpers.js';

interface Follower {
  records: any[];
  /** Resolves once `n` records arrived (rejects if the stream fails first). */
  until(n: number, timeoutMs?: number): Promise<any[]>;
  /** Resolves with the stream's final status. */
  status: Promise<grpc.StatusObject>;
  cancel(): void;
  /** Stops taking messages (the server's writes then back up), and takes them again. */
  pause(): void;
  resume(): void;
}

function follow(asof: GrpcAsof, request: unknown): Follower {
  const records: any[] = [];
  const waiting = recordWaiters(records);
  const call = asof.changelog.Follow(request);
  call.on('data', (r: any) => {
    records.push(r);
    waiting.arrived();
  });
  call.on('error', (e: Error) => waiting.failed(e));
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  return {
    records,
    status,
    cancel: () => call.cancel(),
    pause: () => call.pause(),
    resume: () => call.resume(),
    // A bound on waiting, not a speed target: streaming 2,000 records took over 5 s on the shared 2-core machine under other suites.
    until: waiting.until,
  };
}

const offsets = (recs: any[]) => recs.map((r) => Number(r.offset));
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PAD = 'x'.repeat(1000);

/** The first place `records` is not offsets from, from+1, ... (with n = offset), or undefined. */
function firstGap(records: any[], from: number, count: number): string | undefined {
  if (records.length !== count) return `${records.length} records, not ${count}`;
  const i = records.findIndex((r, i) => Number(r.offset) !== from + i || r.row.columns.n.int32_value !== from + i);
  return i < 0 ? undefined : `record ${i} has offset ${records[i].offset}, not ${from + i}`;
}

describe('asof.v1.ChangelogService/Follow (server streaming)', () => {
  let asof: GrpcAsof;
  const write = (table: string, rows: unknown[], op = 'upsert') => asof.req('POST', `/tables/${table}/rows`, { rows, op });
  before(async () => {
    asof = await grpcAsof();
    await asof.req('PUT', '/tables/clicks', {
      kind: 'log',
      eventTime: 'ts',
      primaryKey: ['user'],
      columns: [
        { name: 'user', type: 'int64', nullable: false },
        { name: 'ts', type: 'timestamp', nullable: false },
        { name: 'url', type: 'string' },
      ],
    });
    await asof.req('PUT', '/tables/wide', { kind: 'log', eventTime: 'ts', columns: [{ name: 'ts', type: 'timestamp', nullable: false }, { name: 'n', type: 'int32' }, { name: 's', type: 'string' }] });
    await asof.req('PUT', '/tables/accounts', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'balance', type: 'float64' }] });
  });
  after(() => asof.destroy());
  /** Appends records n = offset (wide rows: about 1 kB each) to `wide`, 10,000 a request, until it holds `to`. */
  const writeWide = async (to: number) => {
    for (let b = asof.services.engine.table('wide').endOffset; b < to; b += 10_000) {
      const res = await write('wide', Array.from({ length: Math.min(10_000, to - b) }, (_, i) => ({ ts: b + i, n: b + i, s: PAD })));
      assert.equal(res.status, 200);
    }
  };

  test('streams the existing records, then live ones, typed, in offset order', async () => {
    await write('clicks', [{ user: 1, ts: '2024-05-01T00:00:00Z', url: '/a' }, { user: 2, ts: 1714521600001, url: null }]);
    const f = follow(asof, { table: 'clicks', from_offset: 0 });
    await f.until(2);
    await write('clicks', [{ user: 1, ts: '2024-05-01T00:00:01Z', url: '/b' }]);
    const recs = await f.until(3);
    assert.deepEqual(offsets(recs), [0, 1, 2]);
    assert.deepEqual(recs.map((r) => r.change_type), ['INSERT', 'INSERT', 'INSERT']);
    const cols = recs[1].row.columns;
    assert.deepEqual([cols.user.int64_value, cols.ts.timestamp_value, cols.url.null_value], ['2', { seconds: '1714521600', nanos: 1_000_000 }, 'NULL_VALUE']);
    assert.equal(recs[2].row.columns.url.string_value, '/b');
    const log = (await asof.req('GET', '/tables/clicks/changelog?from=0')).body.records;
    assert.deepEqual(recs.map((r) => Number(r.commit_time.seconds) * 1000 + r.commit_time.nanos / 1e6), log.map((r: any) => Date.parse(r.commitTime)));
    f.cancel();
    assert.equal((await f.status).code, grpc.status.CANCELLED);
  });

  test('writes racing the catch-up are neither lost nor sent twice', async () => {
    const start = (await asof.req('GET', '/tables/clicks')).body.latestOffset + 1;
    for (let b = 0; b < 20; b++) await write('clicks', Array.from({ length: 100 }, (_, i) => ({ user: b * 100 + i, ts: Date.now() })));
    const f = follow(asof, { table: 'clicks', from_offset: start });
    // Keep committing while the follower catches up on the 2,000 existing records.
    const writers = Array.from({ length: 10 }, (_, k) => write('clicks', [{ user: 100_000 + k, ts: Date.now() }]));
    await Promise.all(writers);
    for (let k = 0; k < 5; k++) await write('clicks', [{ user: 200_000 + k, ts: Date.now() }]);
    const total = 2000 + 10 + 5;
    // Generous: on a loaded machine streaming 2,000 records can take seconds; the assertion is about order and count, not speed.
    const recs = await f.until(total, 30_000);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(offsets(f.records), range(start, start + total), 'every offset exactly once, in order');
    f.cancel();
    void recs;
  });

  test('a commit landing between the subscription and the catch-up scan, and one during the scan: each exactly once', async () => {
    const t = asof.services.engine.table('clicks');
    const start = t.endOffset;
    await write('clicks', [{ user: 1, ts: 1 }, { user: 2, ts: 2 }]);
    const scan = t.scan.bind(t);
    // The follower subscribes, then scans: commit once between the two, and once after the first scan's first record
    // (later scans, which read back what the first did not cover, are left as they are).
    let scans = 0;
    t.scan = async function* (opts) {
      if (scans++ > 0) return yield* scan(opts);
      await write('clicks', [{ user: 3, ts: 3 }]);
      let first = true;
      for await (const r of scan(opts)) {
        yield r;
        if (first) {
          first = false;
          await write('clicks', [{ user: 4, ts: 4 }, { user: 5, ts: 5 }]);
        }
      }
    };
    try {
      const f = follow(asof, { table: 'clicks', from_offset: start });
      await f.until(5);
      await write('clicks', [{ user: 6, ts: 6 }]);
      await f.until(6);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(offsets(f.records), range(start, start + 6));
      assert.deepEqual(f.records.map((r) => r.row.columns.user.int64_value), ['1', '2', '3', '4', '5', '6']);
      f.cancel();
    } finally {
      t.scan = scan;
    }
  });

  test('from_offset in the middle, and a key: only that key\'s records (pk change types)', async () => {
    await write('accounts', [{ id: 'a', balance: 1 }, { id: 'b', balance: 2 }]);
    await write('accounts', [{ id: 'a', balance: 3 }]);
    await write('accounts', [{ id: 'a' }], 'delete');
    const all = follow(asof, { table: 'accounts', from_offset: 2 });
    assert.deepEqual(offsets(await all.until(3)), [2, 3, 4]);
    all.cancel();
    const keyed = follow(asof, { table: 'accounts', key: { string_value: 'a' } });
    await keyed.until(4);
    await write('accounts', [{ id: 'b', balance: 5 }, { id: 'a', balance: 6 }]);
    const recs = await keyed.until(5);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(keyed.records.map((r) => [Number(r.offset), r.change_type, r.row.columns.balance.double_value]), [
      [0, 'INSERT', 1],
      [2, 'UPDATE_BEFORE', 1],
      [3, 'UPDATE_AFTER', 3],
      [4, 'DELETE', 3],
      [7, 'INSERT', 6],
    ]);
    void recs;
    keyed.cancel();
  });

  test('unknown table is NOT_FOUND; a bad key or offset is INVALID_ARGUMENT', async () => {
    const missing = await follow(asof, { table: 'nope' }).status;
    assert.equal(missing.code, grpc.status.NOT_FOUND);
    assert.equal(missing.metadata.get('asof-error-code')[0], 'ASOF_TABLE_NOT_FOUND');
    const badKey = await follow(asof, { table: 'clicks', key: { string_value: 'not-a-number' } }).status;
    assert.equal(badKey.code, grpc.status.INVALID_ARGUMENT);
    const negative = await follow(asof, { table: 'clicks', from_offset: -1 }).status;
    assert.equal(negative.code, grpc.status.INVALID_ARGUMENT);
    const noKeys = await follow(asof, { table: 'accounts', key: { struct_value: { fields: { nope: { string_value: 'x' } } } } }).status;
    assert.equal(noKeys.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(JSON.parse(String(noKeys.metadata.get('asof-error')[0])).error.code, 'ASOF_INVALID_ARGUMENT');
    void asofError;
  });

  test('a paused follower holds no records on the server; resumed, it gets every record once, in order', async () => {
    await writeWide(10_000);
    const total = 50_000;
    const before = heapAfterGc();
    const f = follow(asof, { table: 'wide', from_offset: 0 });
    f.pause();
    // 40,000 records committed while the follower catches up, then while it takes nothing.
    await writeWide(total);
    await sleep(200);
    const grown = heapAfterGc() - before;
    // The records are about 50 MB of messages; a follower that held them grew the heap by more than that.
    assert.ok(grown < 12 << 20, `the server's heap grew by ${(grown / 2 ** 20).toFixed(1)} MB for a paused follower`);
    f.resume();
    await f.until(total, 60_000);
    await sleep(100);
    f.cancel();
    assert.equal(firstGap(f.records, 0, total), undefined);
  });

  test('a follower cancelled mid catch-up stops the read: nothing more is read for it', async () => {
    const total = 50_000;
    await writeWide(total);
    const scans = countScans(asof.services.engine.table('wide'));
    try {
      const f = follow(asof, { table: 'wide', from_offset: 0 });
      f.pause();
      await sleep(300);
      f.cancel();
      await f.status;
      await sleep(200);
      const atCancel = scans.read();
      await sleep(300);
      assert.ok(scans.ended(), 'the catch-up scan was ended');
      assert.equal(scans.read(), atCancel, 'no record read after the client went away');
      assert.ok(atCancel < total / 2, `${atCancel} of ${total} records read for a client that took none`);
    } finally {
      scans.restore();
    }
  });
});
