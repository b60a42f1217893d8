/**
 * Frame format version 2: the chain hash in every frame, recomputed here with
 * node:crypto directly (not with log.ts's chainHash); version-1 files, built
 * byte by byte as the old writer laid them out, still read and are continued.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ChangelogFile, FILE_START, HEADER_BYTES, type FrameMeta } from '../../src/engine/log.js';
import { tempDir } from '../helpers.js';

/** The link as the issue states it, written independently of log.ts. */
function expectedLink(prev: Buffer, table: string, firstOffset: number, count: number, schemaVersion: number, commitTime: number, payload: Buffer): Buffer {
  const name = Buffer.from(table);
  const len = Buffer.alloc(2);
  len.writeUInt16LE(name.length);
  const off = Buffer.alloc(8);
  off.writeBigInt64LE(BigInt(firstOffset));
  const nums = Buffer.alloc(16);
  nums.writeUInt32LE(count, 0);
  nums.writeUInt32LE(schemaVersion, 4);
  nums.writeDoubleLE(commitTime, 8);
  return createHash('sha256').update('asof.changelog.frame.v2\0').update(prev).update(len).update(name).update(off).update(nums).update(payload).digest();
}

/** A version-1 frame: 40-byte header, then the payload (the layout before chain hashes). */
function v1Frame(firstOffset: number, count: number, commitTime: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32LE(0x464f5341, 0);
  h.writeUInt8(1, 4);
  h.writeUInt32LE(payload.length, 8);
  h.writeBigInt64LE(BigInt(firstOffset), 16);
  h.writeUInt32LE(count, 24);
  h.writeUInt32LE(1, 28);
  h.writeDoubleLE(commitTime, 32);
  h.writeUInt32LE(crc32(payload, crc32(h.subarray(16))), 12);
  return Buffer.concat([h, payload]);
}

test('version-2 frames chain: each stored hash is SHA-256 of the previous hash, the table, the header fields and the payload', async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, 'c.log');
    const { log } = await ChangelogFile.open(path, FILE_START, () => undefined, 'users');
    const p1 = Buffer.from('first payload');
    const p2 = Buffer.from('second');
    const metas = await log.append([
      { firstOffset: 0, count: 2, schemaVersion: 1, commitTime: 1000, payload: p1 },
      { firstOffset: 2, count: 1, schemaVersion: 3, commitTime: 1001.5, payload: p2 },
    ]);
    const h1 = expectedLink(Buffer.alloc(32), 'users', 0, 2, 1, 1000, p1);
    const h2 = expectedLink(h1, 'users', 2, 1, 3, 1001.5, p2);
    assert.equal(log.chainHead.toString('hex'), h2.toString('hex'));
    const raw = await log.readFrame(metas[0]);
    assert.equal(raw.version, 2);
    assert.equal(raw.crcOk, true);
    assert.equal(Buffer.from(raw.hash!).toString('hex'), h1.toString('hex'));
    assert.equal(Buffer.from(await log.readPayload(metas[1])).toString(), 'second');
    await log.close();
    // Reopened, the chain continues from the stored head; the table name changes every link.
    const seen: string[] = [];
    const { log: again } = await ChangelogFile.open(path, FILE_START, (_m, p) => seen.push(Buffer.from(p).toString()), 'users');
    assert.deepEqual(seen, ['first payload', 'second']);
    const p3 = Buffer.from('third');
    await again.append([{ firstOffset: 3, count: 1, schemaVersion: 3, commitTime: 1002, payload: p3 }]);
    assert.equal(again.chainHead.toString('hex'), expectedLink(h2, 'users', 3, 1, 3, 1002, p3).toString('hex'));
    assert.notEqual(again.chainHead.toString('hex'), expectedLink(h2, 'other', 3, 1, 3, 1002, p3).toString('hex'));
    await again.close();
  } finally {
    await dir.cleanup();
  }
});

test('a version-1 file still reads, and the chain starts at its first version-2 frame', async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, 'old.log');
    await writeFile(path, Buffer.concat([v1Frame(0, 1, 500, Buffer.from('old-a')), v1Frame(1, 2, 501, Buffer.from('old-b'))]));
    const seen: { meta: FrameMeta; text: string }[] = [];
    const { log, report } = await ChangelogFile.open(path, FILE_START, (meta, p) => seen.push({ meta, text: Buffer.from(p).toString() }), 't');
    assert.equal(report.cutBytes, 0);
    assert.deepEqual(seen.map((s) => [s.meta.firstOffset, s.meta.count, s.text]), [[0, 1, 'old-a'], [1, 2, 'old-b']]);
    const old = await log.readFrame(seen[1].meta);
    assert.equal(old.version, 1);
    assert.equal(old.hash, null);
    assert.equal(Buffer.from(old.payload).toString(), 'old-b');
    const p = Buffer.from('new');
    const [meta] = await log.append([{ firstOffset: 3, count: 1, schemaVersion: 1, commitTime: 502, payload: p }]);
    assert.equal(Buffer.from((await log.readFrame(meta)).hash!).toString('hex'), expectedLink(Buffer.alloc(32), 't', 3, 1, 1, 502, p).toString('hex'));
    await log.close();
    const bytes = await readFile(path);
    assert.equal(bytes.readUInt8(meta.pos + 4), 2);
    assert.equal(bytes.readUInt32LE(meta.pos + 8), 32 + p.length);
  } finally {
    await dir.cleanup();
  }
});

test('a frame whose payload changed but whose CRC was fixed reads normally: the chain, not the reader, reports it', async () => {
  const dir = await tempDir();
  try {
    const path = join(dir.path, 'c.log');
    const { log } = await ChangelogFile.open(path, FILE_START, () => undefined, 't');
    const [m1, m2] = await log.append([
      { firstOffset: 0, count: 1, schemaVersion: 1, commitTime: 1, payload: Buffer.from('aaaa') },
      { firstOffset: 1, count: 1, schemaVersion: 1, commitTime: 2, payload: Buffer.from('bbbb') },
    ]);
    await log.close();
    const bytes = await readFile(path);
    bytes[m1.pos + HEADER_BYTES + 32] = 'z'.charCodeAt(0);
    bytes.writeUInt32LE(crc32(bytes.subarray(m1.pos + HEADER_BYTES, m1.pos + m1.length), crc32(bytes.subarray(m1.pos + 16, m1.pos + HEADER_BYTES))), m1.pos + 12);
    await writeFile(path, bytes);
    const seen: string[] = [];
    const { log: again, report } = await ChangelogFile.open(path, FILE_START, (_m, p) => seen.push(Buffer.from(p).toString()), 't');
    assert.equal(report.cutBytes, 0);
    assert.deepEqual(seen, ['zaaa', 'bbbb']);
    const raw = await again.readFrame(m1);
    assert.equal(raw.crcOk, true);
    assert.notEqual(Buffer.from(raw.hash!).toString('hex'), expectedLink(Buffer.alloc(32), 't', 0, 1, 1, 1, Buffer.from('zaaa')).toString('hex'));
    assert.equal(Buffer.from((await again.readFrame(m2)).payload).toString(), 'bbbb');
    await again.close();
  } finally {
    await dir.cleanup();
  }
});
