/**
 * Damage before the end of a changelog (a changed byte in the middle, not a
 * torn tail) is never cut silently: the table does not open, says which file,
 * byte and offsets, the other tables serve, and `asof repair` (a real CLI
 * process) cuts exactly what it reports. Frame positions are found here by
 * walking the headers as the format says (log.ts), not by the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ChangelogDamaged, ChangelogFile, FILE_START, HEADER_BYTES } from '../../src/engine/log.js';
import { repairTable } from '../../src/engine/repair.js';
import { startAsof } from '../../src/app.js';
import { ConfigSchema } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import { injectJson, tempDir, testAsof, type TestAsof } from '../helpers.js';
import { asofError, clientsFor, grpc } from './grpc-helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

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
const ACCOUNTS = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'name', type: 'string' }] };

const FRAMES = 10;
const PER_FRAME = 5;
const logPath = (dataDir: string) => join(dataDir, 'tables', 'events', 'changelog-00000000000000000000.log');

/** [start byte, first offset, record count] of each frame, by walking the headers. */
function frames(buf: Buffer): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let pos = 0; pos + HEADER_BYTES <= buf.length; pos += HEADER_BYTES + buf.readUInt32LE(pos + 8)) out.push([pos, Number(buf.readBigInt64LE(pos + 16)), buf.readUInt32LE(pos + 24)]);
  return out;
}

async function changelog(asof: TestAsof): Promise<[number, string][]> {
  const r = await asof.req('GET', '/tables/events/changelog?limit=1000');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.records as { offset: number; row: { what: string } }[]).map((x) => [x.offset, x.row.what]);
}

/** A data folder with `events` (FRAMES frames of PER_FRAME records) and `accounts`, closed cleanly (so a snapshot covers every frame). */
async function build(): Promise<{ dir: Awaited<ReturnType<typeof tempDir>>; before: [number, string][] }> {
  const dir = await tempDir();
  const asof = await testAsof({}, { dataDir: dir.path });
  await asof.req('PUT', '/tables/events', EVENTS);
  await asof.req('PUT', '/tables/accounts', ACCOUNTS);
  for (let f = 0; f < FRAMES; f++) {
    const rows = Array.from({ length: PER_FRAME }, (_, i) => ({ user: i, ts: f * 100 + i, what: `f${f}r${i}` }));
    assert.equal((await asof.req('POST', '/tables/events/rows', { rows })).status, 200);
  }
  await asof.req('POST', '/tables/accounts/rows', { rows: [{ id: 1, name: 'one' }] });
  assert.equal((await asof.req('PUT', '/feature-views/ev', { source: 'events', entity: 'user', features: [{ name: 'what', column: 'what' }] })).status, 201);
  assert.equal((await asof.req('PUT', '/feature-views/acc', { source: 'accounts', entity: 'id', features: [{ name: 'name', column: 'name' }] })).status, 201);
  const before = await changelog(asof);
  await asof.close();
  return { dir, before };
}

const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT });

