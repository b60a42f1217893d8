/**
 * Snapshots: a checkpoint of one table at an offset, so that start-up reads
 * only the changelog after it (as Kafka's recovery point does). A snapshot
 * holds the live rows of a pk table, the frame index and the key index as they
 * were at that offset, the idempotency keys its frames hold (idempotency.ts),
 * and how many changelog bytes they cover. It is written
 * to a temporary name, fsync'd, renamed and the folder fsync'd, so a crash
 * leaves the old snapshot or the new one, never half of one. A missing or
 * damaged snapshot only costs time: the changelog is replayed from 0.
 *
 * Layout (little-endian): a 64-byte header, then four sections.
 *   0  u32  magic "ANS3" ("ANS2": the same layout, written before records whose key is null were kept out of the key index)
 *   4  u32  header bytes (64)
 *   8  f64  offset: every record below it is reflected
 *  16  f64  commit time of the last of them, epoch ms
 *  24  f64  changelog bytes [0, n) holding exactly the frames below offset
 *  32  f64  state section bytes: repeated [u32 n, u32 0, Arrow IPC stream of n bytes] (8-aligned)
 *  40  f64  frame index section bytes (indexes.ts)
 *  48  f64  key index section bytes (indexes.ts)
 *  56  u32  CRC-32 of bytes 8..56 and all sections
 *  60  u32  idempotency section bytes (JSON, idempotency.ts); 0 in snapshots written before it
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { crc32 } from 'node:zlib';
import { decodeIpc, decodeValues, encodeValues } from './arrow-codec.js';
import { FrameIndex, KeyIndex } from './indexes.js';
import { sliceBuffers } from './log.js';
import type { TableSchema } from './schema.js';
import type { FrozenState } from './pk-state.js';
import { syncDir } from '../util/fs.js';

const MAGIC = 0x33534e41; // "ANS3"
/**
 * "ANS2": the same layout, from before a record whose key is null was kept out
 * of the key index (schema.keyOf): such records were filed under the key text
 * "null", with those of the string "null". Read as it is for a table whose key
 * columns are all non-nullable (its index cannot hold one); for another (a log
 * table with a nullable key column) it is unusable, and the changelog is
 * replayed from 0 once, which rebuilds the index without them.
 */
const NULL_KEYS_MAGIC = 0x32534e41;
const OLD_MAGIC = 0x50534e41; // "ANSP": rows only, before indexes were kept
const HEADER = 64;
/** Rows per Arrow batch in the state section; the event loop gets a turn between batches. */
const CHUNK_ROWS = 65_536;

export interface SnapshotPoint {
  /** Records with offset < this are reflected. */
  offset: number;
  lastCommitTime: number;
  /** Changelog bytes covered: recovery resumes reading here. */
  logBytes: number;
}

export interface Snapshot extends SnapshotPoint {
  frames: FrameIndex;
  keys: KeyIndex;
  /** The idempotency keys section (empty when none). */
  idempotency: Buffer;
}

/**
 * Writes a snapshot. `rows` is a pk table's state frozen at `point` (undefined
 * for a log table); the indexes are already serialised. Rows are encoded a
 * chunk at a time, from columns (no row objects), so a large state does not
 * stall the event loop.
 */
