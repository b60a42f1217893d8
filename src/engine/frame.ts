/**
 * The changelog's frame format (layout in log.ts's header comment): header
 * encoding, the SHA-256 chain hash, and decoding of one stored frame.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { AsofError } from '../errors.js';


export const FRAME_MAGIC = 0x464f5341;
export const HEADER_BYTES = 40;
export const FORMAT_VERSION = 2;
/** Bytes of the chain hash at the start of a version-2 frame's body. */
export const CHAIN_HASH_BYTES = 32;
/** The previous hash of a table's first chained frame. */
export const CHAIN_GENESIS: Buffer = Buffer.alloc(CHAIN_HASH_BYTES);
const CHAIN_DOMAIN = Buffer.from('asof.changelog.frame.v2\0');
/** Largest frame body (chain hash + payload) accepted when reading, so a corrupt length is not believed; appending refuses a larger one. */
export const MAX_FRAME_BYTES = 1 << 30;

let frameLimit = MAX_FRAME_BYTES;
/**
 * The frame body limit reading and appending both use: MAX_FRAME_BYTES, one
 * value for both, so no frame is ever written (and acknowledged) that start-up
 * would read as a short payload and cut or refuse.
 */
export const maxFrameBytes = (): number => frameLimit;
/** Tests only: a small limit, so a frame over it need not be 1 GiB (undefined puts MAX_FRAME_BYTES back). */
export function setMaxFrameBytesForTests(bytes?: number): void {
  frameLimit = bytes ?? MAX_FRAME_BYTES;
}

/** A frame whose body would exceed maxFrameBytes(): thrown before anything is written. */
export class FrameTooLarge extends Error {
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`a changelog frame of ${bytes} body bytes exceeds the limit of ${limit}`);
  }
}

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

/** Whether `buf` is one whole frame (magic, body length) whose checksum holds: all a read checks before using a frame's bytes. */
export function frameOk(buf: Buffer): boolean {
  return buf.length >= HEADER_BYTES && buf.readUInt32LE(0) === FRAME_MAGIC && buf.readUInt32LE(8) === buf.length - HEADER_BYTES && crc32(buf.subarray(HEADER_BYTES), crc32(buf.subarray(16, HEADER_BYTES))) === buf.readUInt32LE(12);
}

/** One whole frame's bytes (as stored, e.g. kept by the cold tier) → the frame, its checksum reported (not enforced); `pos` is recorded in it. */
export function rawFrameOf(bytes: Uint8Array, pos: number): RawFrame {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const body = buf.subarray(HEADER_BYTES);
  const crcOk = frameOk(buf);
  const version = buf.length >= HEADER_BYTES ? buf.readUInt8(4) : 0;
  const meta = crcOk
    ? { firstOffset: Number(buf.readBigInt64LE(16)), count: buf.readUInt32LE(24), schemaVersion: buf.readUInt32LE(28), commitTime: buf.readDoubleLE(32), pos, length: buf.length }
    : { firstOffset: NaN, count: 0, schemaVersion: 0, commitTime: NaN, pos, length: buf.length };
  return { ...meta, version, crcOk, ...splitBody(version, body) };
}

/** As rawFrameOf, but a frame that is not whole or fails its checksum throws. */
export function parseFrame(bytes: Uint8Array, pos: number, where: string): RawFrame {
  const f = rawFrameOf(bytes, pos);
  // Not retriable (a retry reads the same bytes): 503 ASOF_TABLE_UNAVAILABLE, as a damaged hot frame is (frame-walk.ts).
  // Its header is not trusted either, so no offsets: `pos` is where it stood in its changelog file.
  if (!f.crcOk) {
    const reason = 'fails its checksum';
    throw new AsofError('ASOF_TABLE_UNAVAILABLE', `changelog frame at byte ${pos} of ${where} ${reason}: it was damaged after it was written, and its records cannot be served`, { where, pos, reason });
  }
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
