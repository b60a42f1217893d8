/**
 * The changelog file of one table: a sequence of frames, each one commit.
 *
 * Frame layout (little-endian), 40-byte header then payload:
 *   0  u32  magic "ASOF" (0x464f5341)
 *   4  u8   format version (1)
 *   5  u8   flags (0)
 *   6  u16  reserved
 *   8  u32  payload length in bytes
 *  12  u32  CRC-32 of bytes 16..end of payload
 *  16  i64  offset of the frame's first record
 *  24  u32  record count
 *  28  u32  schema version the payload was written with
 *  32  f64  commit time, epoch ms (UTC)
 *  40  ...  payload: one Arrow IPC stream (schema + one record batch)
 *
 * Invariants: offsets are dense from 0 across frames; commit times are
 * non-decreasing; a frame is acknowledged only after fdatasync returns. On open,
 * the frames after the snapshot's position are checked, and the first one that
 * is short, fails its checksum or breaks the offset order marks a torn tail: the
 * file is cut there (the bytes after it were never acknowledged). Frames before
 * that position were checked when they were recovered or written; reads check
 * every frame's checksum again, so later damage there is an error, not a wrong answer.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

export const FRAME_MAGIC = 0x464f5341;
export const HEADER_BYTES = 40;
const FORMAT_VERSION = 1;
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

export function encodeHeader(f: NewFrame): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32LE(FRAME_MAGIC, 0);
  h.writeUInt8(FORMAT_VERSION, 4);
  h.writeUInt32LE(f.payload.length, 8);
  h.writeBigInt64LE(BigInt(f.firstOffset), 16);
  h.writeUInt32LE(f.count, 24);
  h.writeUInt32LE(f.schemaVersion, 28);
  h.writeDoubleLE(f.commitTime, 32);
  let crc = crc32(h.subarray(16, HEADER_BYTES));
  crc = crc32(f.payload, crc);
  h.writeUInt32LE(crc, 12);
  return h;
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
  ): Promise<{ log: ChangelogFile; report: RecoveryReport }> {
    const fh = await open(path, 'a+');
    const { size } = await fh.stat();
    if (size < from.pos) {
      await fh.close();
      throw new Error(`changelog ${path} has ${size} bytes but the snapshot covers ${from.pos} bytes (offsets below ${from.offset}): acknowledged records are missing`);
    }
    if (from.lastFrame) {
      const f = from.lastFrame;
      const h = Buffer.alloc(HEADER_BYTES);
      await fh.read(h, 0, HEADER_BYTES, f.pos);
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
      const payload = buf.subarray(pos - bufStart + HEADER_BYTES, pos - bufStart + HEADER_BYTES + len);
      let crc = crc32(hdr.subarray(16, HEADER_BYTES));
      crc = crc32(payload, crc);
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
    return { log: new ChangelogFile(rw, path, pos), report };
  }

  get bytes(): number {
    return this.size;
  }

  /** Writes frames at the end and waits for fdatasync. Returns their metadata. */
  async append(frames: NewFrame[]): Promise<FrameMeta[]> {
    const bufs: Uint8Array[] = [];
    const metas: FrameMeta[] = [];
    let pos = this.size;
    for (const f of frames) {
      bufs.push(encodeHeader(f), f.payload);
      const length = HEADER_BYTES + f.payload.length;
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
    return metas;
  }

  /** A frame's payload, its checksum checked again (damage after recovery is an error, never a wrong answer). */
  async readPayload(meta: FrameMeta): Promise<Uint8Array> {
    const buf = Buffer.allocUnsafe(meta.length);
    const { bytesRead } = await this.fh.read(buf, 0, meta.length, meta.pos);
    if (bytesRead !== meta.length) throw new Error(`short read of frame at byte ${meta.pos} in ${this.path}`);
    const payload = buf.subarray(HEADER_BYTES);
    if (buf.readUInt32LE(0) !== FRAME_MAGIC || crc32(payload, crc32(buf.subarray(16, HEADER_BYTES))) !== buf.readUInt32LE(12)) {
      throw new Error(`changelog frame at byte ${meta.pos} of ${this.path} fails its checksum: the file was damaged after it was written`);
    }
    return payload;
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
