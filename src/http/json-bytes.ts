/**
 * JSON written straight into bytes, for the lookup routes (features-json.ts):
 * short ASCII copied by hand, numbers digit by digit, plain strings byte for
 * byte, into reused buffers. A call into Node's encoder, String(double) or a
 * fresh buffer per answer each cost more than the bytes they make.
 */
import { formatTimestamp } from '../engine/schema.js';

/** Encoded answer bytes; `release`, when set, must be called once they are sent (they live in a reused buffer). */
export interface Answer {
  bytes: Buffer;
  release?: () => void;
}

/**
 * An answer written straight into bytes, in a reused buffer (grown when
 * needed). Short ASCII is copied by hand: a call into Node's encoder costs
 * more than the few dozen bytes it would write.
 */
export class JsonBytes {
  buf: Buffer = spares.pop() ?? Buffer.allocUnsafeSlow(256 * 1024);
  /** `buf` as a DataView, for code that writes four bytes in one store (features-json.ts). */
  view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  at = 0;

  byte(b: number): void {
    this.room(1);
    this.buf[this.at++] = b;
  }

  /** Text known to be ASCII. */
  ascii(s: string): void {
    this.room(s.length);
    for (let k = 0; k < s.length; k++) this.buf[this.at++] = s.charCodeAt(k);
  }

  /** Any text, as UTF-8. */
  text(s: string): void {
    if (s.length <= 64 && isAscii(s)) return this.ascii(s);
    this.room(3 * s.length);
    this.at += this.buf.write(s, this.at);
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }

  /**
   * A string as JSON, as JSON.stringify writes it: characters that need no
   * escape are written as UTF-8 in one pass (`at` moves only at the end);
   * a string with one that does (a control character, a quote, a backslash,
   * a lone surrogate) goes through JSON.stringify.
   */
  string(s: string): void {
    this.room(3 * s.length + 2);
    const buf = this.buf;
    let at = this.at;
    buf[at++] = 34;
    for (let k = 0; k < s.length; k++) {
      const c = s.charCodeAt(k);
      if (c < 0x80) {
        if (c < 0x20 || c === 34 || c === 92) return this.text(JSON.stringify(s));
        buf[at++] = c;
      } else if (c < 0x800) {
        buf[at++] = 0xc0 | (c >> 6);
        buf[at++] = 0x80 | (c & 0x3f);
      } else if (c < 0xd800 || c > 0xdfff) {
        buf[at++] = 0xe0 | (c >> 12);
        buf[at++] = 0x80 | ((c >> 6) & 0x3f);
        buf[at++] = 0x80 | (c & 0x3f);
      } else {
        // A surrogate pair is one character of four bytes (its 3 + 3 bytes of room suffice); a lone surrogate is escaped.
        const d = c < 0xdc00 && k + 1 < s.length ? s.charCodeAt(k + 1) : 0;
        if (d < 0xdc00 || d > 0xdfff) return this.text(JSON.stringify(s));
        const p = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        buf[at++] = 0xf0 | (p >> 18);
        buf[at++] = 0x80 | ((p >> 12) & 0x3f);
        buf[at++] = 0x80 | ((p >> 6) & 0x3f);
        buf[at++] = 0x80 | (p & 0x3f);
        k++;
      }
    }
    buf[at++] = 34;
    this.at = at;
  }

