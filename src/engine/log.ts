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
 * non-decreasing; a frame is acknowledged only after fdatasync returns, and
 * group commit appends one frame at a time, so only the last frame of a file
 * can be unacknowledged.
 *
 * On open every frame's checksum and order are checked (frames before the
 * snapshot's position too; only those after it are replayed). The first bad
 * frame is either a torn tail, when no whole frame follows it (it was never
 * acknowledged): the file is cut there; or damage, when whole frames follow it
 * (or a snapshot says it was acknowledged): the file is left as it is and
 * ChangelogDamaged names the byte and the offsets affected; `repair` cuts it
 * when asked. Reads check each frame's checksum again, so damage after open is
 * an error, never a wrong answer.
 *
 * A failed append (write or fdatasync) cuts the file back to its last durable
 * frame before it throws, so a refused frame can never reappear at the next
 * start; while that cut has not succeeded, nothing more is appended.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { AsofError } from '../errors.js';

import { CHAIN_GENESIS, CHAIN_HASH_BYTES, FRAME_MAGIC, FrameTooLarge, maxFrameBytes, HEADER_BYTES, chainHash, encodeHeader, frameOk, sliceBuffers, splitBody, type FrameMeta, type NewFrame, type RawFrame, type RecoveryReport } from './frame.js';
import { ChangelogDamaged, damagedOnRead, findDamage, firstOffsetIn, walkFrames, type Walk } from './frame-walk.js';

export * from './frame.js';
export { ChangelogDamaged, type Damage } from './frame-walk.js';


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
  /** Chain hash of the frame before `pos` when it is not in this file (the previous changelog segment's head). */
  head?: Buffer;
  /** Offset the file's first frame must start at (a changelog segment after the first); default 0. */
  fileOffset?: number;
}

/** What `ChangelogFile.repair` kept and cut. */
export interface RepairReport {
  path: string;
  /** File size before the repair, bytes. */
  size: number;
  kept: { bytes: number; frames: number; records: number };
  /** Undefined when every frame is whole. Offsets [fromOffset, endOffset) are lost (none for a torn tail: never acknowledged). */
  cut?: { pos: number; bytes: number; reason: string; tornTail: boolean; fromOffset: number; endOffset: number; records: number };
  /** Set when nothing was changed (only reported). */
  dryRun?: boolean;
}

/** The snapshot's last frame is not in the file as recorded: the snapshot belongs to another changelog. */
export class SnapshotMismatch extends Error {}

export const FILE_START: ResumePoint = { pos: 0, offset: 0, commitTime: -Infinity };

/**
 * The file operations appending goes through. Only tests replace them (to make
 * an fdatasync fail); `ChangelogFile.fileOps` is the one place that is done.
 */
export interface FileOps {
  writev(path: string, fh: FileHandle, bufs: Uint8Array[], pos: number): Promise<{ bytesWritten: number }>;
  datasync(path: string, fh: FileHandle): Promise<void>;
  truncate(path: string, fh: FileHandle, len: number): Promise<void>;
}

export const REAL_FILE_OPS: FileOps = {
  writev: (_path, fh, bufs, pos) => fh.writev(bufs, pos),
  datasync: (_path, fh) => fh.datasync(),
  truncate: (_path, fh, len) => fh.truncate(len),
};

/** An append that did not become durable: nothing of it is acknowledged. `restored`: the file is back at its last durable frame. */
export class AppendFailed extends Error {
  constructor(
    override readonly cause: Error,
    readonly restored: boolean,
  ) {
    super(cause.message);
  }
}

