/**
 * The two in-memory indexes of a table's changelog, and their binary form in
 * snapshots (so start-up loads them instead of re-reading the whole log).
 *
 * FrameIndex: one entry per frame, in typed arrays (36 bytes a frame; an object
 * per frame cost about twice that, and a frame may hold a single record).
 * KeyIndex: key → the offsets of its records, ascending.
 */
import type { FrameMeta } from './log.js';

export class FrameIndex {
  private firstOffset = new Float64Array(1024);
  private pos = new Float64Array(1024);
  private commitTime = new Float64Array(1024);
  private count = new Uint32Array(1024);
  private length = new Uint32Array(1024);
  private schemaVersion = new Uint32Array(1024);
  size = 0;

  push(m: FrameMeta): void {
    if (this.size === this.firstOffset.length) this.grow(this.size * 2);
    const i = this.size++;
    this.firstOffset[i] = m.firstOffset;
    this.pos[i] = m.pos;
    this.commitTime[i] = m.commitTime;
    this.count[i] = m.count;
    this.length[i] = m.length;
    this.schemaVersion[i] = m.schemaVersion;
  }

  get(i: number): FrameMeta {
    return { firstOffset: this.firstOffset[i], count: this.count[i], schemaVersion: this.schemaVersion[i], commitTime: this.commitTime[i], pos: this.pos[i], length: this.length[i] };
  }

  /** Byte position just after the last frame (0 when empty). */
  get endPos(): number {
    return this.size ? this.pos[this.size - 1] + this.length[this.size - 1] : 0;
  }

  /** Commit time (epoch ms) of the record at `offset` (within [0, end)). */
  commitTimeOf(offset: number): number {
    return this.commitTime[this.find(offset)];
  }

  /** First offset of the first frame at or after global byte position `pos`; `end` when there is none. */
  offsetAtPos(pos: number, end: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.pos[mid] < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.size ? this.firstOffset[lo] : end;
  }

  /** Index of the frame holding `offset` (offset within [0, end)). */
  find(offset: number): number {
    let lo = 0;
    let hi = this.size - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firstOffset[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  private grow(cap: number): void {
    const g = <T extends Float64Array | Uint32Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(cap);
      b.set(a.subarray(0, this.size));
      return b;
    };
    this.firstOffset = g(this.firstOffset);
    this.pos = g(this.pos);
    this.commitTime = g(this.commitTime);
    this.count = g(this.count);
    this.length = g(this.length);
    this.schemaVersion = g(this.schemaVersion);
  }

  /** u32 frame count, then each column's values for frames [0, size). */
  serialize(): Buffer {
    const n = this.size;
    const out = Buffer.alloc(8 + n * 36);
    out.writeUInt32LE(n, 0);
    let at = 8;
    for (const a of [this.firstOffset, this.pos, this.commitTime, this.count, this.length, this.schemaVersion]) {
      const bytes = new Uint8Array(a.buffer, a.byteOffset, n * a.BYTES_PER_ELEMENT);
      out.set(bytes, at);
      at += bytes.length;
    }
    return out;
  }

  static deserialize(buf: Buffer): FrameIndex {
    const n = buf.readUInt32LE(0);
    if (buf.length !== 8 + n * 36) throw new Error(`frame index: ${buf.length} bytes for ${n} frames`);
    const f = new FrameIndex();
    f.grow(Math.max(1024, n));
    let at = buf.byteOffset + 8;
    // Copy out: the buffer's offset need not be aligned for typed-array views.
    const take = <T extends Float64Array | Uint32Array>(target: T): void => {
      const bytes = target.BYTES_PER_ELEMENT * n;
      new Uint8Array(target.buffer, 0, bytes).set(new Uint8Array(buf.buffer, at, bytes));
      at += bytes;
    };
    take(f.firstOffset);
    take(f.pos);
    take(f.commitTime);
    take(f.count);
    take(f.length);
    take(f.schemaVersion);
    f.size = n;
    return f;
  }
}

/** A canonical key (schema.keyOf), or, in a numeric index, the key's number. */
export type IndexKey = string | number;

/**
 * A canonical key string → its key in a numeric index (and in the embedded
 * online store): the number when the text is a canonical safe integer
 * (`-?[1-9][0-9]*` or `0`), else the string itself. Checked by hand: a
 * `String(Number(key)) === key` check would make a string on every lookup.
 */
export function numericIndexKey(key: string): IndexKey {
  const n = key.length;
  if (n === 0 || n > 17) return key;
  let i = key.charCodeAt(0) === 45 ? 1 : 0; // '-'
  if (i === n || n - i > 16) return key;
  const first = key.charCodeAt(i);
  // A leading zero is canonical only as "0" itself ("-0" is not: it reads back as "0").
  if (first === 48) return n === 1 ? 0 : key;
  let v = 0;
  for (; i < n; i++) {
    const d = key.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return key;
    v = v * 10 + d;
  }
  if (v > Number.MAX_SAFE_INTEGER) return key;
  return key.charCodeAt(0) === 45 ? -v : v;
}

/**
 * key → offsets, ascending. Offsets loaded from a snapshot stay in one typed
 * array (each key a range of it); only offsets added since are kept per key.
 * Building a JS array per key on load was most of the start-up time of a large
 * keyed table, and its garbage. A numeric index (a table with one int32,
 * int64 or timestamp key column, see TableSchema.numericKey) keys its maps by
 * the number itself: no string per key and cheaper lookups (keys beyond 2^53
 * stay strings). A key first seen after the load is in `added` only: one map
 * entry, not two, for each of the million keys of a pk table.
 */
export class KeyIndex {
  /** Loaded keys → their index in the loaded ranges. */
  private readonly ids = new Map<IndexKey, number>();
  private baseStart = new Uint32Array(0);
  private baseCount = new Uint32Array(0);
  private baseOffsets = new Float64Array(0);
  /** Offsets added since the load. A lone offset is kept as a number: most keys of a log table appear once. */
  private readonly added = new Map<IndexKey, number | number[]>();
  /** Offsets held, for snapshot cadence. */
  entries = 0;

