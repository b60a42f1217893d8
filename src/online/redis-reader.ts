/**
 * A lean Redis client for the one command online lookups send, HMGET, on a
 * connection of its own: a lookup is bytes appended to a batch written once
 * per event-loop turn (on `setImmediate`), and replies are parsed straight
 * off the socket's chunks. ioredis (which does everything else) spends a
 * command object, promise chains, a timer per command and a pipeline per
 * batch on each lookup. Kept by same-run measurements (2026-12-06, session
 * 11, load 20-25 on 2 cores): `bench:redis-clients` (21-field HMGETs, 32 in
 * flight) 18.9 and 42.3 µs of client CPU per lookup against 36.5 and 70.7
 * through ioredis; `bench:online -- --redis-ioredis-lookups`, GET hot, 38.8
 * µs of server CPU per request against 54.9 (bare route 15.3); quiet, GET
 * 0.85 of the bare route, which ioredis's extra would take below 0.8.
 *
 * Semantics follow the reader connection it replaces: nothing is queued
 * while disconnected (a lookup fails at once: 503), a reply slower than
 * `timeoutMs` fails every lookup in flight and drops the connection (a
 * frozen server), and it reconnects by itself, quickly at first, then every
 * second. Only plain `redis://` URLs (host, port, user, password, database);
 * anything else uses ioredis (see factory.ts).
 */
import { Socket } from 'node:net';
import type { Logger } from '../logger.js';

/** An HMGET's values as latin1 text of their bytes, and where each value's bytes are in `bytes` (-1 for a null). */
export interface Values {
  values: (string | null)[];
  bytes: Buffer;
  starts: number[];
}

interface Waiter {
  resolve(v: Values): void;
  reject(e: Error): void;
  /** performance.now() when its bytes were handed to the socket (batch flush), or -1 before. */
  sentAt: number;
  /** Setup commands (AUTH, SELECT) answer a simple string, not an array. */
  setup?: boolean;
}

export class RedisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisError';
  }
}

/** Whether `url` is a plain redis:// URL this client can connect to. */
export function leanReaderSupports(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'redis:' && u.search === '' && u.hash === '';
  } catch {
    return false;
  }
}

export class RedisLookupReader {
  private socket?: Socket;
  private ready = false;
  private closed = false;
  private attempts = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private readonly watchdog: NodeJS.Timeout;
  /** Waiters in the order their commands were written: replies come back in that order. */
  private waiting: Waiter[] = [];
  private head = 0;
  /** Commands not yet written, and their waiters. */
  private readonly batch = new Commands();
  private batchWaiters: Waiter[] = [];
  private flushScheduled = false;
  private readonly parser = new ReplyParser();
  private readonly host: string;
  private readonly port: number;
  private readonly setup: Buffer[] = [];
  private down = false;

