/**
 * The key index: key → the offsets of its records, ascending, for a table with
 * key columns (every record of such a table is in it, except a log record
 * whose key is null, which belongs to no key: schema.keyOf), and its binary
 * form in snapshots.
 *
 * Offsets live in typed arrays, never in a JS array per key: an array per key,
 * grown by push, was new garbage on every write that survived (the index only
 * grows), so each young-generation collection copied it and each full one
 * marked it (bench:ingest's 100,000 keys: 55-220 µs per 1,000 adds, collections
 * included, session 15). Offsets loaded from a snapshot stay in one typed
 * array (each key a range of it). Offsets added since go into blocks in an
 * arena of typed chunks: each key's newest block, and each block the one
 * before it; a key's next block is twice the last (up to MAX_BLOCK), so a key
 * of n offsets has about log2(n) blocks plus n / MAX_BLOCK.
 */

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

/** Most offsets in one block. */
const MAX_BLOCK = 4096;
/** A block's address is its chunk's number times this, plus its position in the chunk. */
const SPAN = 1 << 20;
/** Slots before a block's offsets: the address of the key's block before it (-1 for its first), and its capacity. */
const BLOCK_HEAD = 2;

export class KeyIndex {
  /** Key → its id: ids follow first appearance, loaded keys first. */
  private readonly ids = new Map<IndexKey, number>();
  /** Id → key. */
  private readonly keys: IndexKey[] = [];
  /** Keys loaded from a snapshot (ids below this have a range of the loaded offsets). */
  private loaded = 0;
  private baseStart = new Uint32Array(0);
  private baseCount = new Uint32Array(0);
  private baseOffsets = new Float64Array(0);
  /** Per id, offsets added since the load: the newest block's address, how many it holds, its capacity (0: no block). */
  private head = new Float64Array(64);
  private fill = new Uint32Array(64);
  private cap = new Uint32Array(64);
  /** The arena: chunks of 8,192 slots, each twice the last up to SPAN; blocks never cross a chunk. */
  private readonly chunks: Float64Array[] = [];
  private chunkFill = 0;
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
    let id = this.ids.get(key);
    if (id === undefined) id = this.newId(key);
    if (this.fill[id] === this.cap[id]) this.newBlock(id);
    const addr = this.head[id];
    const c = (addr / SPAN) | 0;
    this.chunks[c][addr - c * SPAN + BLOCK_HEAD + this.fill[id]++] = offset;
    this.entries++;
  }

  private newId(key: IndexKey): number {
    const id = this.keys.length;
    this.ids.set(key, id);
    this.keys.push(key);
    if (id === this.cap.length) {
      const grow = <T extends Float64Array | Uint32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(2 * a.length);
        b.set(a);
        return b;
      };
      this.head = grow(this.head);
      this.fill = grow(this.fill);
      this.cap = grow(this.cap);
    }
    return id;
  }

  private newBlock(id: number): void {
    const cap = this.cap[id] === 0 ? 1 : Math.min(2 * this.cap[id], MAX_BLOCK);
    const need = BLOCK_HEAD + cap;
    let c = this.chunks.length - 1;
    if (c < 0 || this.chunkFill + need > this.chunks[c].length) {
      this.chunks.push(new Float64Array(8192 << Math.min(this.chunks.length, 7)));
      this.chunkFill = 0;
      c++;
    }
    const chunk = this.chunks[c];
    const at = this.chunkFill;
    chunk[at] = this.cap[id] === 0 ? -1 : this.head[id];
    chunk[at + 1] = cap;
    this.chunkFill += need;
    this.head[id] = c * SPAN + at;
    this.fill[id] = 0;
    this.cap[id] = cap;
  }

  /** The addresses of the blocks of offsets added to key `id` since the load, oldest first. */
  private blocksOf(id: number): number[] {
    const blocks: number[] = [];
    if (this.cap[id] === 0) return blocks;
    for (let addr = this.head[id]; addr >= 0; ) {
      blocks.push(addr);
      const c = (addr / SPAN) | 0;
      addr = this.chunks[c][addr - c * SPAN];
    }
    return blocks.reverse();
  }

  /** Where block `addr`'s offsets are: its chunk, the first one's index there, and how many (the key's newest block holds `fill`). */
  private blockAt(id: number, addr: number, newest: boolean): { chunk: Float64Array; from: number; n: number } {
    const c = (addr / SPAN) | 0;
    const chunk = this.chunks[c];
    const at = addr - c * SPAN;
    return { chunk, from: at + BLOCK_HEAD, n: newest ? this.fill[id] : chunk[at + 1] };
  }

  /** The key's newest offset, -1 when it has none. `key` is canonical, or its number in a numeric index. */
  lastOffset(key: IndexKey): number {
    if (this.numeric && typeof key === 'string') key = this.mapKey(key);
    const id = this.ids.get(key);
    if (id === undefined) return -1;
    if (this.cap[id] > 0) {
      const addr = this.head[id];
      const c = (addr / SPAN) | 0;
      return this.chunks[c][addr - c * SPAN + BLOCK_HEAD + this.fill[id] - 1];
    }
    return id >= this.loaded || this.baseCount[id] === 0 ? -1 : this.baseOffsets[this.baseStart[id] + this.baseCount[id] - 1];
  }

  /** The key's offsets, ascending, in a new array. */
  offsetsOf(key: string): number[] {
    const id = this.ids.get(this.mapKey(key));
    if (id === undefined) return [];
    const out: number[] = [];
    if (id < this.loaded) for (let j = this.baseStart[id]; j < this.baseStart[id] + this.baseCount[id]; j++) out.push(this.baseOffsets[j]);
    const blocks = this.blocksOf(id);
    for (let b = 0; b < blocks.length; b++) {
      const { chunk, from, n } = this.blockAt(id, blocks[b], b === blocks.length - 1);
      for (let j = from; j < from + n; j++) out.push(chunk[j]);
    }
    return out;
  }

  /**
   * The key's offsets in [from, to), ascending, at most the first `limit` of
   * them, in a new array holding only those: what a key read reads. Taking
   * offsetsOf and slicing it copied a loaded key's whole list first (after a
   * restart), twice per replay of bench:audit's entities (10,000 and 20,000
   * offsets), besides the slice.
   */
  offsetsIn(key: string, from: number, to: number, limit = Infinity): number[] {
    const out: number[] = [];
    const id = this.ids.get(this.mapKey(key));
    if (id === undefined || limit <= 0) return out;
    // Loaded offsets all precede added ones (offsets are added ascending per key).
    if (id < this.loaded) {
      const end = this.baseStart[id] + this.baseCount[id];
      for (let j = lowerBound(this.baseOffsets, from, this.baseStart[id], end); j < end && this.baseOffsets[j] < to; j++) {
        out.push(this.baseOffsets[j]);
        if (out.length >= limit) return out;
      }
    }
    const blocks = this.blocksOf(id);
    for (let b = 0; b < blocks.length; b++) {
      const { chunk, from: lo, n } = this.blockAt(id, blocks[b], b === blocks.length - 1);
      if (n === 0 || chunk[lo + n - 1] < from) continue;
      for (let j = lowerBound(chunk, from, lo, lo + n); j < lo + n; j++) {
        if (chunk[j] >= to) return out;
        out.push(chunk[j]);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  /**
   * u32 key count, u32 key-bytes length, the keys' UTF-8 bytes (numbers as their
   * canonical text), u32 end of each key, u32 offset count of each key, then each key's offsets as varint deltas
   * (LEB128; the first from 0). Deltas are small (a key's records are near each
   * other), so this is 1-3 bytes an offset instead of 8: the key index is the
   * largest part of a log table's snapshot, rewritten at every snapshot.
   */
  serialize(): Buffer {
    const k = this.keys.length;
    const keys = this.keys.map(String);
    const blob = Buffer.from(keys.join(''), 'utf8');
    const ascii = blob.length === keys.reduce((n, s) => n + s.length, 0);
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
    // Varints below 2^31 by bit operations, in plain loops over typed arrays: a callback per offset cost twice as much.
    for (let i = 0; i < k; i++) {
      end += ascii ? keys[i].length : Buffer.byteLength(keys[i], 'utf8');
      ends[i] = end;
      let prev = 0;
      let count = 0;
      if (i < this.loaded) {
        const start = this.baseStart[i];
        count = this.baseCount[i];
        reserve(count);
        for (let j = start; j < start + count; j++) {
          p = putVarint(out, p, this.baseOffsets[j] - prev);
          prev = this.baseOffsets[j];
        }
      }
      if (this.cap[i] > 0) {
        const blocks = this.blocksOf(i);
        for (let b = 0; b < blocks.length; b++) {
          const { chunk, from, n } = this.blockAt(i, blocks[b], b === blocks.length - 1);
          reserve(n);
          for (let j = from; j < from + n; j++) {
            p = putVarint(out, p, chunk[j] - prev);
            prev = chunk[j];
          }
          count += n;
        }
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
      idx.newId(idx.mapKey(ascii ? text.slice(start, ends[i]) : buf.toString('utf8', 8 + start, 8 + ends[i])));
      start = ends[i];
    }
    idx.loaded = k;
    idx.entries = total;
    return idx;
  }
}

/** The first index in [lo, hi) of ascending `xs` whose value is >= `x` (hi when none). */
function lowerBound(xs: ArrayLike<number>, x: number, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
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