  /**
   * A number as JSON.stringify writes it. Numbers below 2^31 in magnitude
   * that are integers, or decimals of up to 6 places whose digits divide back
   * to exactly the number, are written two digits at a time: the fewest
   * decimals that give the number back are its shortest round-trip form,
   * which is what JavaScript prints. Those are the 6-place digits without
   * their trailing zeros: below 2^31 the product's error is far under half a
   * unit, so the 6-place digits of a number that has a d-place form are that
   * form's digits and 6 - d zeros. Larger safe integers go digit by digit;
   * anything else (exponents, 17-digit doubles) through String.
   */
  number(v: number): void {
    const a = v < 0 ? -v : v;
    // NaN fails this test, and goes the slow way with the infinities.
    if (!(a < 2147483648)) return this.largeNumber(v);
    const whole = a | 0;
    const len = whole < 10 ? 1 : whole < 100 ? 2 : whole < 1000 ? 3 : whole < 10000 ? 4 : whole < 100000 ? 5 : whole < 1000000 ? 6 : whole < 10000000 ? 7 : whole < 100000000 ? 8 : whole < 1000000000 ? 9 : 10;
    const sign = v < 0 ? 1 : 0;
    let frac = 0;
    let d = 0;
    if (whole !== a) {
      const m = Math.round(a * 1e6);
      if (m / 1e6 !== a) return this.ascii(String(v));
      // 1..999999, its trailing zeros (at most 5) cut in three steps.
      frac = (m - whole * 1e6) | 0;
      d = 6;
      if (frac % 1000 === 0) {
        frac = (frac / 1000) | 0;
        d = 3;
      }
      if (frac % 100 === 0) {
        frac = (frac / 100) | 0;
        d -= 2;
      }
      if (frac % 10 === 0) {
        frac = (frac / 10) | 0;
        d -= 1;
      }
    }
    const n = sign + len + (d ? d + 1 : 0);
    this.room(n);
    const b = this.buf;
    const w = this.view;
    let k = this.at + n;
    this.at = k;
    // From the last digit back: the decimals (leading zeros included) and the point, then the whole part.
    if (d) {
      let i = d;
      for (; i >= 2; i -= 2) {
        const q = (frac / 100) | 0;
        w.setUint16((k -= 2), PAIRS[frac - q * 100], true);
        frac = q;
      }
      if (i) b[--k] = 48 + frac;
      b[--k] = 46;
    }
    let x = whole;
    while (x >= 100) {
      const q = (x / 100) | 0;
      w.setUint16((k -= 2), PAIRS[x - q * 100], true);
      x = q;
    }
    if (x >= 10) w.setUint16(k - 2, PAIRS[x], true);
    else b[k - 1] = 48 + x;
    if (sign) b[k - (x >= 10 ? 3 : 2)] = 45;
  }

