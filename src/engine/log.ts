/**
 * The changelog file of one table: a sequence of frames, each one commit.
 *
 * Frame layout (little-endian), 40-byte header then body:
 *   0  u32  magic "ASOF" (0x464f5341)
 *   4  u8   format version (2; frames written as 1 still read)
 *   5  u8   flags (0)
 *   6  u16  reserved
 *   8  u32  body length in bytes
 *  12  u32  CRC-32 of bytes 16..end of body
 *  16  i64  offset of the frame's first record
 *  24  u32  record count
 *  28  u32  schema version the payload was written with
 *  32  f64  commit time, epoch ms (UTC)
 *  40  ...  body. Version 1: the payload, one Arrow IPC stream (schema + one
 *           record batch). Version 2: a 32-byte chain hash, then the payload.
 *
 * The chain hash (`chainHash`) is SHA-256 over a domain tag, the previous
 * version-2 frame's hash (32 zero bytes for the table's first), the table name
 * and this frame's header fields and payload: rewriting any frame changes every
 * hash after it. Reading never checks the chain (a valid CRC is a readable
 * frame); the audit's verify walks it and reports a broken link.
 *
 * Invariants: offsets are dense from 0 across frames; commit times are
 * non-decreasing; a frame is acknowledged only after fdatasync returns. On open,
 * the frames after the snapshot's position are checked, and the first one that
 * is short, fails its checksum or breaks the offset order marks a torn tail: the
 * file is cut there (the bytes after it were never acknowledged). Frames before
 * that position were checked when they were recovered or written; reads check
 * every frame's checksum again, so later damage there is an error, not a wrong answer.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

export const FRAME_MAGIC = 0x464f5341;
export const HEADER_BYTES = 40;
const FORMAT_VERSION = 2;
/** Bytes of the chain hash at the start of a version-2 frame's body. */
export const CHAIN_HASH_BYTES = 32;
/** The previous hash of a table's first chained frame. */
export const CHAIN_GENESIS: Buffer = Buffer.alloc(CHAIN_HASH_BYTES);
const CHAIN_DOMAIN = Buffer.from('asof.changelog.frame.v2\0');
/** Largest frame payload accepted when reading; guards against a corrupt length. */
export const MAX_FRAME_BYTES = 1 << 30;

export interface FrameMeta {
  firstOffset: number;
  count: number;
  schemaVersion: number;
  commitTime: number;
  /** Byte position of the header in the file. */
  pos: number;
  /** Header + payload bytes. */
  length: number;
}

export interface NewFrame {
  firstOffset: number;
  count: number;
  schemaVersion: number;
  commitTime: number;
  payload: Uint8Array;
}

export interface RecoveryReport {
  frames: number;
  records: number;
  /** Bytes cut from a torn or corrupt tail. */
  cutBytes: number;
  cutReason?: string;
}

/** The header fields a chain hash covers (FrameMeta has them; so does a tiered frame). */
export interface ChainedFields {
  firstOffset: number;
  count: number;
  schemaVersion: number;
  commitTime: number;
}

/**
 * SHA-256 of one frame's link: domain tag, previous hash (32 bytes), table
 * name (u16 length + UTF-8), first offset (i64), record count (u32), schema
 * version (u32), commit time (f64 epoch ms), payload (the Arrow bytes).
 */
export function chainHash(prev: Uint8Array, table: string, f: ChainedFields, payload: Uint8Array): Buffer {
  const name = Buffer.from(table, 'utf8');
  const fields = Buffer.alloc(2 + name.length + 24);
  fields.writeUInt16LE(name.length, 0);
  name.copy(fields, 2);
  let at = 2 + name.length;
  fields.writeBigInt64LE(BigInt(f.firstOffset), at);
  fields.writeUInt32LE(f.count, (at += 8));
  fields.writeUInt32LE(f.schemaVersion, (at += 4));
  fields.writeDoubleLE(f.commitTime, (at += 4));
  return createHash('sha256').update(CHAIN_DOMAIN).update(prev).update(fields).update(payload).digest();
}

/** Header and chain hash of a version-2 frame (the bytes before its payload). */
export function encodeHeader(f: NewFrame, hash: Uint8Array): Buffer {
  const h = Buffer.alloc(HEADER_BYTES + CHAIN_HASH_BYTES);
  h.writeUInt32LE(FRAME_MAGIC, 0);
  h.writeUInt8(FORMAT_VERSION, 4);
  h.writeUInt32LE(CHAIN_HASH_BYTES + f.payload.length, 8);
  h.writeBigInt64LE(BigInt(f.firstOffset), 16);
  h.writeUInt32LE(f.count, 24);
  h.writeUInt32LE(f.schemaVersion, 28);
  h.writeDoubleLE(f.commitTime, 32);
  h.set(hash, HEADER_BYTES);
  let crc = crc32(h.subarray(16));
  crc = crc32(f.payload, crc);
  h.writeUInt32LE(crc, 12);
  return h;
}

