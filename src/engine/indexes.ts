/**
 * The two in-memory indexes of a table's changelog, and their binary form in
 * snapshots (so start-up loads them instead of re-reading the whole log).
 *
 * FrameIndex: one entry per frame, in typed arrays (36 bytes a frame; an object
 * per frame cost about twice that, and a frame may hold a single record).
 * KeyIndex (key-index.ts): key → the offsets of its records, ascending.
 */
import type { FrameMeta } from './log.js';

export { KeyIndex, numericIndexKey, type IndexKey } from './key-index.js';

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

  /** The offset just after frame `i`'s records (no FrameMeta made: key reads ask this of every frame they read). */
  endOffsetOf(i: number): number {
    return this.firstOffset[i] + this.count[i];
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