  /** `number` from 2^31 in magnitude on, and NaN and the infinities: safe integers digit by digit, the rest through String. */
  private largeNumber(v: number): void {
    if (!Number.isFinite(v)) return this.ascii('null');
    if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
      if (v < 0) this.byte(45);
      return this.digits(Math.abs(v));
    }
    this.ascii(String(v));
  }

  /** A non-negative safe integer. */
  private digits(n: number): void {
    let len = 1;
    while (len < 16 && n >= POW10[len]) len++;
    this.room(len);
    let k = this.at + len - 1;
    // Above 2^31 in double arithmetic, then in int32 (no floating-point remainder per digit).
    for (; n > 0x7fffffff; k--) {
      const q = Math.floor(n / 10);
      this.buf[k] = 48 + (n - q * 10);
      n = q;
    }
    for (let i = n | 0; k >= this.at; k--) {
      const q = (i / 10) | 0;
      this.buf[k] = 48 + (i - q * 10);
      i = q;
    }
    this.at += len;
  }

  /**
   * Epoch ms as a JSON string, RFC 3339 UTC with milliseconds, exactly as
   * `formatTimestamp` writes it: the date part cached per day, the rest digit
   * by digit (Date#toISOString, or a string made per time, cost more than the
   * rest of a lookup's rendering).
   */
  time(ms: number): void {
    if (!Number.isInteger(ms) || ms < 0 || ms >= 253402300800000) {
      this.byte(34);
      return this.ascii(formatTimestamp(ms) + '"');
    }
    const day = Math.floor(ms / 86_400_000);
    let date = dayCache.get(day);
    if (date === undefined) {
      date = formatTimestamp(day * 86_400_000).slice(0, 11);
      if (dayCache.size >= 10_000) dayCache = new Map();
      dayCache.set(day, date);
    }
    // `"YYYY-MM-DDTHH:MM:SS.mmmZ"`: 26 bytes, the time of day in int32 arithmetic.
    this.room(26);
    const b = this.buf;
    const a = this.at;
    b[a] = 34;
    for (let k = 0; k < 11; k++) b[a + 1 + k] = date.charCodeAt(k);
    let rest = (ms - day * 86_400_000) | 0;
    const h = (rest / 3_600_000) | 0;
    rest -= h * 3_600_000;
    const m = (rest / 60_000) | 0;
    rest -= m * 60_000;
    const sec = (rest / 1000) | 0;
    rest -= sec * 1000;
    b[a + 12] = 48 + ((h / 10) | 0);
    b[a + 13] = 48 + (h % 10);
    b[a + 14] = 58;
    b[a + 15] = 48 + ((m / 10) | 0);
    b[a + 16] = 48 + (m % 10);
    b[a + 17] = 58;
    b[a + 18] = 48 + ((sec / 10) | 0);
    b[a + 19] = 48 + (sec % 10);
    b[a + 20] = 46;
    b[a + 21] = 48 + ((rest / 100) | 0);
    b[a + 22] = 48 + (((rest / 10) | 0) % 10);
    b[a + 23] = 48 + (rest % 10);
    b[a + 24] = 90;
    b[a + 25] = 34;
    this.at = a + 26;
  }

  /** The bytes written: small answers are copied out and the buffer goes back at once; large ones give it back on `release`. */
  finish(): Answer {
    const whole = this.buf;
    const n = this.at;
    if (n < REUSE_FROM) {
      const bytes = small(n);
      whole.copy(bytes, 0, 0, n);
      giveBack(whole);
      return { bytes };
    }
    let released = false;
    return {
      bytes: whole.subarray(0, n),
      release: () => {
        if (released) return;
        released = true;
        giveBack(whole);
      },
    };
  }

  /** Makes room for n more bytes (`buf` may be replaced: read it after). */
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.length, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    giveBack(this.buf);
    this.buf = bigger;
    this.view = new DataView(bigger.buffer, bigger.byteOffset, bigger.length);
  }
}

const POW10 = Array.from({ length: 17 }, (_, i) => 10 ** i);
/** The two ASCII digits of 0..99 as one little-endian 16-bit store. */
const PAIRS = Uint16Array.from({ length: 100 }, (_, i) => (48 + Math.floor(i / 10)) | ((48 + (i % 10)) << 8));

/**
 * Answers are written into reused buffers: a fresh 200 kB buffer per batch
 * answer cost ten times the copying into it, in page faults and in the
 * collections its external memory set off.
 */
const REUSE_FROM = 64 * 1024;
const spares: Buffer[] = [];
const MAX_SPARES = 16;
const MAX_SPARE_BYTES = 8 * 1024 * 1024;

function giveBack(b: Buffer): void {
  if (spares.length < MAX_SPARES && b.length <= MAX_SPARE_BYTES) spares.push(b);
}

/**
 * Answers below 16 kB are cut from a 256 kB slab, like Node's own pool for
 * allocUnsafe but 32 times larger: a new 8 kB pool every three or four 2 kB
 * answers was a tenth of a lookup's time in allocation and collection. An
 * answer lives until its socket write is done; a slab is freed with the last
 * answer cut from it.
 */
const SLAB = 256 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB);
let slabAt = 0;

export function small(n: number): Buffer {
  if (n > 16 * 1024) return Buffer.allocUnsafe(n);
  if (slabAt + n > SLAB) {
    slab = Buffer.allocUnsafeSlow(SLAB);
    slabAt = 0;
  }
  const b = slab.subarray(slabAt, slabAt + n);
  slabAt = (slabAt + n + 7) & ~7;
  return b;
}

export function isAscii(s: string): boolean {
  for (let k = 0; k < s.length; k++) if (s.charCodeAt(k) > 0x7f) return false;
  return true;
}

let dayCache = new Map<number, string>();
