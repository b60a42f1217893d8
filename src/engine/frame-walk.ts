/**
 * Walking a changelog file's frames from its start, and telling damage (a bad
 * frame that whole frames follow) from a torn tail (nothing whole after it).
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { AsofError } from '../errors.js';
import { CHAIN_HASH_BYTES, FORMAT_VERSION, FRAME_MAGIC, HEADER_BYTES, maxFrameBytes, splitBody, type FrameMeta } from './frame.js';


/** Damage before the end of a changelog: a bad frame that whole frames follow (or that a snapshot says was acknowledged). */
export interface Damage {
  path: string;
  /** Byte position of the first bad frame: the file is whole before it. */
  pos: number;
  reason: string;
  /** File size, bytes. */
  size: number;
  /** Offset the bad frame should start at: records from here on cannot be served. */
  fromOffset: number;
  /** The first whole frame after the damage, if any. */
  next?: { pos: number; firstOffset: number };
  /** Offset after the last whole frame found after the damage (so [fromOffset, endOffset) is affected). */
  endOffset: number;
}

export class ChangelogDamaged extends Error {
  constructor(readonly damage: Damage) {
    const d = damage;
    const after = d.next ? `; whole frames follow from byte ${d.next.pos} (offset ${d.next.firstOffset}), so this is not a torn tail` : '';
    super(`changelog ${d.path} is damaged at byte ${d.pos} (${d.reason}): offsets ${d.fromOffset}..${d.endOffset - 1} (${d.endOffset - d.fromOffset} records, ${d.size - d.pos} bytes to the end of the file) are affected${after}`);
  }
}

/**
 * A frame read after its table opened that is cut short or fails its
 * checksum: its bytes were damaged since they were written. Not retriable (a
 * retry reads the same bytes), so ASOF_TABLE_UNAVAILABLE, naming the table,
 * the frame's offsets and its byte in `file` (relative to the data folder:
 * no server path in an answer). Reads from later offsets still answer.
 */
export function damagedOnRead(table: string, file: string, frame: { pos: number; firstOffset: number; count: number }, reason: string): AsofError {
  const { pos, firstOffset, count } = frame;
  const offsets = count > 1 ? `offsets ${firstOffset}..${firstOffset + count - 1}` : `offset ${firstOffset}`;
  return new AsofError(
    'ASOF_TABLE_UNAVAILABLE',
    `table "${table}": the changelog frame holding ${offsets} (byte ${pos} of ${file}) ${reason}: it was damaged after it was written, and its records cannot be served; ` +
      `the table does not open after a restart until \`asof repair --data-dir <data dir> --table ${table}\` cuts the changelog there (reporting what is lost)`,
    { table, path: file, pos, reason, fromOffset: firstOffset, endOffset: firstOffset + count },
  );
}

/** What walking a file's frames found. */
export interface Walk {
  size: number;
  /** Whole frames read. */
  frames: number;
  /** Byte position after the last whole frame. */
  end: number;
  /** Offset after the last whole frame. */
  nextOffset: number;
  /** The first frame that is short, fails its checksum or breaks the offset or commit-time order. */
  bad?: { pos: number; reason: string };
}

/**
 * Reads every frame from the start of the file, checking its checksum and the
 * offset and commit-time order, and gives each whole one to `onFrame`; stops at
 * the first bad one. Reads in 16 MiB chunks.
 */
