/**
 * The RESP2 wire code of the lean lookup client (redis-reader.ts): commands
 * written as bytes, replies parsed off a stream of chunks.
 */
export class RedisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisError';
  }
}

/**
 * Commands as RESP bytes (arrays of bulk strings), written into one buffer per
 * event-loop turn that the socket sends as it is. ASCII arguments (entity keys,
 * usually) are copied byte by byte with no native call (a Buffer write per
 * argument cost more). A 100-entity HMGET: 37 ns per entity against 77 built
 * as RESP text and UTF-8 encoded by the socket's write (2026-12-06, session 15,
 * in isolation, the field names' array included).
 */
export class Commands {
  private buf: Buffer;
  private at = 0;

  constructor(private readonly size = 16384) {
    this.buf = Buffer.allocUnsafe(size);
  }

  add(args: string[]): void {
    // Room for the most it can take: 3 bytes a UTF-16 unit, 14 a length line.
    let most = 14;
    for (let i = 0; i < args.length; i++) most += 3 * args[i].length + 16;
    if (this.at + most > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.at + most));
      this.buf.copy(next, 0, 0, this.at);
      this.buf = next;
    }
    this.head(42, args.length);
    const b = this.buf;
    for (let i = 0; i < args.length; i++) {
      const s = args[i];
      const start = this.at;
      this.head(36, s.length);
      let at = this.at;
      let k = 0;
      for (let c; k < s.length && (c = s.charCodeAt(k)) <= 0x7f; k++) b[at++] = c;
      if (k < s.length) {
        // Past ASCII: the length in bytes is another; written again, through UTF-8.
        this.at = start;
        this.head(36, Buffer.byteLength(s));
        at = this.at + b.write(s, this.at, 'utf8');
      }
      b[at] = 13;
      b[at + 1] = 10;
      this.at = at + 2;
    }
  }

  /** The commands added since the last take; the buffer is theirs (the socket may hold it until sent). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.at);
    this.buf = Buffer.allocUnsafe(Math.max(this.size, this.at));
    this.at = 0;
    return out;
  }

  /** `*<n>\r\n` or `$<n>\r\n`. */
  private head(type: number, n: number): void {
    const b = this.buf;
    b[this.at] = type;
    let end = this.at + 2;
    for (let p = 10; p <= n; p *= 10) end++;
    this.at = end + 2;
    b[end] = 13;
    b[end + 1] = 10;
    do b[--end] = 48 + (n % 10);
    while ((n = (n / 10) | 0) > 0);
  }
}

/** One command as RESP bytes. */
export function command(args: string[]): Buffer {
  const c = new Commands(64);
  c.add(args);
  return c.take();
}

export type Reply = string | number | null | Reply[] | RedisError;

/**
 * RESP2 replies off a stream of chunks: simple strings, errors, integers,
 * bulk strings and arrays of those (HMGET answers arrays of bulk strings and
 * nulls); `next` returns undefined until a whole reply is buffered, and throws
 * on bytes that are not RESP. Bulk strings come as latin1 text of their bytes
 * (state-json.ts reads states off them), by `latin1Slice` (what `toString`
 * calls after its argument checks): 77 ns per entity of the bench's replies,
 * 130 decoded as UTF-8 (2026-12-06, in isolation).
 *
 * A reply longer than a chunk costs time in proportion to its length: a chunk
 * that does not complete it is appended to a buffer of the parser's own (with
 * room to double), and reading resumes at the top-level item it stopped in.
 * Parsing each chunk's reply afresh from its start, over a new concatenation,
 * blocked the event loop for 1.1 s on a 10 MB reply (100 states of 100 kB, in
 * 64 kB chunks) and 7 ms on a 1,001-value one of 200 kB (2026-12-06, session 17).
 */
export class ReplyParser {
  private buf: Buffer = Buffer.alloc(0);
  /** The bytes of `buf` that hold data (a buffer of the parser's own has room past them). */
  private len = 0;
  private at = 0;
  /** Whether `buf` is the parser's own, with room for chunks; else it is a chunk as the socket gave it, never written to. */
  private owned = false;
  /** Where the reply being read starts in `buf`. */
  private replyStart = 0;
  /** The top-level array being read, and how many of its items are read (each whole). */
  private items?: Reply[];
  private filled = 0;
  /** Where the bulk strings of the last reply start in `bytes` (-1 for a null), in order. */
  starts: number[] = [];

