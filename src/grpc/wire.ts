/**
 * Protocol buffers wire format written by hand, for the online answers:
 * those are the hot path of the gRPC server, and writing their bytes
 * straight from evaluated values costs a fraction of building message
 * objects for the generated encoder (online-wire.ts has the figures). Only
 * what the answers use is here; every message is read by the generated codecs.
 *
 * Encoding (protobuf spec): a field is a varint tag `(number << 3) | wire
 * type` then its value; wire types 0 varint, 1 fixed 64 bits (double), 2
 * length-delimited (string, bytes, message, packed repeated), 5 fixed 32 bits
 * (float). int32 and int64 are varints of the 64-bit two's complement (so a
 * negative value takes 10 bytes). A message is the concatenation of its fields.
 */

export const VARINT = 0;
export const FIXED64 = 1;
export const LEN = 2;
export const FIXED32 = 5;

export const tagOf = (field: number, wire: number): number => (field << 3) | wire;

const TWO_32 = 4294967296;

/**
 * Writes one message into a buffer reused from call to call (callers copy
 * the bytes out with `finish` before writing the next). Nested messages are
 * written in place: `begin` reserves one byte for the length, `end` fills it,
 * moving the body along in the rare case the length needs more.
 */
export class ProtoWriter {
  buf: Buffer;
  pos = 0;

  constructor(private readonly size = 16_384) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Starts a new message; a buffer grown past 1 MiB by a large answer is let go rather than kept for good. */
  reset(): this {
    this.pos = 0;
    if (this.buf.length > 1 << 20) this.buf = Buffer.allocUnsafe(this.size);
    return this;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** A varint of 0 <= v < 2^32 (tags, lengths, enum numbers, non-negative int32). */
  uint32(v: number): void {
    this.ensure(5);
    const b = this.buf;
    let p = this.pos;
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  /** A varint of the 64-bit two's complement given as its low and high 32 bits (unsigned). */
  private varint64(lo: number, hi: number): void {
    this.ensure(10);
    const b = this.buf;
    let p = this.pos;
    while (hi) {
      b[p++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 127) {
      b[p++] = (lo & 127) | 128;
      lo >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  int32(v: number): void {
    if (v >= 0) this.uint32(v);
    else this.varint64(v >>> 0, 0xffffffff);
  }

  /** An int64 given as an integer number, a decimal string (beyond 2^53) or a bigint. */
  int64(v: number | string | bigint): void {
    if (typeof v === 'number') {
      if (v >= 0 && v < TWO_32) return this.uint32(v);
      const lo = v >>> 0;
      this.varint64(lo, ((v - lo) / TWO_32) >>> 0);
      return;
    }
    const b = BigInt.asUintN(64, BigInt(v));
    this.varint64(Number(b & 0xffffffffn), Number(b >> 32n));
  }

  bool(v: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  float(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.pos);
    this.pos += 4;
  }

  /** A length-delimited UTF-8 string. */
  string(s: string): void {
    const n = s.length;
    // Short ASCII, the usual case: byte for byte, without asking for the UTF-8 length first.
    if (n < 128) {
      this.ensure(n + 1);
      const b = this.buf;
      const start = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 127) break;
        b[start + i] = c;
      }
      if (i === n) {
        b[this.pos] = n;
        this.pos = start + n;
        return;
      }
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.uint32(len);
    this.ensure(len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }

  /** A google.protobuf.Timestamp's fields from epoch ms (seconds rounded down, the rest as nanos), both written even when zero. */
  timestamp(ms: number): void {
    const s = Math.floor(ms / 1000);
    this.uint32(tagOf(1, VARINT));
    this.int64(s);
    this.uint32(tagOf(2, VARINT));
    this.uint32((ms - s * 1000) * 1_000_000);
  }

  /** Bytes as they are, without a length. */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Starts a length-delimited field's body (after its tag); pass the result to `end`. */
  begin(): number {
    this.ensure(1);
    return ++this.pos;
  }

  end(start: number): void {
    const len = this.pos - start;
    if (len < 128) {
      this.buf[start - 1] = len;
      return;
    }
    let size = 1;
    for (let x = len; x > 127; x >>>= 7) size++;
    this.ensure(size - 1);
    this.buf.copyWithin(start - 1 + size, start, this.pos);
    const body = this.pos;
    this.pos = start - 1;
    this.uint32(len);
    this.pos = body + size - 1;
  }

  /** The bytes written, as a Buffer of their own. */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }
}