export async function walkFrames(fh: FileHandle, size: number, firstOffset: number, onFrame: (meta: FrameMeta, payload: Uint8Array, hash: Uint8Array | null) => void): Promise<Walk> {
  const CHUNK = 16 << 20;
  let buf = Buffer.alloc(0);
  let bufStart = 0; // file position of buf[0]
  let filePos = 0; // next file position to read
  let pos = 0; // next frame's file position
  let expectOffset = firstOffset;
  let lastCommit = -Infinity;
  let frames = 0;
  const need = async (end: number): Promise<boolean> => {
    // Ensure buf covers [pos, end).
    if (end <= bufStart + buf.length) return true;
    if (end > size) return false;
    const keep = buf.subarray(pos - bufStart);
    const want = Math.max(CHUNK, end - pos);
    const chunk = Buffer.allocUnsafe(Math.min(want, size - filePos));
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, filePos);
    filePos += bytesRead;
    buf = keep.length ? Buffer.concat([keep, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
    bufStart = pos;
    return end <= bufStart + buf.length;
  };
  const done = (reason?: string): Walk => ({ size, frames, end: pos, nextOffset: expectOffset, bad: reason ? { pos, reason } : undefined });
  while (pos < size) {
    if (!(await need(pos + HEADER_BYTES))) return done('short header');
    const h = buf.subarray(pos - bufStart, pos - bufStart + HEADER_BYTES);
    if (h.readUInt32LE(0) !== FRAME_MAGIC) return done('bad magic');
    if (!knownHeader(h)) return done('unknown format version or flags');
    const len = h.readUInt32LE(8);
    if (len > maxFrameBytes() || !(await need(pos + HEADER_BYTES + len))) return done('short payload');
    const hdr = buf.subarray(pos - bufStart, pos - bufStart + HEADER_BYTES);
    const body = buf.subarray(pos - bufStart + HEADER_BYTES, pos - bufStart + HEADER_BYTES + len);
    if (crc32(body, crc32(hdr.subarray(16, HEADER_BYTES))) !== hdr.readUInt32LE(12)) return done('checksum mismatch');
    const meta = metaOf(hdr, pos);
    if (meta.firstOffset !== expectOffset || meta.commitTime < lastCommit) return done('breaks the offset or commit-time order');
    const { hash, payload } = splitBody(hdr.readUInt8(4), body);
    onFrame(meta, payload, hash);
    expectOffset += meta.count;
    lastCommit = meta.commitTime;
    frames++;
    pos += meta.length;
  }
  return done();
}

/** Bytes 4..8 (version, flags, reserved) hold what some version writes; the checksum does not cover them, so they are checked here. */
function knownHeader(h: Buffer): boolean {
  const version = h.readUInt8(4);
  return version >= 1 && version <= FORMAT_VERSION && h.readUInt8(5) === 0 && h.readUInt16LE(6) === 0 && (version === 1 || h.readUInt32LE(8) >= CHAIN_HASH_BYTES);
}

function metaOf(h: Buffer, pos: number): FrameMeta {
  return { firstOffset: Number(h.readBigInt64LE(16)), count: h.readUInt32LE(24), schemaVersion: h.readUInt32LE(28), commitTime: h.readDoubleLE(32), pos, length: HEADER_BYTES + h.readUInt32LE(8) };
}

/** A whole frame (magic, length within the file, checksum) at `pos`, or undefined. */
async function wholeFrameAt(fh: FileHandle, pos: number, size: number): Promise<FrameMeta | undefined> {
  if (pos + HEADER_BYTES > size) return undefined;
  const h = Buffer.alloc(HEADER_BYTES);
  await fh.read(h, 0, HEADER_BYTES, pos);
  const len = h.readUInt32LE(8);
  if (h.readUInt32LE(0) !== FRAME_MAGIC || !knownHeader(h) || len > maxFrameBytes() || pos + HEADER_BYTES + len > size) return undefined;
  const payload = Buffer.allocUnsafe(len);
  await fh.read(payload, 0, len, pos + HEADER_BYTES);
  return crc32(payload, crc32(h.subarray(16))) === h.readUInt32LE(12) ? metaOf(h, pos) : undefined;
}

/** The first whole frame starting after byte `from` that holds offsets at or after `minOffset`, found by the magic number. */
async function nextWholeFrame(fh: FileHandle, from: number, size: number, minOffset: number): Promise<FrameMeta | undefined> {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(FRAME_MAGIC);
  const CHUNK = 1 << 20;
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let at = from; at < size; at += CHUNK - 3) {
    const { bytesRead } = await fh.read(buf, 0, CHUNK, at);
    const view = buf.subarray(0, bytesRead);
    for (let i = view.indexOf(magic); i >= 0; i = view.indexOf(magic, i + 1)) {
      const f = await wholeFrameAt(fh, at + i, size);
      if (f && f.firstOffset >= minOffset) return f;
    }
    if (bytesRead < CHUNK) break;
  }
  return undefined;
}

/**
 * Whether a bad frame at `bad.pos` is damage (whole frames follow it) or a torn
 * tail (nothing whole after it); for damage, which offsets it affects: the
 * records from `fromOffset` on cannot be served past it, up to the end of the
 * last whole frame found after it.
 */
export async function findDamage(fh: FileHandle, path: string, size: number, bad: { pos: number; reason: string }, fromOffset: number): Promise<Damage | undefined> {
  const next = await nextWholeFrame(fh, bad.pos + 1, size, fromOffset);
  if (!next) return undefined;
  let endOffset = next.firstOffset + next.count;
  for (let f: FrameMeta | undefined = next; f; ) {
    endOffset = Math.max(endOffset, f.firstOffset + f.count);
    const at: number = f.pos + f.length;
    f = (await wholeFrameAt(fh, at, size)) ?? (await nextWholeFrame(fh, at, size, endOffset));
  }
  return { path, pos: bad.pos, reason: bad.reason, size, fromOffset, next: { pos: next.pos, firstOffset: next.firstOffset }, endOffset };
}

/** The first frame's offset as its header says (0 for an empty file): where a changelog segment's offsets begin. */
export async function firstOffsetIn(fh: FileHandle): Promise<number> {
  const h = Buffer.alloc(HEADER_BYTES);
  const { bytesRead } = await fh.read(h, 0, HEADER_BYTES, 0);
  return bytesRead === HEADER_BYTES && h.readUInt32LE(0) === FRAME_MAGIC ? Number(h.readBigInt64LE(16)) : 0;
}
