/**
 * A lean Redis client for the one command online lookups send, HMGET, on a
 * connection of its own: a lookup is bytes appended to a batch written at
 * the end of the event-loop turn (on `setImmediate`), or as soon as it is
 * large (FLUSH_COMMANDS, FLUSH_FIELDS), and replies are parsed straight off
 * the socket's chunks. ioredis (which does everything else) spends a
 * command object, promise chains, a timer per command and a pipeline per
 * batch on each lookup. Kept by same-run measurements (2026-12-06, session
 * 11, load 20-25 on 2 cores): `bench:redis-clients` (21-field HMGETs, 32 in
 * flight) 18.9 and 42.3 µs of client CPU per lookup against 36.5 and 70.7
 * through ioredis; `bench:online -- --redis-ioredis-lookups`, GET hot, 38.8
 * µs of server CPU per request against 54.9 (bare route 15.3); quiet, GET
 * 0.85 of the bare route, which ioredis's extra would take below 0.8.
 *
 * Semantics follow the reader connection it replaces: nothing is queued
 * while disconnected (a lookup fails at once: 503), a reply that has not
 * come `timeoutMs` after it was sent and after the last bytes received
 * fails every lookup in flight and drops the connection (a frozen server;
 * a long reply still arriving is not one), and it reconnects by itself,
 * quickly at first, then every second. Only plain `redis://` URLs (host,
 * port, user, password, database); anything else uses ioredis (see
 * factory.ts).
 */
import { Socket } from 'node:net';
import type { Logger } from '../logger.js';
import { Commands, command, RedisError, ReplyParser, type Reply } from './resp.js';

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

/** Whether `url` is a plain redis:// URL this client can connect to. */
export function leanReaderSupports(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'redis:' && u.search === '' && u.hash === '';
  } catch {
    return false;
  }
}

/**
 * A turn's lookups are written together at the end of the turn, except that a batch is written as soon as it
 * holds FLUSH_COMMANDS lookups or FLUSH_FIELDS fields (a GET asks for two, a 100-entity POST for 101). Redis
 * answers the commands of one read together, after running them all: one write of the whole turn left asof idle
 * while Redis worked and Redis idle while asof rendered (asof 79-86% busy under POST load). Written in pieces,
 * the two overlap. Two servers alternating, b / a lookups/s, medians of 6-10 pairs (2026-12-07, bench/RESULTS.md,
 * session 20): against one write per turn, 256 fields gave POST 100 cold 1.06-1.30, hot 1.24; against 256
 * fields, 32 fields (16 GETs) gave GET cold 1.15 and 1.26, GET hot 1.16, POST 100 cold 1.16, hot 1.01 and
 * 1 / 1.11; against 32 fields, 16 lookups or 256 fields (GETs as at 32) gave POST 100 hot 1.08, cold 1.07.
 */
export const FLUSH_COMMANDS = 16;
export const FLUSH_FIELDS = 256;

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
  private batchFields = 0;
  private readonly parser = new ReplyParser();
  private readonly host: string;
  private readonly port: number;
  private readonly setup: Buffer[] = [];
  private down = false;
  /** performance.now() when bytes last came in. */
  private lastData = 0;

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

  /** Whether lookups can be sent: connected, and AUTH and SELECT (when the URL asks for them) accepted. */
  healthy(): boolean {
    return this.ready;
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
      this.batchFields += fields.length;
      if (this.batchFields >= FLUSH_FIELDS || this.batchWaiters.length >= FLUSH_COMMANDS) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.onTurnEnd);
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

  /** The end of a turn that added lookups: what is still in the batch goes (a batch written early left it empty, or with the turn's later lookups). */
  private readonly onTurnEnd = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  private flush(): void {
    this.batchFields = 0;
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
    this.lastData = performance.now();
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

  /** A reply overdue, with no bytes coming in, means a frozen or unreachable server: fail everything in flight and reconnect. */
  private checkTimeouts(): void {
    const oldest = this.waiting[this.head];
    if (oldest === undefined || performance.now() - Math.max(oldest.sentAt, this.lastData) <= this.timeoutMs) return;
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