  constructor(readonly numeric = false) {}

  /** The map key of a canonical key string. */
  private mapKey(key: string): IndexKey {
    return this.numeric ? numericIndexKey(key) : key;
  }

  /** Adds an offset (ascending per key). `key` is canonical, or its number in a numeric index. */
  add(key: IndexKey, offset: number): void {
    if (this.numeric && typeof key === 'string') key = this.mapKey(key);
    const cur = this.added.get(key);
    if (cur === undefined) this.added.set(key, offset);
    else if (typeof cur === 'number') this.added.set(key, [cur, offset]);
    else cur.push(offset);
    this.entries++;
  }

  /** The key's newest offset, -1 when it has none. `key` is canonical, or its number in a numeric index. */
  lastOffset(key: IndexKey): number {
    if (this.numeric && typeof key === 'string') key = this.mapKey(key);
    const more = this.added.get(key);
    if (more !== undefined) return typeof more === 'number' ? more : more[more.length - 1];
    const id = this.ids.get(key);
    return id === undefined || this.baseCount[id] === 0 ? -1 : this.baseOffsets[this.baseStart[id] + this.baseCount[id] - 1];
  }

  /** The key's offsets, ascending. Callers must not change the array. */
  offsetsOf(key: string): readonly number[] {
    const k = this.mapKey(key);
    const id = this.ids.get(k);
    const more = this.added.get(k);
    const tail = more === undefined ? [] : typeof more === 'number' ? [more] : more;
    if (id === undefined) return tail;
    const base = this.baseOffsets.subarray(this.baseStart[id], this.baseStart[id] + this.baseCount[id]);
    return tail.length ? [...base, ...tail] : Array.from(base);
  }