/** A frame's body split by its format version: the stored chain hash (version 2) and the payload. */
export function splitBody(version: number, body: Uint8Array): { hash: Uint8Array | null; payload: Uint8Array } {
  return version >= 2 ? { hash: body.subarray(0, CHAIN_HASH_BYTES), payload: body.subarray(CHAIN_HASH_BYTES) } : { hash: null, payload: body };
}

/** One frame as stored, for the audit's chain walk: nothing checked but what `crcOk` says. */
export interface RawFrame extends FrameMeta {
  version: number;
  crcOk: boolean;
  /** The stored chain hash; null for a version-1 frame. */
  hash: Uint8Array | null;
  payload: Uint8Array;
}

/** Where reading starts: a snapshot's position, or the start of the file. */
export interface ResumePoint {
  /** Byte position of the first frame to read. */
  pos: number;
  /** Offset that frame must start at. */
  offset: number;
  /** Commit time of the last frame before it (frames after it may not go back). */
  commitTime: number;
  /** The last frame before `pos`, as the snapshot recorded it: its header must match the file's. */
  lastFrame?: FrameMeta;
}

/** The snapshot's last frame is not in the file as recorded: the snapshot belongs to another changelog. */
export class SnapshotMismatch extends Error {}

export const FILE_START: ResumePoint = { pos: 0, offset: 0, commitTime: -Infinity };