  constructor(
    url: string,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {
    const u = new URL(url);
    this.host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
    this.port = u.port ? Number(u.port) : 6379;
    const password = decodeURIComponent(u.password);
    const user = decodeURIComponent(u.username);
    if (password) this.setup.push(command(user ? ['AUTH', user, password] : ['AUTH', password]));
    const db = u.pathname.replace(/^\//, '');
    if (db !== '' && db !== '0') this.setup.push(command(['SELECT', db]));
    this.watchdog = setInterval(() => this.checkTimeouts(), Math.max(10, Math.min(250, timeoutMs / 4)));
    this.watchdog.unref();
    this.connect();
  }

  /** Resolves once connected (or rejects after `ms`); lookups do not wait for it. */
  async whenReady(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    while (!this.ready) {
      if (this.closed || performance.now() > deadline) throw new RedisError('redis lookup connection not ready');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  hmget(key: string, fields: string[]): Promise<Values> {
    if (!this.ready) return Promise.reject(new RedisError(this.closed ? 'connection closed' : 'redis lookup connection is not ready (reconnecting)'));
    return new Promise((resolve, reject) => {
      this.batch.add(['HMGET', key, ...fields]);
      this.batchWaiters.push({ resolve, reject, sentAt: -1 });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.watchdog);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.fail(new RedisError('connection closed'));
    this.socket?.destroy();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batchWaiters.length === 0) return;
    const bytes = this.batch.take();
    const waiters = this.batchWaiters;
    this.batchWaiters = [];
    if (!this.ready || !this.socket) {
      const e = new RedisError('redis lookup connection lost');
      for (const w of waiters) w.reject(e);
      return;
    }
    const now = performance.now();
    for (const w of waiters) {
      w.sentAt = now;
      this.waiting.push(w);
    }
    this.socket.write(bytes);
  }

  private connect(): void {
    if (this.closed) return;
    const socket = new Socket();
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    this.parser.reset();
    const connectTimer = setTimeout(() => socket.destroy(new RedisError('connect timeout')), 2000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => {
      if (!this.down) this.logger.warn({ err: e.message }, 'redis lookup connection failed; reconnecting');
      this.down = true;
    });
    socket.on('close', () => {
      clearTimeout(connectTimer);
      if (this.socket !== socket) return;
      this.ready = false;
      this.socket = undefined;
      this.fail(new RedisError('redis lookup connection lost'));
      if (this.closed) return;
      const delay = Math.min(++this.attempts * 100, 1000);
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
      this.reconnectTimer.unref();
    });
    socket.connect(this.port, this.host, () => {
      clearTimeout(connectTimer);
      if (this.setup.length === 0) return this.onReady();
      // AUTH and SELECT first; lookups wait for their answers.
      let left = this.setup.length;
      for (const c of this.setup) {
        this.waiting.push({
          setup: true,
          sentAt: performance.now(),
          resolve: () => {
            if (--left === 0) this.onReady();
          },
          reject: (e) => {
            if (!this.down) this.logger.warn({ err: e.message }, 'redis lookup connection: AUTH or SELECT refused; retrying');
            this.down = true;
            socket.destroy();
          },
        });
        socket.write(c);
      }
    });
    socket.unref();
  }

  private onReady(): void {
    this.ready = true;
    this.attempts = 0;
    if (this.down) this.logger.info({}, 'redis lookup connection back');
    this.down = false;
  }

  private onData(chunk: Buffer): void {
    this.parser.feed(chunk);
    for (;;) {
      let reply: Reply | undefined;
      try {
        reply = this.parser.next();
      } catch (e) {
        // Not Redis speaking, or the stream is out of step: drop the connection; waiters fail, and it reconnects.
        this.socket?.destroy(e as Error);
        return;
      }
      if (reply === undefined) return;
      const w = this.waiting[this.head];
      if (w === undefined) {
        // A reply nobody asked for: the stream is out of step; start over.
        this.socket?.destroy(new RedisError('unexpected reply'));
        return;
      }
      this.waiting[this.head++] = undefined as unknown as Waiter;
      if (this.head > 1024 && this.head * 2 > this.waiting.length) {
        this.waiting = this.waiting.slice(this.head);
        this.head = 0;
      }
      if (reply instanceof RedisError) w.reject(reply);
      else if (w.setup) w.resolve({ values: [], bytes: this.parser.bytes, starts: [] });
      else if (Array.isArray(reply)) w.resolve({ values: reply as (string | null)[], bytes: this.parser.bytes, starts: this.parser.starts });
      else w.reject(new RedisError(`unexpected reply to HMGET: ${String(reply)}`));
    }
  }

  /** A reply overdue means a frozen or unreachable server: fail everything in flight and reconnect. */
  private checkTimeouts(): void {
    const oldest = this.waiting[this.head];
    if (oldest === undefined || performance.now() - oldest.sentAt <= this.timeoutMs) return;
    const e = new RedisError(`Command timed out (no reply from redis in ${this.timeoutMs} ms)`);
    this.fail(e);
    this.socket?.destroy();
  }

  private fail(e: Error): void {
    const waiting = this.waiting;
    const head = this.head;
    this.waiting = [];
    this.head = 0;
    for (let i = head; i < waiting.length; i++) waiting[i]?.reject(e);
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
 */
export class ReplyParser {
  private buf: Buffer = Buffer.alloc(0);
  private at = 0;
  /** Where the bulk strings of the last reply start in `bytes` (-1 for a null), in order. */
  starts: number[] = [];

  /** The bytes the last reply was read from; never changed (a new chunk goes into a new buffer). */
  get bytes(): Buffer {
    return this.buf;
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
    this.at = 0;
  }

  feed(chunk: Buffer): void {
    this.buf = this.at < this.buf.length ? Buffer.concat([this.buf.subarray(this.at), chunk]) : chunk;
    this.at = 0;
  }

  next(): Reply | undefined {
    const start = this.at;
    this.starts = [];
    const r = this.parse();
    if (r === undefined) this.at = start;
    return r;
  }

  private line(): string | undefined {
    const end = this.buf.indexOf(13, this.at);
    if (end < 0 || end + 1 >= this.buf.length) return undefined;
    const s = this.buf.toString('latin1', this.at, end);
    this.at = end + 2;
    return s;
  }

  /** The decimal integer up to the CRLF (undefined until it is buffered); a byte that is no digit is refused. */
  private length(): number | undefined {
    const negative = this.buf[this.at] === 45;
    let n = 0;
    for (let i = negative ? this.at + 1 : this.at; i < this.buf.length; i++) {
      const c = this.buf[i];
      if (c === 13) return i + 1 < this.buf.length ? ((this.at = i + 2), negative ? -n : n) : undefined;
      if (c < 48 || c > 57) throw new RedisError(`not a RESP reply (length byte ${c})`);
      n = n * 10 + (c - 48);
    }
    return undefined;
  }

  private parse(): Reply | undefined {
    if (this.at >= this.buf.length) return undefined;
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
        if (this.at + n + 2 > this.buf.length) return undefined;
        const s = (this.buf as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(this.at, this.at + n);
        this.at += n + 2;
        return s;
      }
      case 42: {
        // *
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
