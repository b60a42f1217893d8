/**
 * A compact binary encoding of JSON-safe values (null, booleans, numbers,
 * strings, arrays, plain objects) into a one-byte ("latin1") JS string: each
 * char holds one byte. The embedded online store keeps every entity's state
 * this way, because V8 stores such strings at one byte per char with a small
 * header: about half the memory of the same state as JSON text, and no
 * per-value heap objects.
 *
 * Layout: a tag byte, then the value.
 *   0 null, 1 false, 2 true,
 *   3 integer: zigzag varint (|n| < 2^52, 7 bits per byte, low bits first),
 *   4 float64, 8 bytes little-endian,
 *   5 string: varint byte length, UTF-8 bytes,
 *   6 array: varint count, items,
 *   7 object: varint count, (string without tag, value) pairs,
 *   8 + d (d = 1..6) decimal: zigzag varint of v * 10^d, for a number with d
 *     decimals that divides back to exactly itself (12.34 takes 3 bytes, not
 *     8: prices, amounts and rates are mostly such numbers; the idea of
 *     DuckDB's ALP compression for doubles),
 *   15 array of doubles: varint count, 8 bytes each (an array of two or more
 *     numbers none of which packs shorter: one tag for all, not one each).
 * The format only lives in process memory; nothing persists it.
 */

const T_NULL = 0;
const T_FALSE = 1;
const T_TRUE = 2;
const T_INT = 3;
const T_F64 = 4;
const T_STR = 5;
const T_ARR = 6;
const T_OBJ = 7;
/** T_DEC + d: a decimal of d places (1 to 6). */
const T_DEC = 8;
const POW10 = [1, 10, 100, 1e3, 1e4, 1e5, 1e6];
const T_F64_ARR = 15;

const f64 = new Float64Array(1);
const f64bytes = new Uint8Array(f64.buffer);

let buf = Buffer.allocUnsafe(4096);
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  const next = Buffer.allocUnsafe(Math.max(buf.length * 2, pos + n));
  buf.copy(next, 0, 0, pos);
  buf = next;
}

function varint(n: number): void {
  ensure(8);
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
}

function str(s: string): void {
  // ASCII goes byte for byte; anything else through UTF-8.
  let ascii = true;
  for (let i = 0; i < s.length && ascii; i++) ascii = s.charCodeAt(i) <= 0x7f;
  if (ascii) {
    varint(s.length);
    ensure(s.length);
    for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
    return;
  }
  const bytes = Buffer.byteLength(s, 'utf8');
  varint(bytes);
  ensure(bytes);
  pos += buf.write(s, pos, 'utf8');
}

/**
 * The places (1 to 6) v is written with as a decimal, or 0 when it is not:
 * v * 10^d must be an integer that, divided by 10^d, gives v back exactly
 * (the reader does that very division), and small enough that the decimal
 * is the shorter form. Integers (-0, and beyond 2^52, which get here) keep
 * all eight bytes.
 */
function decimalPlaces(v: number): number {
  if (!Number.isFinite(v) || Number.isInteger(v)) return 0;
  for (let d = 1; d <= 6; d++) {
    const scaled = v * POW10[d];
    // Below 2^48 the zigzag varint takes at most 7 bytes: with the tag, shorter than a plain double.
    if (Number.isInteger(scaled) && Math.abs(scaled) < 2 ** 48 && scaled / POW10[d] === v) return d;
  }
  return 0;
}

function decimal(v: number): boolean {
  const d = decimalPlaces(v);
  if (d === 0) return false;
  const scaled = v * POW10[d];
  buf[pos++] = T_DEC + d;
  varint(scaled >= 0 ? scaled * 2 : -scaled * 2 - 1);
  return true;
}

/** Whether every item is a number that packs as a plain double (not an integer, not a short decimal). */
function allPlainDoubles(v: unknown[]): boolean {
  for (const x of v) {
    if (typeof x !== 'number') return false;
    if (Number.isInteger(x) && Math.abs(x) < 2 ** 52 && !Object.is(x, -0)) return false;
    if (decimalPlaces(x) !== 0) return false;
  }
  return true;
}