export class ChangelogFile {
  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    private size: number,
    private readonly table: string,
    /** Hash of the newest version-2 frame (CHAIN_GENESIS before any): the next frame's previous hash. */
    private head: Buffer,
  ) {}

  /**
   * Opens (creating if needed) and reads the file from `from`, calling
   * `onFrame` for each whole frame in order; cuts a torn tail. Throws when the
   * file is shorter than `from.pos`: the snapshot then reflects records the
   * changelog lost, and serving either would be a lie.
   */
  static async open(
    path: string,
    from: ResumePoint,
    onFrame: (meta: FrameMeta, payload: Uint8Array) => void,
    /** The table's name: part of every chain hash. */
    table = '',
  ): Promise<{ log: ChangelogFile; report: RecoveryReport }> {
    const fh = await open(path, 'a+');
    const { size } = await fh.stat();
    if (size < from.pos) {
      await fh.close();
      throw new Error(`changelog ${path} has ${size} bytes but the snapshot covers ${from.pos} bytes (offsets below ${from.offset}): acknowledged records are missing`);
    }
    let head = CHAIN_GENESIS;
    if (from.lastFrame) {
      const f = from.lastFrame;
      const h = Buffer.alloc(HEADER_BYTES + CHAIN_HASH_BYTES);
      await fh.read(h, 0, h.length, f.pos);
      // The chain continues from the snapshot's last frame (a version-1 frame has no hash: the chain then starts afresh).
      if (h.readUInt8(4) >= 2) head = Buffer.from(h.subarray(HEADER_BYTES));
      if (h.readUInt32LE(0) !== FRAME_MAGIC || HEADER_BYTES + h.readUInt32LE(8) !== f.length || Number(h.readBigInt64LE(16)) !== f.firstOffset || h.readUInt32LE(24) !== f.count || h.readDoubleLE(32) !== f.commitTime) {
        await fh.close();
        throw new SnapshotMismatch(`the frame at byte ${f.pos} of ${path} is not the one the snapshot recorded`);
      }
    }
    const report: RecoveryReport = { frames: 0, records: 0, cutBytes: 0 };
    const CHUNK = 16 << 20;
    let buf = Buffer.alloc(0);
    let bufStart = from.pos; // file position of buf[0]
    let filePos = from.pos; // next file position to read
    let pos = from.pos; // next frame's file position
    let expectOffset = from.offset;
    let lastCommit = from.commitTime;
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
    while (pos < size) {
      const cut = (reason: string): void => {
        report.cutBytes = size - pos;
        report.cutReason = reason;
      };
      if (!(await need(pos + HEADER_BYTES))) {
        cut('short header');
        break;
      }
      const h = buf.subarray(pos - bufStart, pos - bufStart + HEADER_BYTES);
      if (h.readUInt32LE(0) !== FRAME_MAGIC) {
        cut('bad magic');
        break;
      }
      const len = h.readUInt32LE(8);
      if (len > MAX_FRAME_BYTES || !(await need(pos + HEADER_BYTES + len))) {
        cut('short payload');
        break;
      }
      const hdr = buf.subarray(pos - bufStart, pos - bufStart + HEADER_BYTES);
      const body = buf.subarray(pos - bufStart + HEADER_BYTES, pos - bufStart + HEADER_BYTES + len);
      let crc = crc32(hdr.subarray(16, HEADER_BYTES));
      crc = crc32(body, crc);
      if (crc !== hdr.readUInt32LE(12)) {
        cut('checksum mismatch');
        break;
      }
      const meta: FrameMeta = {
        firstOffset: Number(hdr.readBigInt64LE(16)),
        count: hdr.readUInt32LE(24),
        schemaVersion: hdr.readUInt32LE(28),
        commitTime: hdr.readDoubleLE(32),
        pos,
        length: HEADER_BYTES + len,
      };
      if (meta.firstOffset !== expectOffset || meta.commitTime < lastCommit) {
        cut(`frame at byte ${pos} breaks the offset or commit-time order`);
        break;
      }
      expectOffset += meta.count;
      lastCommit = meta.commitTime;
      const { hash, payload } = splitBody(hdr.readUInt8(4), body);
      if (hash) head = Buffer.from(hash);
      onFrame(meta, payload);
      report.frames++;
      report.records += meta.count;
      pos += meta.length;
    }
    if (report.cutBytes > 0) {
      await fh.truncate(pos);
      await fh.datasync();
    }
    await fh.close();
    // Reopen for positional writes (append mode ignores positions on Linux).
    const rw = await open(path, 'r+');
    return { log: new ChangelogFile(rw, path, pos, table, head), report };
  }

  get bytes(): number {
    return this.size;
  }

  /** The newest frame's chain hash (CHAIN_GENESIS while no version-2 frame exists). */
  get chainHead(): Buffer {
    return this.head;
  }

  /** Writes frames at the end and waits for fdatasync. Returns their metadata. */
  async append(frames: NewFrame[]): Promise<FrameMeta[]> {
    const bufs: Uint8Array[] = [];
    const metas: FrameMeta[] = [];
    let pos = this.size;
    let head = this.head;
    for (const f of frames) {
      head = chainHash(head, this.table, f, f.payload);
      bufs.push(encodeHeader(f, head), f.payload);
      const length = HEADER_BYTES + CHAIN_HASH_BYTES + f.payload.length;
      metas.push({ firstOffset: f.firstOffset, count: f.count, schemaVersion: f.schemaVersion, commitTime: f.commitTime, pos, length });
      pos += length;
    }
    let written = 0;
    const total = pos - this.size;
    // writev may write partially; loop until everything is down.
    while (written < total) {
      const { bytesWritten } = await this.fh.writev(sliceBuffers(bufs, written), this.size + written);
      written += bytesWritten;
    }
    await this.fh.datasync();
    this.size = pos;
    this.head = head;
    return metas;
  }

  /** A frame's payload, its checksum checked again (damage after recovery is an error, never a wrong answer). */
  async readPayload(meta: FrameMeta): Promise<Uint8Array> {
    const raw = await this.readFrame(meta);
    if (!raw.crcOk) throw new Error(`changelog frame at byte ${meta.pos} of ${this.path} fails its checksum: the file was damaged after it was written`);
    return raw.payload;
  }

  /** A frame as stored (header fields, stored chain hash, payload), its checksum checked but not enforced. */
  async readFrame(meta: FrameMeta): Promise<RawFrame> {
    const buf = Buffer.allocUnsafe(meta.length);
    const { bytesRead } = await this.fh.read(buf, 0, meta.length, meta.pos);
    if (bytesRead !== meta.length) throw new Error(`short read of frame at byte ${meta.pos} in ${this.path}`);
    const body = buf.subarray(HEADER_BYTES);
    const crcOk = buf.readUInt32LE(0) === FRAME_MAGIC && crc32(body, crc32(buf.subarray(16, HEADER_BYTES))) === buf.readUInt32LE(12);
    const version = buf.readUInt8(4);
    return { ...meta, version, crcOk, ...splitBody(version, body) };
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** The buffers after skipping their first `skip` bytes (what a partial writev left). */
export function sliceBuffers(bufs: Uint8Array[], skip: number): Uint8Array[] {
  if (skip === 0) return bufs;
  const out: Uint8Array[] = [];
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