test('a byte changed in the middle of a changelog: the table does not open and says where; the others serve; `asof repair` cuts exactly what it reports', async () => {
  const { dir, before } = await build();
  let asof: TestAsof | undefined;
  try {
    const buf = await readFile(logPath(dir.path));
    const list = frames(buf);
    assert.equal(list.length, FRAMES);
    const [pos, firstOffset] = list[4];
    buf[pos + HEADER_BYTES + 30] ^= 0x08;
    await writeFile(logPath(dir.path), buf);

    asof = await testAsof({}, { dataDir: dir.path });
    const get = await asof.req('GET', '/tables/events');
    assert.equal(get.status, 503);
    assert.equal(get.body.error.code, 'ASOF_TABLE_UNAVAILABLE');
    const msg: string = get.body.error.message;
    assert.ok(msg.includes(join('tables', 'events', 'changelog-00000000000000000000.log')), msg);
    assert.ok(!msg.includes(dir.path), 'no server path in an answer');
    assert.match(msg, new RegExp(`damaged at byte ${pos} \\(checksum mismatch\\): offsets ${firstOffset}\\.\\.${FRAMES * PER_FRAME - 1} \\(${FRAMES * PER_FRAME - firstOffset} records`));
    assert.match(msg, /asof repair --data-dir <data dir> --table events/);
    assert.deepEqual([get.body.error.details.pos, get.body.error.details.fromOffset, get.body.error.details.endOffset], [pos, firstOffset, FRAMES * PER_FRAME]);
    for (const [method, url, body] of [['POST', '/tables/events/rows', { rows: [{ user: 1, ts: 1 }] }], ['GET', '/tables/events/changelog', undefined], ['PUT', '/tables/events', EVENTS]] as const) {
      const r = await asof.req(method, url, body);
      assert.equal(r.status, 503, `${method} ${url}`);
      assert.equal(r.body.error.code, 'ASOF_TABLE_UNAVAILABLE');
    }
    const view = await asof.req('GET', '/features/1?view=ev');
    assert.equal(view.status, 503, 'a view over the table says why it cannot answer');
    assert.equal(view.body.error.code, 'ASOF_TABLE_UNAVAILABLE');
    // The rest of the server serves, reads and writes.
    assert.equal((await asof.req('GET', '/readyz')).status, 200);
    assert.equal((await asof.req('GET', '/features/1?view=acc')).body.features['acc:name'], 'one');
    assert.equal((await asof.req('GET', '/tables/accounts/rows/1')).body.row.name, 'one');
    assert.equal((await asof.req('POST', '/tables/accounts/rows', { rows: [{ id: 2, name: 'two' }] })).status, 200);
    assert.equal((await asof.req('PUT', '/tables/other', ACCOUNTS)).status, 201);
    await asof.close();
    asof = undefined;
    assert.equal((await readFile(logPath(dir.path))).length, buf.length, 'opening cut nothing');

    const dry = JSON.parse((await cli('repair', '--data-dir', dir.path, '--table', 'events', '--dry-run')).stdout);
    assert.equal(dry.dryRun, true);
    assert.equal((await stat(logPath(dir.path))).size, buf.length, 'a dry run changes nothing');
    const { stdout, stderr } = await cli('repair', '--data-dir', dir.path, '--table', 'events');
    const report = JSON.parse(stdout);
    const lost = FRAMES * PER_FRAME - firstOffset;
    assert.deepEqual(report.cut, { pos, bytes: buf.length - pos, reason: 'checksum mismatch', tornTail: false, fromOffset: firstOffset, endOffset: FRAMES * PER_FRAME, records: lost });
    assert.deepEqual(dry.cut, report.cut, 'the dry run reported what the repair then cut');
    assert.deepEqual(report.kept, { bytes: pos, frames: 4, records: firstOffset });
    assert.equal(report.snapshotRemoved, true);
    assert.match(stderr, new RegExp(`cut at byte ${pos} .*offsets ${firstOffset}\\.\\.${FRAMES * PER_FRAME - 1} \\(${lost} records\\), ${buf.length - pos} bytes`));
    assert.equal((await stat(logPath(dir.path))).size, pos, 'the file ends where the damage began');
    assert.deepEqual(await readFile(logPath(dir.path)), buf.subarray(0, pos), 'the bytes before the damage are untouched');

    asof = await testAsof({}, { dataDir: dir.path });
    assert.deepEqual(await changelog(asof), before.slice(0, firstOffset), 'exactly the records before the damage');
    const next = await asof.req('POST', '/tables/events/rows', { rows: [{ user: 9, ts: 9, what: 'after' }] });
    assert.equal(next.body.firstOffset, firstOffset, 'offsets go on from the cut');
    assert.equal((await asof.req('GET', '/tables/accounts/rows/2')).body.row.name, 'two', 'the other tables kept their writes');

    // Not while a server has the folder open (this process, through testAsof): it could cut records it acknowledged.
    const refused = await cli('repair', '--data-dir', dir.path, '--table', 'events').then(
      () => assert.fail('repair ran while a server held the data folder'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`in use by another asof process \\(PID ${process.pid}\\)`));
    assert.equal(await repairTable(dir.path, 'events', { dryRun: true }).catch((e: Error) => e.name), 'DataDirLockedError', 'a dry run too');
    await asof.close();
    asof = undefined;
    const clean = JSON.parse((await cli('repair', '--data-dir', dir.path, '--table', 'events')).stdout);
    assert.equal(clean.cut, undefined, 'a whole changelog: nothing to cut');
  } finally {
    await asof?.close();
    await dir.cleanup();
  }
});