export async function writeSnapshot(path: string, schema: TableSchema, point: SnapshotPoint, rows: FrozenState | undefined, frames: Buffer, keys: Buffer, idempotency: Buffer = Buffer.alloc(0)): Promise<void> {
  const state: Uint8Array[] = [];
  let first = true;
  for (const chunk of rows?.chunks(CHUNK_ROWS) ?? []) {
    if (!first) await yieldToLoop();
    first = false;
    const n = chunk[0].length;
    const ipc = encodeValues(schema.columns, new Uint8Array(n), chunk, n);
    const len = Buffer.alloc(8);
    len.writeUInt32LE(ipc.length, 0);
    state.push(len, ipc);
  }
  const stateBytes = state.reduce((n, b) => n + b.length, 0);
  const header = Buffer.alloc(HEADER);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(HEADER, 4);
  header.writeDoubleLE(point.offset, 8);
  header.writeDoubleLE(point.lastCommitTime, 16);
  header.writeDoubleLE(point.logBytes, 24);
  header.writeDoubleLE(stateBytes, 32);
  header.writeDoubleLE(frames.length, 40);
  header.writeDoubleLE(keys.length, 48);
  header.writeUInt32LE(idempotency.length, 60);
  let crc = crc32(header.subarray(8, 56));
  for (const b of [...state, frames, keys, idempotency]) crc = crc32(b, crc);
  header.writeUInt32LE(crc, 56);

  const tmp = `${path}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      const parts = [header, ...state, frames, keys, idempotency];
      const total = parts.reduce((n, b) => n + b.length, 0);
      let written = 0;
      while (written < total) written += (await fh.writev(sliceBuffers(parts, written))).bytesWritten;
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    // A part-written file (a full disk) would hold the space the disk needs to heal.
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  // The rename is durable only once the folder is: otherwise a crash may bring the old snapshot back (harmless, but slower).
  await syncDir(dirname(path));
}

/**
 * Where a snapshot stands, from its header and the last entry of its frame
 * index (nothing else is read, so a large one costs little): undefined when
 * there is none or its header is not one this version writes (start-up
 * ignores such a snapshot). `lastFrameCommitTime` is the commit time the
 * snapshot recorded for its last frame (start-up checks the changelog's
 * frame against it); undefined when it covers no frame or cannot tell.
 */
export async function snapshotPoint(path: string): Promise<(SnapshotPoint & { lastFrameCommitTime?: number }) | undefined> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!fh) return undefined;
  try {
    const h = Buffer.alloc(HEADER);
    const { bytesRead } = await fh.read(h, 0, HEADER, 0);
    if (bytesRead < HEADER || (h.readUInt32LE(0) !== MAGIC && h.readUInt32LE(0) !== NULL_KEYS_MAGIC) || h.readUInt32LE(4) !== HEADER) return undefined;
    const point = { offset: h.readDoubleLE(8), lastCommitTime: h.readDoubleLE(16), logBytes: h.readDoubleLE(24) };
    // The frame index (indexes.ts FrameIndex.serialize): its count, then firstOffset, pos and commitTime as float64 arrays.
    const index = HEADER + h.readDoubleLE(32);
    const word = Buffer.alloc(8);
    if ((await fh.read(word, 0, 4, index)).bytesRead < 4) return point;
    const n = word.readUInt32LE(0);
    if (n === 0 || (await fh.read(word, 0, 8, index + 8 + 16 * n + 8 * (n - 1))).bytesRead < 8) return point;
    return { ...point, lastFrameCommitTime: word.readDoubleLE(0) };
  } finally {
    await fh.close();
  }
}

/**
 * Reads a snapshot: undefined when there is none; `{damaged}` saying why when
 * it cannot be used (then the changelog is replayed from 0). A pk table's rows
 * go to `load` a chunk at a time, as value arrays (one per column of `schema`,
 * in column order), never all as row objects at once; after `{damaged}`, what
 * `load` got must be thrown away.
 */
export async function readSnapshot(path: string, schema: TableSchema, load: (values: unknown[][], n: number) => void): Promise<Snapshot | { damaged: string } | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { damaged: `unreadable: ${(e as Error).message}` };
  }
  if (buf.length >= 4 && buf.readUInt32LE(0) === OLD_MAGIC) return { damaged: 'written by an older version without indexes' };
  if (buf.length >= HEADER && buf.readUInt32LE(0) === NULL_KEYS_MAGIC && schema.keyColumns.some((c) => c.nullable)) {
    return { damaged: 'written by an older version that filed records whose key is null under the key "null"' };
  }
  if (buf.length < HEADER || (buf.readUInt32LE(0) !== MAGIC && buf.readUInt32LE(0) !== NULL_KEYS_MAGIC) || buf.readUInt32LE(4) !== HEADER) return { damaged: 'bad header' };
  const stateBytes = buf.readDoubleLE(32);
  const framesBytes = buf.readDoubleLE(40);
  const keysBytes = buf.readDoubleLE(48);
  const idempotencyBytes = buf.readUInt32LE(60);
  if (HEADER + stateBytes + framesBytes + keysBytes + idempotencyBytes !== buf.length) return { damaged: `length ${buf.length} does not match its sections` };
  if (crc32(buf.subarray(HEADER), crc32(buf.subarray(8, 56))) !== buf.readUInt32LE(56)) return { damaged: 'checksum mismatch' };
  try {
    const at = HEADER + stateBytes;
    const frames = FrameIndex.deserialize(buf.subarray(at, at + framesBytes));
    const keys = KeyIndex.deserialize(buf.subarray(at + framesBytes, at + framesBytes + keysBytes), schema.numericKey);
    const point = { offset: buf.readDoubleLE(8), lastCommitTime: buf.readDoubleLE(16), logBytes: buf.readDoubleLE(24) };
    const last = frames.size ? frames.get(frames.size - 1) : undefined;
    if (frames.endPos !== point.logBytes || (last ? last.firstOffset + last.count : 0) !== point.offset) return { damaged: 'its frame index does not match its position' };
    for (let p = HEADER; p < at; ) {
      const len = buf.readUInt32LE(p);
      const batch = decodeIpc(buf.subarray(p + 8, p + 8 + len));
      load(decodeValues(batch, schema.columns).values, batch.numRows);
      p += 8 + len;
    }
    const idempotency = buf.subarray(buf.length - idempotencyBytes);
    JSON.parse(idempotency.length ? idempotency.toString('utf8') : '[]'); // undecodable: damaged, like the other sections
    return { ...point, frames, keys, idempotency };
  } catch (e) {
    return { damaged: `undecodable: ${(e as Error).message}` };
  }
}
