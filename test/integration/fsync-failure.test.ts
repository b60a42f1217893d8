/**
 * A failed fdatasync (or write) must not leave the refused frame in the
 * changelog: the client is told to retry, so a frame that stayed would be
 * written twice, once by the retry and once more when a restart replays it.
 * The fault is injected through ChangelogFile.fileOps (the operations every
 * append goes through; log.ts) and, where this machine lets the test mount a
 * tmpfs, for real: a full filesystem.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { open, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ChangelogFile, type FileOps } from '../../src/engine/log.js';
import { tempDir, testAsof, type TestAsof } from '../helpers.js';

const EVENTS = {
  kind: 'log',
  eventTime: 'ts',
  primaryKey: ['user'],
  columns: [
    { name: 'user', type: 'int64', nullable: false },
    { name: 'ts', type: 'timestamp', nullable: false },
    { name: 'what', type: 'string' },
  ],
};

const logPath = (dataDir: string) => join(dataDir, 'tables', 'events', 'changelog-00000000000000000000.log');
const eio = () => Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });

/** Fails the next `n` changelog fdatasyncs of `events` with EIO (other files and tables are untouched). */
function failDatasyncs(n: number): { restore: () => void; failed: () => number } {
  const real = ChangelogFile.fileOps;
  let failed = 0;
  const ops: FileOps = {
    ...real,
    async datasync(path, fh) {
      if (path.includes(join('tables', 'events')) && failed < n) {
        failed++;
        throw eio();
      }
      return real.datasync(path, fh);
    },
  };
  ChangelogFile.fileOps = ops;
  return { restore: () => (ChangelogFile.fileOps = real), failed: () => failed };
}

/** Every record of `events` as the changelog route returns it, offsets and rows. */
async function changelog(asof: TestAsof) {
  const r = await asof.req('GET', '/tables/events/changelog?limit=1000');
  assert.equal(r.status, 200);
  return (r.body.records as { offset: number; row: { what: string } }[]).map((x) => [x.offset, x.row.what]);
}

/** Restarts as after a kill: the snapshot of the clean close is removed, so the whole changelog is replayed. */
async function restartFromChangelog(asof: TestAsof): Promise<TestAsof> {
  await asof.close();
  await rm(join(asof.dataDir, 'tables', 'events', 'state.snapshot'), { force: true });
  return testAsof({}, { dataDir: asof.dataDir });
}

const rows = (what: string, n: number) => Array.from({ length: n }, (_, i) => ({ user: i, ts: 1000 + i, what: `${what}${i}` }));

/**
 * What every fault here must give: with the fault on, a write of `sent` is
 * refused (503 ASOF_STORAGE_FAILED naming `reason`; nothing was written), the
 * changelog file is back at its last durable frame and nothing of the request
 * is visible; with the fault lifted, the retry writes the records once, at the
 * next offsets, also as a restart replays them. Returns the restarted server.
 */
async function refusedThenRetried(asof: TestAsof, fault: { on(): void | Promise<void>; off(): void | Promise<void>; reason: RegExp }, sent: { what: string }[]): Promise<TestAsof> {
  const before = await changelog(asof);
  const durableBytes = (await stat(logPath(asof.dataDir))).size;
  await fault.on();
  const failed = await asof.req('POST', '/tables/events/rows', { rows: sent });
  await fault.off();
  assert.equal(failed.status, 503, JSON.stringify(failed.body));
  assert.equal(failed.body.error.code, 'ASOF_STORAGE_FAILED');
  assert.match(failed.body.error.message, fault.reason);
  assert.match(failed.body.error.message, /nothing was written/);
  assert.equal((await stat(logPath(asof.dataDir))).size, durableBytes, 'the refused frame is cut from the file');
  assert.deepEqual(await changelog(asof), before, 'nothing of the refused request is visible');

  const retry = await asof.req('POST', '/tables/events/rows', { rows: sent });
  assert.equal(retry.status, 200, 'the table takes writes again once the file is back at its last durable frame');
  assert.deepEqual([retry.body.firstOffset, retry.body.lastOffset], [before.length, before.length + sent.length - 1]);
  const want = [...before, ...sent.map((r, i) => [before.length + i, r.what])];
  assert.deepEqual(await changelog(asof), want);
  asof = await restartFromChangelog(asof);
  assert.deepEqual(await changelog(asof), want, 'a restart replays each record once');
  return asof;
}

test('a failing fdatasync followed by a retry writes the records once, before and after a restart', async () => {
  const dir = await tempDir();
  let asof = await testAsof({}, { dataDir: dir.path });
  const real = ChangelogFile.fileOps;
  try {
    assert.equal((await asof.req('PUT', '/tables/events', EVENTS)).status, 201);
    assert.equal((await asof.req('POST', '/tables/events/rows', { rows: rows('a', 2) })).status, 200);
    let f: ReturnType<typeof failDatasyncs> | undefined;
    asof = await refusedThenRetried(asof, { on: () => void (f = failDatasyncs(1)), off: () => f!.restore(), reason: /EIO/ }, rows('b', 3));
    assert.equal(f!.failed(), 1);
  } finally {
    ChangelogFile.fileOps = real;
    await asof.close();
    await dir.cleanup();
  }
});