test('every header byte and payload bytes of a middle frame: damage, named at that frame; the same in the last frame: a torn tail', async () => {
  const { dir } = await build();
  try {
    const path = logPath(dir.path);
    const pristine = await readFile(path);
    const list = frames(pristine);
    const [pos, firstOffset, count] = list[6];
    const len = pristine.readUInt32LE(pos + 8);
    const at = [...Array.from({ length: HEADER_BYTES }, (_, i) => pos + i), ...[0, 1, len >> 1, len - 1].map((i) => pos + HEADER_BYTES + i)];
    const copy = join(dir.path, 'copy.log');
    for (const byte of at) {
      const buf = Buffer.from(pristine);
      buf[byte] ^= 0x21;
      await writeFile(copy, buf);
      await assert.rejects(ChangelogFile.open(copy, FILE_START, () => undefined), (e: ChangelogDamaged) => {
        assert.ok(e instanceof ChangelogDamaged, `byte ${byte}: ${e}`);
        assert.deepEqual([e.damage.pos, e.damage.fromOffset, e.damage.endOffset, e.damage.next?.pos], [pos, firstOffset, FRAMES * PER_FRAME, pos + HEADER_BYTES + len], `byte ${byte}`);
        return true;
      });
      assert.deepEqual(await readFile(copy), buf, 'left as it is');
    }
    assert.equal(count, PER_FRAME);
    // The last frame: nothing whole follows, so it is a torn tail (never acknowledged) and is cut.
    const [lastPos] = list[list.length - 1];
    const buf = Buffer.from(pristine);
    buf[lastPos + 20] ^= 0x21;
    await writeFile(copy, buf);
    const { log, report } = await ChangelogFile.open(copy, FILE_START, () => undefined);
    await log.close();
    assert.equal(report.cutBytes, pristine.length - lastPos);
    assert.equal((await stat(copy)).size, lastPos);
    // A snapshot covering the frame says it was acknowledged: damaged even though it is last.
    await copyFile(path, copy);
    const last = Buffer.from(pristine);
    last[lastPos + 20] ^= 0x21;
    await writeFile(copy, last);
    const lastMeta = list[list.length - 1];
    await assert.rejects(
      ChangelogFile.open(copy, { pos: pristine.length, offset: FRAMES * PER_FRAME, commitTime: 0 }, () => undefined),
      (e: ChangelogDamaged) => e instanceof ChangelogDamaged && e.damage.pos === lastMeta[0] && e.damage.fromOffset === lastMeta[1],
    );
  } finally {
    await dir.cleanup();
  }
});

test('damage in a sealed segment: `asof repair` cuts that segment there, removes the later ones, and counts their records as lost', async () => {
  const dir = await tempDir();
  let asof: TestAsof | undefined;
  try {
    // One frame per segment: a segment rolls once it holds a byte.
    asof = await testAsof({ segmentBytes: 1 }, { dataDir: dir.path });
    await asof.req('PUT', '/tables/events', EVENTS);
    for (let f = 0; f < FRAMES; f++) {
      const rows = Array.from({ length: PER_FRAME }, (_, i) => ({ user: i, ts: f * 100 + i, what: `f${f}r${i}` }));
      assert.equal((await asof.req('POST', '/tables/events/rows', { rows })).status, 200);
    }
    const before = await changelog(asof);
    await asof.close();
    asof = undefined;
    const tdir = join(dir.path, 'tables', 'events');
    const segs = (await readdir(tdir)).filter((n) => /^changelog-\d{20}\.log$/.test(n)).sort();
    assert.ok(segs.length >= FRAMES, `one segment per frame (${segs.join(', ')})`);
    const sizes = await Promise.all(segs.map(async (n) => (await stat(join(tdir, n))).size));
    // Damage the third frame's segment, inside its body (after the header).
    const victim = 2;
    const buf = await readFile(join(tdir, segs[victim]));
    buf[HEADER_BYTES + 3] ^= 0xff;
    await writeFile(join(tdir, segs[victim]), buf);
    const base = Number(segs[victim].slice('changelog-'.length, -'.log'.length));

    const report = await repairTable(dir.path, 'events');
    const fromOffset = victim * PER_FRAME;
    const laterBytes = sizes.slice(victim).reduce((a, b) => a + b, 0);
    assert.deepEqual(report.cut, { pos: base, bytes: laterBytes, reason: 'checksum mismatch', tornTail: false, fromOffset, endOffset: FRAMES * PER_FRAME, records: FRAMES * PER_FRAME - fromOffset });
    assert.equal(report.kept.records, fromOffset);
    const left = (await readdir(tdir)).filter((n) => /^changelog-\d{20}\.log$/.test(n)).sort();
    assert.deepEqual(left, segs.slice(0, victim + 1), 'the segments after the damaged one are gone');
    assert.equal((await stat(join(tdir, segs[victim]))).size, 0, 'the damaged segment is cut where its first frame began');

    asof = await testAsof({ segmentBytes: 1 }, { dataDir: dir.path });
    assert.deepEqual(await changelog(asof), before.slice(0, fromOffset), 'exactly the records before the damage');
    assert.equal((await asof.req('POST', '/tables/events/rows', { rows: [{ user: 9, ts: 1, what: 'after' }] })).body.firstOffset, fromOffset, 'writing goes on from the cut');
  } finally {
    await asof?.close();
    await dir.cleanup();
  }
});