export class ChangelogFile {
  /** Test seam: the operations every ChangelogFile appends with (see FileOps). */
  static fileOps: FileOps = REAL_FILE_OPS;
  private get ops(): FileOps {
    return ChangelogFile.fileOps;
  }
  /** Set by a failed append until `restore` cuts the file back to `size`. */
  private unrestored?: Error;

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    private size: number,
    private readonly table: string,
    /** Hash of the newest version-2 frame (CHAIN_GENESIS before any): the next frame's previous hash. */
    private head: Buffer,
  ) {}

  /**
   * Opens (creating if needed) and checks every frame's checksum from the
   * start of the file, calling `onFrame` for each whole frame at or after
   * `from.pos`, in order. A bad frame with no whole frame after it is a torn
   * tail (never acknowledged) and is cut; a bad frame with whole frames after
   * it, or one the snapshot says was acknowledged, is damage: ChangelogDamaged,
   * and the file is left as it is (`repair` cuts it when asked). Throws when the
   * file is shorter than `from.pos`: the snapshot then reflects records the
   * changelog lost, and serving either would be a lie. A `sealed` file (a
   * changelog segment that was complete before the next began) is never cut:
   * damage in it throws.
   */
  static async open(
    path: string,
    from: ResumePoint,
    onFrame: (meta: FrameMeta, payload: Uint8Array) => void,
    /** The table's name: part of every chain hash. */
    table = '',
    opts: { sealed?: boolean } = {},
  ): Promise<{ log: ChangelogFile; report: RecoveryReport }> {
    const fh = await open(path, 'a+');
    let walked: Walk;
    const replayed = { frames: 0, records: 0 };
    // Every frame is walked, so the chain continues from the last whole one (a version-1 frame has no hash: none before it counts).
    let head = from.head ?? CHAIN_GENESIS;
    try {
      const { size } = await fh.stat();
      if (size < from.pos) {
        throw new Error(`changelog ${path} has ${size} bytes but the snapshot covers ${from.pos} bytes (offsets below ${from.offset}): acknowledged records are missing`);
      }
      if (from.lastFrame) {
        const f = from.lastFrame;
        const h = Buffer.alloc(HEADER_BYTES);
        await fh.read(h, 0, HEADER_BYTES, f.pos);
        if (h.readUInt32LE(0) !== FRAME_MAGIC || HEADER_BYTES + h.readUInt32LE(8) !== f.length || Number(h.readBigInt64LE(16)) !== f.firstOffset || h.readUInt32LE(24) !== f.count || h.readDoubleLE(32) !== f.commitTime) {
          throw new SnapshotMismatch(`the frame at byte ${f.pos} of ${path} is not the one the snapshot recorded`);
        }
      }
      walked = await walkFrames(fh, size, from.fileOffset ?? 0, (meta, payload, hash) => {
        if (hash) head = Buffer.from(hash);
        if (meta.pos < from.pos && meta.pos + meta.length > from.pos) throw new SnapshotMismatch(`no frame of ${path} starts at byte ${from.pos}, where the snapshot ends`);
        if (meta.pos === from.pos && meta.firstOffset !== from.offset) throw new SnapshotMismatch(`the frame at byte ${from.pos} of ${path} starts at offset ${meta.firstOffset}, the snapshot ends at ${from.offset}`);
        if (meta.pos < from.pos) return;
        onFrame(meta, payload);
        replayed.frames++;
        replayed.records += meta.count;
      });
      if (walked.bad) {
        const damage = await findDamage(fh, path, size, walked.bad, walked.nextOffset);
        // A sealed changelog segment is never cut: it was whole before the next one began.
        if (damage || walked.bad.pos < from.pos || opts.sealed) {
          throw new ChangelogDamaged(damage ?? { path, pos: walked.bad.pos, reason: walked.bad.reason, size, fromOffset: walked.nextOffset, endOffset: from.offset });
        }
        await fh.truncate(walked.bad.pos);
        await fh.datasync();
      }
    } finally {
      await fh.close();
    }
    const report: RecoveryReport = { frames: replayed.frames, records: replayed.records, cutBytes: walked.bad ? walked.size - walked.bad.pos : 0, cutReason: walked.bad?.reason };
    // Reopen for positional writes (append mode ignores positions on Linux).
    const rw = await open(path, 'r+');
    return { log: new ChangelogFile(rw, path, walked.end, table, head), report };
  }

  /**
   * `asof repair`: checks the whole file and, unless `dryRun`, cuts it at the
   * first bad frame (damage or torn tail), fdatasync'd. Says exactly what was
   * (or would be) cut; `cut` is undefined when every frame is whole.
   */
  static async repair(path: string, opts: { dryRun?: boolean } = {}): Promise<RepairReport> {
    const fh = await open(path, 'r+');
    try {
      const { size } = await fh.stat();
      const walked = await walkFrames(fh, size, await firstOffsetIn(fh), () => undefined);
      const kept = { bytes: walked.end, frames: walked.frames, records: walked.nextOffset };
      if (!walked.bad) return { path, size, kept };
      const damage = await findDamage(fh, path, size, walked.bad, walked.nextOffset);
      const endOffset = damage?.endOffset ?? walked.nextOffset;
      const cut: RepairReport['cut'] = {
        pos: walked.bad.pos,
        bytes: size - walked.bad.pos,
        reason: walked.bad.reason,
        tornTail: !damage,
        fromOffset: walked.nextOffset,
        endOffset,
        records: endOffset - walked.nextOffset,
      };
      if (!opts.dryRun) {
        await fh.truncate(walked.bad.pos);
        await fh.datasync();
      }
      return { path, size, kept, cut, dryRun: opts.dryRun || undefined };
    } finally {
      await fh.close();
    }
  }

  get bytes(): number {
    return this.size;
  }

  /** The newest frame's chain hash (CHAIN_GENESIS while no version-2 frame exists). */
  get chainHead(): Buffer {
    return this.head;
  }

  /**
   * Writes frames at the end and waits for fdatasync. Returns their metadata.
   * A frame whose body exceeds maxFrameBytes() throws FrameTooLarge before
   * anything is written (the file is unchanged and takes appends as before).
   * If the write or the fdatasync fails, the file is cut back to its last
   * durable frame (truncate, fdatasync) before this throws AppendFailed: its
   * `restored` says whether that worked. Until it has, `restore` must succeed
   * before anything more is appended (a frame after bytes of unknown state
   * could be acknowledged and then lost, or replayed though it was refused).
   */
  async append(frames: NewFrame[]): Promise<FrameMeta[]> {
    if (this.unrestored) throw new AppendFailed(this.unrestored, false);
    // Start-up reads a longer frame as a short payload (a torn tail, or damage when frames follow): never write one.
    for (const f of frames) {
      const body = (f.count > 0 ? CHAIN_HASH_BYTES : 0) + f.payload.length;
      if (body > maxFrameBytes()) throw new FrameTooLarge(body, maxFrameBytes());
    }
    const bufs: Uint8Array[] = [];
    const metas: FrameMeta[] = [];
    let pos = this.size;
    let head = this.head;
    for (const f of frames) {
      const chained = f.count > 0;
      if (chained) head = chainHash(head, this.table, f, f.payload);
      const header = encodeHeader(f, chained ? head : undefined);
      bufs.push(header, f.payload);
      const length = header.length + f.payload.length;
      metas.push({ firstOffset: f.firstOffset, count: f.count, schemaVersion: f.schemaVersion, commitTime: f.commitTime, pos, length });
      pos += length;
    }
    let written = 0;
    const total = pos - this.size;
    try {
      // writev may write partially; loop until everything is down.
      while (written < total) {
        const { bytesWritten } = await this.ops.writev(this.path, this.fh, sliceBuffers(bufs, written), this.size + written);
        written += bytesWritten;
      }
      await this.ops.datasync(this.path, this.fh);
    } catch (e) {
      this.unrestored = e as Error;
      const restored = await this.restore().then(
        () => true,
        () => false,
      );
      throw new AppendFailed(e as Error, restored);
    }
    this.size = pos;
    this.head = head;
    return metas;
  }

  /**
   * After a failed append: cuts the file back to its last durable frame and
   * fdatasyncs that, so neither the refused frame nor a part of it can come
   * back at the next start. Resolves at once when nothing is pending.
   */
  async restore(): Promise<void> {
    if (!this.unrestored) return;
    await this.ops.truncate(this.path, this.fh, this.size);
    await this.ops.datasync(this.path, this.fh);
    this.unrestored = undefined;
  }

  /** Whether a failed append left bytes after the last durable frame that `restore` has not cut yet. */
  get needsRestore(): boolean {
    return this.unrestored !== undefined;
  }

  /**
   * A frame's payload, its checksum checked again: damage after recovery is
   * an error (damagedOnRead: ASOF_TABLE_UNAVAILABLE), never a wrong answer.
   */
  async readPayload(meta: FrameMeta): Promise<Uint8Array> {
    const raw = await this.readFrame(meta);
    if (!raw.crcOk) throw this.damaged(meta, 'fails its checksum');
    return raw.payload;
  }

  /** The error of a frame found damaged on a read (frame-walk.ts), naming this file as `tables/<table>/<file>`. */
  private damaged(meta: FrameMeta, reason: string): AsofError {
    return damagedOnRead(this.table, join('tables', this.table, basename(this.path)), meta, reason);
  }

  /** A frame as stored (header fields, stored chain hash, payload), its checksum checked but not enforced. */
  async readFrame(meta: FrameMeta): Promise<RawFrame> {
    const buf = Buffer.allocUnsafe(meta.length);
    const { bytesRead } = await this.fh.read(buf, 0, meta.length, meta.pos);
    if (bytesRead !== meta.length) throw this.damaged(meta, 'is cut short (the file ends within it)');
    const body = buf.subarray(HEADER_BYTES);
    const crcOk = buf.readUInt32LE(0) === FRAME_MAGIC && crc32(body, crc32(buf.subarray(16, HEADER_BYTES))) === buf.readUInt32LE(12);
    const version = buf.readUInt8(4);
    return { ...meta, version, crcOk, ...splitBody(version, body) };
  }

  /** A whole frame as stored (header, chain hash, payload), its checksum checked again: what the cold tier keeps. */
  async readBytes(meta: FrameMeta): Promise<Buffer> {
    return (await this.readRun([meta]))[0];
  }

  /**
   * Whole frames (ascending positions, `base` added to this file's), each
   * checksum checked (unless `check` is false), read with one system call over the span from the first
   * to the end of the last (bytes between them are read and dropped). Each is
   * a view into that one buffer: `into` when it is large enough (a caller
   * that reuses its buffers), else a new one.
   */
  async readRun(metas: FrameMeta[], base = 0, check = true, into?: Buffer): Promise<Buffer[]> {
    const start = metas[0].pos - base;
    const last = metas[metas.length - 1];
    const span = last.pos - base + last.length - start;
    const buf = into !== undefined && into.length >= span ? into.subarray(0, span) : Buffer.allocUnsafe(span);
    const { bytesRead } = await this.fh.read(buf, 0, span, start);
    if (bytesRead !== span) {
      // The first frame not wholly read: the file ends within it.
      const cut = metas.find((m) => m.pos - base + m.length > start + bytesRead)!;
      throw this.damaged({ ...cut, pos: cut.pos - base }, 'is cut short (the file ends within it)');
    }
    return metas.map((m) => {
      const at = m.pos - base - start;
      const bytes = buf.subarray(at, at + m.length);
      if (check && !frameOk(bytes)) throw this.damaged({ ...m, pos: m.pos - base }, 'fails its checksum');
      return bytes;
    });
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