test('a write that fails half-way is cut back too; the group and nothing else is refused', async () => {
  const dir = await tempDir();
  let asof = await testAsof({}, { dataDir: dir.path });
  const real = ChangelogFile.fileOps;
  try {
    await asof.req('PUT', '/tables/events', EVENTS);
    await asof.req('POST', '/tables/events/rows', { rows: rows('a', 1) });
    // Half the bytes reach the file, then the disk is full: what a real ENOSPC does.
    const halfThenFull: FileOps = {
      ...real,
      async writev(path, fh, bufs, pos) {
        const all = Buffer.concat(bufs);
        await real.writev(path, fh, [all.subarray(0, all.length >> 1)], pos);
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    };
    asof = await refusedThenRetried(asof, { on: () => void (ChangelogFile.fileOps = halfThenFull), off: () => void (ChangelogFile.fileOps = real), reason: /ENOSPC/ }, rows('b', 2));
  } finally {
    ChangelogFile.fileOps = real;
    await asof.close();
    await dir.cleanup();
  }
});

test('while the file cannot be cut back, nothing is acknowledged; the next write that can cut it goes through', async () => {
  const dir = await tempDir();
  let asof = await testAsof({}, { dataDir: dir.path });
  const fault = failDatasyncs(0);
  try {
    await asof.req('PUT', '/tables/events', EVENTS);
    await asof.req('POST', '/tables/events/rows', { rows: rows('a', 1) });
    const durableBytes = (await stat(logPath(dir.path))).size;
    // The frame's fdatasync fails, then the truncation's, then the one the next write tries first.
    const f = failDatasyncs(3);
    const first = await asof.req('POST', '/tables/events/rows', { rows: rows('b', 2) });
    assert.equal(first.status, 503);
    assert.match(first.body.error.message, /takes no writes until its changelog is cut back/);
    const second = await asof.req('POST', '/tables/events/rows', { rows: rows('c', 1) });
    assert.equal(second.status, 503);
    assert.match(second.body.error.message, /failed again/);
    assert.equal(f.failed(), 3);
    assert.deepEqual(await changelog(asof), [[0, 'a0']]);
    f.restore();
    const third = await asof.req('POST', '/tables/events/rows', { rows: rows('c', 1) });
    assert.equal(third.status, 200, JSON.stringify(third.body));
    assert.equal(third.body.firstOffset, 1);
    assert.equal((await stat(logPath(dir.path))).size > durableBytes, true);
    asof = await restartFromChangelog(asof);
    assert.deepEqual(await changelog(asof), [[0, 'a0'], [1, 'c0']]);
  } finally {
    fault.restore();
    await asof.close();
    await dir.cleanup();
  }
});

test('a refused frame the file could not be cut from is cut at close at the latest: a restart never replays it', async () => {
  const dir = await tempDir();
  let asof = await testAsof({}, { dataDir: dir.path });
  const real = ChangelogFile.fileOps;
  try {
    await asof.req('PUT', '/tables/events', EVENTS);
    await asof.req('POST', '/tables/events/rows', { rows: rows('a', 1) });
    // The frame is written whole, its fdatasync fails, and so does the truncation: the refused frame stays in the file.
    let fail = true;
    ChangelogFile.fileOps = {
      ...real,
      async datasync(path, fh) {
        if (fail) throw eio();
        return real.datasync(path, fh);
      },
      async truncate(path, fh, len) {
        if (fail) throw eio();
        return real.truncate(path, fh, len);
      },
    };
    const refused = await asof.req('POST', '/tables/events/rows', { rows: rows('b', 2) });
    assert.equal(refused.status, 503);
    assert.ok((await stat(logPath(dir.path))).size > 0);
    fail = false;
    asof = await restartFromChangelog(asof);
    assert.deepEqual(await changelog(asof), [[0, 'a0']], 'the refused records are not replayed');
  } finally {
    ChangelogFile.fileOps = real;
    await asof.close();
    await dir.cleanup();
  }
});

/** Fills the filesystem `path` is on to its last byte (ENOSPC). */
async function fillUp(path: string): Promise<void> {
  const fh = await open(path, 'w');
  const block = Buffer.alloc(4096, 1);
  try {
    for (;;) await fh.write(block);
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    await fh.close();
  }
}

test('a real full filesystem (a small tmpfs): the write is refused and cut back; after space is freed the retry writes once', async (t) => {
  const dir = await tempDir();
  const mnt = join(dir.path, 'mnt');
  try {
    execFileSync('mkdir', ['-p', mnt]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt], { stdio: 'ignore' });
  } catch {
    await dir.cleanup();
    t.skip('mounting a tmpfs needs root; the injected faults above cover the same path');
    return;
  }
  let asof: TestAsof | undefined;
  try {
    asof = await testAsof({}, { dataDir: join(mnt, 'data') });
    await asof.req('PUT', '/tables/events', EVENTS);
    await asof.req('POST', '/tables/events/rows', { rows: rows('a', 2) });
    const filler = join(mnt, 'filler');
    const big = rows('b', 200).map((r) => ({ ...r, what: r.what + 'x'.repeat(100) }));
    asof = await refusedThenRetried(asof, { on: () => fillUp(filler), off: () => unlink(filler), reason: /ENOSPC/ }, big);
  } finally {
    await asof?.close().catch(() => undefined);
    execFileSync('umount', [mnt]);
    await dir.cleanup();
  }
});
