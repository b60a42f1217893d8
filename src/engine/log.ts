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

/**
 * Header and chain hash of a version-2 frame (the bytes before its payload).
 * Without `hash`, a version-1 header: what a frame of no records (one that
 * only holds idempotency keys, idempotency.ts) is written as, so it is no link
 * in the chain: the chain links exactly the frames that hold records, and the
 * head at any offset is the hash of the frame that wrote it.
 */
export function encodeHeader(f: NewFrame, hash?: Uint8Array): Buffer {
  const hashBytes = hash ? CHAIN_HASH_BYTES : 0;
  const h = Buffer.alloc(HEADER_BYTES + hashBytes);
  h.writeUInt32LE(FRAME_MAGIC, 0);
  h.writeUInt8(hash ? FORMAT_VERSION : 1, 4);
  h.writeUInt32LE(hashBytes + f.payload.length, 8);
  h.writeBigInt64LE(BigInt(f.firstOffset), 16);
  h.writeUInt32LE(f.count, 24);
  h.writeUInt32LE(f.schemaVersion, 28);
  h.writeDoubleLE(f.commitTime, 32);
  if (hash) h.set(hash, HEADER_BYTES);
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
  /** Chain hash of the frame before `pos` when it is not in this file (the previous changelog segment's head). */
  head?: Buffer;
  /** Offset the file's first frame must start at (a changelog segment after the first); default 0. */
  fileOffset?: number;
}

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
   * If the write or the fdatasync fails, the file is cut back to its last
   * durable frame (truncate, fdatasync) before this throws AppendFailed: its
   * `restored` says whether that worked. Until it has, `restore` must succeed
   * before anything more is appended (a frame after bytes of unknown state
   * could be acknowledged and then lost, or replayed though it was refused).
   */
  async append(frames: NewFrame[]): Promise<FrameMeta[]> {
    if (this.unrestored) throw new AppendFailed(this.unrestored, false);
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

  /** A whole frame as stored (header, chain hash, payload), its checksum checked again: what the cold tier keeps. */
  async readBytes(meta: FrameMeta): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(meta.length);
    const { bytesRead } = await this.fh.read(buf, 0, meta.length, meta.pos);
    if (bytesRead !== meta.length) throw new Error(`short read of frame at byte ${meta.pos} in ${this.path}`);
    parseFrame(buf, meta.pos, this.path);
    return buf;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** One whole frame's bytes (as stored, e.g. kept by the cold tier) → the frame, its checksum reported (not enforced); `pos` is recorded in it. */
export function rawFrameOf(bytes: Uint8Array, pos: number): RawFrame {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const body = buf.subarray(HEADER_BYTES);
  const crcOk = buf.length >= HEADER_BYTES && buf.readUInt32LE(0) === FRAME_MAGIC && buf.readUInt32LE(8) === body.length && crc32(body, crc32(buf.subarray(16, HEADER_BYTES))) === buf.readUInt32LE(12);
  const version = buf.length >= HEADER_BYTES ? buf.readUInt8(4) : 0;
  const meta = crcOk
    ? { firstOffset: Number(buf.readBigInt64LE(16)), count: buf.readUInt32LE(24), schemaVersion: buf.readUInt32LE(28), commitTime: buf.readDoubleLE(32), pos, length: buf.length }
    : { firstOffset: NaN, count: 0, schemaVersion: 0, commitTime: NaN, pos, length: buf.length };
  return { ...meta, version, crcOk, ...splitBody(version, body) };
}

/** As rawFrameOf, but a frame that is not whole or fails its checksum throws. */
export function parseFrame(bytes: Uint8Array, pos: number, where: string): RawFrame {
  const f = rawFrameOf(bytes, pos);
  if (!f.crcOk) throw new Error(`changelog frame at byte ${pos} of ${where} fails its checksum: it was damaged after it was written`);
  return f;
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

/** What walking a file's frames found. */
interface Walk {
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
async function walkFrames(fh: FileHandle, size: number, firstOffset: number, onFrame: (meta: FrameMeta, payload: Uint8Array, hash: Uint8Array | null) => void): Promise<Walk> {
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
    if (len > MAX_FRAME_BYTES || !(await need(pos + HEADER_BYTES + len))) return done('short payload');
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
  if (h.readUInt32LE(0) !== FRAME_MAGIC || !knownHeader(h) || len > MAX_FRAME_BYTES || pos + HEADER_BYTES + len > size) return undefined;
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
async function findDamage(fh: FileHandle, path: string, size: number, bad: { pos: number; reason: string }, fromOffset: number): Promise<Damage | undefined> {
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
async function firstOffsetIn(fh: FileHandle): Promise<number> {
  const h = Buffer.alloc(HEADER_BYTES);
  const { bytesRead } = await fh.read(h, 0, HEADER_BYTES, 0);
  return bytesRead === HEADER_BYTES && h.readUInt32LE(0) === FRAME_MAGIC ? Number(h.readBigInt64LE(16)) : 0;
}