function value(v: unknown): void {
  ensure(10);
  if (v === null || v === undefined) buf[pos++] = T_NULL;
  else if (v === false) buf[pos++] = T_FALSE;
  else if (v === true) buf[pos++] = T_TRUE;
  else if (typeof v === 'number') {
    // Integers up to 2^52 so that the zigzag form stays exact in a double.
    if (Number.isInteger(v) && Math.abs(v) < 2 ** 52 && !Object.is(v, -0)) {
      buf[pos++] = T_INT;
      varint(v >= 0 ? v * 2 : -v * 2 - 1);
    } else if (!decimal(v)) {
      buf[pos++] = T_F64;
      f64[0] = v;
      for (let i = 0; i < 8; i++) buf[pos++] = f64bytes[i];
    }
  } else if (typeof v === 'string') {
    buf[pos++] = T_STR;
    str(v);
  } else if (Array.isArray(v)) {
    if (v.length >= 2 && allPlainDoubles(v)) {
      buf[pos++] = T_F64_ARR;
      varint(v.length);
      ensure(8 * v.length);
      for (const x of v) {
        f64[0] = x as number;
        for (let i = 0; i < 8; i++) buf[pos++] = f64bytes[i];
      }
      return;
    }
    buf[pos++] = T_ARR;
    varint(v.length);
    for (const x of v) value(x);
  } else if (typeof v === 'object') {
    const keys = Object.keys(v as object);
    buf[pos++] = T_OBJ;
    varint(keys.length);
    for (const k of keys) {
      str(k);
      value((v as Record<string, unknown>)[k]);
    }
  } else {
    throw new TypeError(`cannot pack a ${typeof v}`);
  }
}

/** Packs a JSON-safe value into a one-byte string. */
export function pack(v: unknown): string {
  pos = 0;
  value(v);
  const packed = buf.toString('latin1', 0, pos);
  // A buffer grown past 1 MiB by one large state (a hot entity's long window) is let go rather than kept for good.
  if (buf.length > 1 << 20) buf = Buffer.allocUnsafe(4096);
  return packed;
}

/** Reads values back from a packed string. */
class Reader {
  i = 0;
  constructor(private readonly s: string) {}

  varint(): number {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = this.s.charCodeAt(this.i++);
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 0x80;
    }
  }

  str(): string {
    const len = this.varint();
    const start = this.i;
    this.i += len;
    for (let k = start; k < this.i; k++) if (this.s.charCodeAt(k) > 0x7f) return Buffer.from(this.s.slice(start, this.i), 'latin1').toString('utf8');
    return this.s.slice(start, this.i);
  }

  value(): unknown {
    const tag = this.s.charCodeAt(this.i++);
    switch (tag) {
      case T_NULL: return null;
      case T_FALSE: return false;
      case T_TRUE: return true;
      case T_INT: {
        const z = this.varint();
        return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      }
      case T_F64:
        for (let k = 0; k < 8; k++) f64bytes[k] = this.s.charCodeAt(this.i++);
        return f64[0];
      case T_STR:
        return this.str();
      case T_ARR: {
        const n = this.varint();
        const out = new Array(n);
        for (let k = 0; k < n; k++) out[k] = this.value();
        return out;
      }
      case T_OBJ: {
        const n = this.varint();
        const out: Record<string, unknown> = {};
        for (let k = 0; k < n; k++) {
          const key = this.str();
          out[key] = this.value();
        }
        return out;
      }
      case T_F64_ARR: {
        const n = this.varint();
        const out = new Array<number>(n);
        for (let k = 0; k < n; k++) {
          for (let b = 0; b < 8; b++) f64bytes[b] = this.s.charCodeAt(this.i++);
          out[k] = f64[0];
        }
        return out;
      }
      default: {
        if (tag > T_DEC && tag <= T_DEC + 6) {
          const z = this.varint();
          return (z % 2 === 0 ? z / 2 : -(z + 1) / 2) / POW10[tag - T_DEC];
        }
        throw new Error(`corrupt packed value: tag ${tag} at byte ${this.i - 1}`);
      }
    }
  }
}

/** The value a `pack` produced. */
export function unpack(s: string): unknown {
  return new Reader(s).value();
}