  /**
   * u32 key count, u32 key-bytes length, the keys' UTF-8 bytes (numbers as their
   * canonical text), u32 end of each key, u32 offset count of each key, then each key's offsets as varint deltas
   * (LEB128; the first from 0). Deltas are small (a key's records are near each
   * other), so this is 1-3 bytes an offset instead of 8: the key index is the
   * largest part of a log table's snapshot, rewritten at every snapshot.
   */
  serialize(): Buffer {
    // Loaded keys, then keys first seen since (the order keys first appeared).
    const mapKeys = [...this.ids.keys()];
    for (const key of this.added.keys()) if (!this.ids.has(key)) mapKeys.push(key);
    const keys = mapKeys.map(String);
    const k = keys.length;
    const blob = Buffer.from(keys.join(''), 'utf8');
    const ends = new Uint32Array(k);
    const counts = new Uint32Array(k);
    // Sized for ~2 bytes an offset and grown if needed (a varint below 2^53 takes at most 8):
    // sizing for the worst case allocated 8 bytes an offset, which made V8 collect early.
    let out = Buffer.allocUnsafe(this.entries * 2 + 64);
    let p = 0;
    /** Room for n more varints. */
    const reserve = (n: number): void => {
      if (p + 8 * n <= out.length) return;
      const bigger = Buffer.allocUnsafe(Math.max(out.length * 2, p + 8 * n));
      out.copy(bigger, 0, 0, p);
      out = bigger;
    };
    let end = 0;
    const ascii = blob.length === keys.reduce((n, s) => n + s.length, 0);
    // Loaded offsets (a typed array) and added ones (a JS array) each in their own loop, varints below 2^31
    // by bit operations, and a key's lone added offset written as it is: one loop over both kinds of list
    // by division, and an array made for each lone offset, took 1.6x the CPU (bench:ingest's key
    // pattern, 6M loaded and 2M added offsets, in process).
    for (let i = 0; i < k; i++) {
      const key = keys[i];
      end += ascii ? key.length : Buffer.byteLength(key, 'utf8');
      ends[i] = end;
      const id = this.ids.get(mapKeys[i]);
      const more = this.added.get(mapKeys[i]);
      let prev = 0;
      let count = 0;
      if (id !== undefined) {
        const start = this.baseStart[id];
        count = this.baseCount[id];
        reserve(count);
        for (let j = start; j < start + count; j++) {
          p = putVarint(out, p, this.baseOffsets[j] - prev);
          prev = this.baseOffsets[j];
        }
      }
      if (typeof more === 'number') {
        reserve(1);
        p = putVarint(out, p, more - prev);
        count++;
      } else if (more !== undefined) {
        reserve(more.length);
        for (let j = 0; j < more.length; j++) {
          p = putVarint(out, p, more[j] - prev);
          prev = more[j];
        }
        count += more.length;
      }
      counts[i] = count;
    }
    const head = Buffer.alloc(8);
    head.writeUInt32LE(k, 0);
    head.writeUInt32LE(blob.length, 4);
    return Buffer.concat([head, blob, u8(ends), u8(counts), out.subarray(0, p)]);
  }

  static deserialize(buf: Buffer, numeric = false): KeyIndex {
    const idx = new KeyIndex(numeric);
    const k = buf.readUInt32LE(0);
    const blobLen = buf.readUInt32LE(4);
    let at = 8;
    const text = buf.toString('utf8', at, at + blobLen);
    const ascii = text.length === blobLen;
    at += blobLen;
    const ends = copyOut(buf, at, Uint32Array, k);
    at += k * 4;
    const counts = copyOut(buf, at, Uint32Array, k);
    at += k * 4;
    const starts = new Uint32Array(k);
    let total = 0;
    for (let i = 0; i < k; i++) {
      starts[i] = total;
      total += counts[i];
    }
    const offsets = new Float64Array(total);
    let o = 0;
    for (let i = 0; i < k; i++) {
      let prev = 0;
      for (let c = counts[i]; c > 0; c--) {
        let v = 0;
        let mul = 1;
        let b: number;
        do {
          if (at >= buf.length) throw new Error('key index: offsets end early');
          b = buf[at++];
          v += (b & 127) * mul;
          mul *= 128;
        } while (b & 128);
        prev += v;
        offsets[o++] = prev;
      }
    }
    if (at !== buf.length) throw new Error(`key index: ${buf.length - at} bytes after the last offset`);
    idx.baseOffsets = offsets;
    idx.baseStart = starts;
    idx.baseCount = counts;
    let start = 0;
    for (let i = 0; i < k; i++) {
      idx.ids.set(idx.mapKey(ascii ? text.slice(start, ends[i]) : buf.toString('utf8', 8 + start, 8 + ends[i])), i);
      start = ends[i];
    }
    idx.entries = total;
    return idx;
  }
}

const u8 = (a: Uint32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Writes v (a non-negative safe integer) as a LEB128 varint at p (room checked by the caller); returns the position after it. */
function putVarint(out: Buffer, p: number, v: number): number {
  // Below 2^31 by bit operations; larger deltas (rare) by division.
  while (v >= 2147483648) {
    out[p++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  while (v >= 128) {
    out[p++] = (v & 127) | 128;
    v >>>= 7;
  }
  out[p++] = v;
  return p;
}

function copyOut<T extends Uint32Array | Float64Array>(buf: Buffer, at: number, Ctor: new (n: number) => T, n: number): T {
  const out = new Ctor(n);
  new Uint8Array(out.buffer).set(buf.subarray(at, at + n * out.BYTES_PER_ELEMENT));
  return out;
}