test('damage while serving: a hot frame changed (or cut short) on disk answers 503 ASOF_TABLE_UNAVAILABLE naming the table and the frame, over REST and gRPC; later offsets still answer', async () => {
  const dir = await tempDir();
  // Tiering off: every frame stays in the hot segment the test damages.
  const asof = await startAsof(ConfigSchema.parse({ dataDir: dir.path, port: 0, grpcPort: 0, host: '127.0.0.1', tierAfter: 'off' }), silentLogger);
  const clients = clientsFor(`127.0.0.1:${asof.grpcPort}`);
  const req = (url: string) => injectJson(asof.http, 'GET', url);
  try {
    assert.equal((await injectJson(asof.http, 'PUT', '/tables/events', EVENTS)).status, 201);
    for (let f = 0; f < 3; f++) {
      const rows = Array.from({ length: PER_FRAME }, (_, i) => ({ user: i, ts: f * 100 + i, what: `f${f}r${i}` }));
      assert.equal((await injectJson(asof.http, 'POST', '/tables/events/rows', { rows })).status, 200);
    }
    const path = logPath(dir.path);
    const buf = await readFile(path);
    const list = frames(buf);
    assert.equal(list.length, 3);
    const [pos] = list[1];
    buf[pos + HEADER_BYTES + 30] ^= 0x08;
    await writeFile(path, buf);

    const file = join('tables', 'events', 'changelog-00000000000000000000.log');
    const want = { table: 'events', path: file, pos, reason: 'fails its checksum', fromOffset: PER_FRAME, endOffset: 2 * PER_FRAME };
    for (const url of ['/tables/events/changelog', `/tables/events/changelog?from=${PER_FRAME + 2}&limit=1`, '/tables/events/changelog?key=3']) {
      const r = await req(url);
      assert.equal(r.status, 503, `${url}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'ASOF_TABLE_UNAVAILABLE');
      assert.deepEqual(r.body.error.details, want, url);
      assert.match(r.body.error.message, new RegExp(`table "events": the changelog frame holding offsets ${PER_FRAME}\\.\\.${2 * PER_FRAME - 1} \\(byte ${pos} of ${file}\\) fails its checksum`));
      assert.ok(!r.body.error.message.includes(dir.path), 'no server path');
    }
    const later = await req(`/tables/events/changelog?from=${2 * PER_FRAME}`);
    assert.equal(later.status, 200, 'offsets after the damaged frame answer');
    assert.equal(later.body.records.length, PER_FRAME);

    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const follow = clients.changelog.Follow({ table: 'events', from_offset: 0 });
      follow.on('data', () => undefined);
      follow.on('error', resolve);
    });
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.deepEqual(asofError(err).details, want);

    // Cut short within the last frame: reads of it say so.
    const [lastPos] = list[2];
    await truncate(path, lastPos + HEADER_BYTES + 10);
    const cut = await req(`/tables/events/changelog?from=${2 * PER_FRAME}`);
    assert.equal(cut.status, 503, JSON.stringify(cut.body));
    assert.deepEqual(cut.body.error.details, { ...want, pos: lastPos, reason: 'is cut short (the file ends within it)', fromOffset: 2 * PER_FRAME, endOffset: 3 * PER_FRAME });
  } finally {
    for (const c of Object.values(clients)) c.close();
    await asof.close();
    await dir.cleanup();
  }
});