  /** The bytes the last reply was read from; never changed where they hold it (chunks go past them, or into a new buffer). */
  get bytes(): Buffer {
    return this.buf;
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
    this.len = this.at = this.replyStart = 0;
    this.owned = false;
    this.items = undefined;
  }

  feed(chunk: Buffer): void {
    if (this.items === undefined && this.at >= this.len) {
      // Nothing pending (the usual case): the chunk is read where it is.
      this.buf = chunk;
      this.len = chunk.length;
      this.at = this.replyStart = 0;
      this.owned = false;
      return;
    }
    if (!this.owned || this.len + chunk.length > this.buf.length) {
      // The reply so far and the chunk, into a buffer of its own with room to double; offsets move with them.
      const keep = this.len - this.replyStart;
      const next = Buffer.allocUnsafe(Math.max(2 * (keep + chunk.length), 65536));
      this.buf.copy(next, 0, this.replyStart, this.len);
      const shift = this.replyStart;
      // The starts of an array being read move too (those of a reply already returned are its reader's, and stay).
      if (this.items !== undefined) for (let i = 0; i < this.starts.length; i++) if (this.starts[i] >= 0) this.starts[i] -= shift;
      this.buf = next;
      this.len = keep;
      this.at -= shift;
      this.replyStart = 0;
      this.owned = true;
    }
    chunk.copy(this.buf, this.len);
    this.len += chunk.length;
  }

  next(): Reply | undefined {
    if (this.items === undefined) {
      if (this.at >= this.len) return undefined;
      this.replyStart = this.at;
      this.starts = [];
      if (this.buf[this.at] !== 42) {
        // Not an array: read whole or not at all.
        const r = this.parse();
        if (r === undefined) this.at = this.replyStart;
        return r;
      }
      this.at++;
      const n = this.length();
      if (n === undefined) return (this.at = this.replyStart), undefined;
      if (n < 0) return null;
      this.items = new Array<Reply>(n);
      this.filled = 0;
    }
    const items = this.items;
    while (this.filled < items.length) {
      const from = this.at;
      const mark = this.starts.length;
      const item = this.parse();
      if (item === undefined) {
        this.at = from;
        this.starts.length = mark;
        return undefined;
      }
      items[this.filled++] = item;
    }
    this.items = undefined;
    return items;
  }

  private line(): string | undefined {
    const end = this.buf.indexOf(13, this.at);
    if (end < 0 || end + 1 >= this.len) return undefined;
    const s = this.buf.toString('latin1', this.at, end);
    this.at = end + 2;
    return s;
  }

  /** The decimal integer up to the CRLF (undefined until it is buffered); a byte that is no digit is refused. */
  private length(): number | undefined {
    const negative = this.buf[this.at] === 45;
    let n = 0;
    for (let i = negative ? this.at + 1 : this.at; i < this.len; i++) {
      const c = this.buf[i];
      if (c === 13) return i + 1 < this.len ? ((this.at = i + 2), negative ? -n : n) : undefined;
      if (c < 48 || c > 57) throw new RedisError(`not a RESP reply (length byte ${c})`);
      n = n * 10 + (c - 48);
    }
    return undefined;
  }

  private parse(): Reply | undefined {
    if (this.at >= this.len) return undefined;
    const type = this.buf[this.at++];
    // A bulk string's or an array's length read off its bytes (one per entity of a lookup; the line, then Number of it, cost two calls).
    const line = type === 36 || type === 42 ? this.length() : this.line();
    if (line === undefined) return undefined;
    switch (type) {
      case 43: return line; // +
      case 45: return new RedisError(line as string); // -
      case 58: return Number(line); // :
      case 36: {
        // $
        const n = line as number;
        this.starts.push(n < 0 ? -1 : this.at);
        if (n < 0) return null;
        if (this.at + n + 2 > this.len) return undefined;
        const s = (this.buf as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(this.at, this.at + n);
        this.at += n + 2;
        return s;
      }
      case 42: {
        // * (nested: read whole or not at all)
        const n = line as number;
        if (n < 0) return null;
        const out = new Array<Reply>(n);
        for (let i = 0; i < n; i++) {
          const item = this.parse();
          if (item === undefined) return undefined;
          out[i] = item;
        }
        return out;
      }
      default:
        throw new RedisError(`not a RESP reply (type byte ${type})`);
    }
  }
}
