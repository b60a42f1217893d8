/**
 * Bounded work in flight, per kind (writes, lookups, training sets, searches):
 * a request enters at once while its kind has room, waits in a bounded FIFO
 * queue otherwise, and is refused with 429 ASOF_OVERLOADED (Retry-After) when
 * the queue is full or it waited too long. Every adapter asks the same gates
 * (REST routes declare their kind next to their scope; gRPC methods likewise),
 * so the limits hold for the sum of all clients.
 *
 * Writes also carry a byte budget: the sizes of the bodies admitted at once
 * stay under it (one body larger than the budget is admitted alone; small
 * bodies are not charged, `GateLimits.smallBytes`; a body of unknown length
 * is charged as it arrives, `tryCharge`),
 * so many large concurrent bodies wait, unread, in the kernel's socket buffers
 * instead of in this process's memory. A call already admitted that reads
 * more bodies (gRPC WriteRows, a message at a time) charges each to the
 * budget (`charge`); charges wait only for bytes, never for a slot (see there),
 * so an admitted call cannot deadlock on the queue behind it. Nothing here
 * refuses a request once it was admitted, so an acknowledged write is never
 * affected; an admitted request whose body stalls is ended by its adapter
 * (`Admission.bodyIdleMs`), before that body is written.
 */
import { AsofError } from './errors.js';

export const WORK_KINDS = ['writes', 'lookups', 'trainingSets', 'searches', 'follows'] as const;
export type WorkKind = (typeof WORK_KINDS)[number];

export interface GateLimits {
  /** Requests of this kind worked on at once. */
  inFlight: number;
  /** Requests waiting for a slot; beyond, 429 at once. */
  queue: number;
  /** Longest wait in the queue, ms; beyond, 429. */
  maxWaitMs: number;
  /** Sum of admitted body sizes, bytes (writes); Infinity for none. */
  bytes?: number;
  /**
   * Bodies of at most this many bytes are not charged to `bytes` (the slots
   * bound them: at most inFlight × smallBytes more), and never wait for
   * bytes: a small write is not held up behind large bodies that hold or
   * wait for the whole byte budget, only by the slots. 0 for none.
   */
  smallBytes?: number;
}

/** Releases a slot; idempotent. */
export type Release = () => void;

interface Waiter {
  bytes: number;
  resolve: (r: Release) => void;
  reject: (e: AsofError) => void;
  /** Unset for charges, which never time out (see `charge`). */
  timer?: NodeJS.Timeout;
}

export class Gate {
  active = 0;
  activeBytes = 0;
  /** Requests refused (429) since start. */
  refused = 0;
  private readonly waiting: Waiter[] = [];
  /** Charges of admitted calls waiting for bytes; served before `waiting`. */
  private readonly charges: Waiter[] = [];

  constructor(
    readonly kind: WorkKind,
    readonly limits: GateLimits,
    /** Seconds a refused client is told to wait (Retry-After). */
    private readonly retryAfterS = 1,
  ) {}

  get queued(): number {
    return this.waiting.length;
  }

  /** Requests wait for a slot (not only for bytes): every slot is taken and some wait. */
  get slotsWanted(): boolean {
    return this.waiting.length > 0 && this.active >= this.limits.inFlight;
  }

  /**
   * A slot for one request of `bytes` (declared body size): the release
   * function at once when there is room (no promise on the hot path), a
   * promise of it when the request must queue; throws ASOF_OVERLOADED when
   * the queue is full.
   */
  enter(bytes = 0): Release | Promise<Release> {
    if (bytes <= (this.limits.smallBytes ?? 0)) bytes = 0;
    // Waiters with a slot free wait for bytes only (admitWaiting): a request that takes none passes them.
    if (bytes === 0 ? this.active < this.limits.inFlight : this.waiting.length === 0 && this.fits(bytes)) return this.take(bytes);
    if (this.waiting.length >= this.limits.queue) throw this.overloaded('queue full');
    return new Promise<Release>((resolve, reject) => {
      const w: Waiter = { bytes, resolve, reject };
      w.timer = setTimeout(() => {
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(this.overloaded('waited'));
      }, this.limits.maxWaitMs).unref();
      this.waiting.push(w);
    });
  }

  /**
   * `bytes` more for a call that holds a slot already (a stream's next
   * message), released by the returned function: at once while they fit,
   * else a promise of it. A charge never queues behind calls waiting for a
   * slot (one of them may wait for this call's own slot) and never times out:
   * it waits only for bytes, which admitted calls give back as they finish
   * their current body, and it is served before any waiting call is
   * admitted. With no bytes in use any size passes, as one body larger than
   * the budget is admitted alone.
   */
  charge(bytes: number): Release | Promise<Release> {
    if (this.charges.length === 0 && this.bytesFit(bytes)) return this.takeBytes(bytes);
    return new Promise<Release>((resolve, reject) => this.charges.push({ bytes, resolve, reject }));
  }

  /**
   * `bytes` more for an admitted body of unknown length that holds `held`
   * bytes already and has received more (a REST chunked body: http/body-budget.ts),
   * only if they fit at once: the release function, or undefined (the
   * caller refuses the body). Never waits: bodies that each hold part of the
   * budget and wait for more would wait for each other. With no other bytes
   * in use any size passes, as one body larger than the budget is admitted alone.
   */
  tryCharge(bytes: number, held: number): Release | undefined {
    if (this.charges.length > 0 || (this.activeBytes > held && this.activeBytes + bytes > (this.limits.bytes ?? Infinity))) return undefined;
    return this.takeBytes(bytes);
  }

  /** Refuses everything queued (shutdown): they get 503 ASOF_NOT_READY. */
  drain(): void {
    for (const w of [...this.charges.splice(0), ...this.waiting.splice(0)]) {
      clearTimeout(w.timer);
      w.reject(new AsofError('ASOF_NOT_READY', 'the server is shutting down'));
    }
  }

  private fits(bytes: number): boolean {
    if (this.active >= this.limits.inFlight) return false;
    if (bytes === 0) return true;
    // One body larger than the budget is admitted when no other holds bytes.
    return this.charges.length === 0 && (this.activeBytes === 0 || this.activeBytes + bytes <= (this.limits.bytes ?? Infinity));
  }

  private bytesFit(bytes: number): boolean {
    return this.activeBytes === 0 || this.activeBytes + bytes <= (this.limits.bytes ?? Infinity);
  }

  private take(bytes: number): Release {
    this.active++;
    const releaseBytes = this.takeBytes(bytes);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      releaseBytes();
    };
  }

  private takeBytes(bytes: number): Release {
    this.activeBytes += bytes;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.activeBytes -= bytes;
      this.admitWaiting();
    };
  }

  private admitWaiting(): void {
    while (this.charges.length && this.bytesFit(this.charges[0].bytes)) {
      const c = this.charges.shift()!;
      c.resolve(this.takeBytes(c.bytes));
    }
    // In order; behind a body that waits for bytes, only those that take none (it keeps its place among the others).
    let blocked = false;
    for (let i = 0; i < this.waiting.length && this.active < this.limits.inFlight; ) {
      const w = this.waiting[i];
      if ((blocked && w.bytes > 0) || !this.fits(w.bytes)) {
        blocked = true;
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(this.take(w.bytes));
    }
  }

  /**
   * ASOF_OVERLOADED saying what is in flight now (requests, and bytes of the
   * byte budget), not only the limits: a request refused while one large
   * body holds the whole byte budget is told so, not "16 at once".
   */
  overloaded(why: 'queue full' | 'waited' | 'bytes' = this.waiting.length >= this.limits.queue ? 'queue full' : 'waited'): AsofError {
    this.refused++;
    const budget = this.limits.bytes;
    const bytes = budget === undefined || budget === Infinity ? '' : `, holding ${mib(this.activeBytes)} of the ${mib(budget)} byte budget`;
    const reason =
      why === 'queue full'
        ? `${this.waiting.length} waiting, the most allowed`
        : why === 'waited'
          ? `waited ${this.limits.maxWaitMs} ms for room, the longest allowed`
          : 'a body of unknown length outgrew the room left in the byte budget; nothing of it was written';
    return new AsofError('ASOF_OVERLOADED', `too many ${KIND_TEXT[this.kind]} in flight: ${this.active} at once (limit ${this.limits.inFlight})${bytes}; ${reason}; retry after ${this.retryAfterS} s`, {
      kind: this.kind,
      retryAfterSeconds: this.retryAfterS,
      inFlight: this.active,
      ...(bytes ? { inFlightBytes: this.activeBytes, maxInFlightBytes: budget } : {}),
      queued: this.waiting.length,
    });
  }
}

/** Bytes for a message: whole MiB as such, else KiB or MiB with one decimal. */
const mib = (n: number): string => (n >= 1024 * 1024 ? `${+(n / 1024 / 1024).toFixed(1)} MiB` : `${+(n / 1024).toFixed(1)} KiB`);

const KIND_TEXT: Record<WorkKind, string> = { writes: 'writes', lookups: 'lookups', trainingSets: 'training sets', searches: 'vector searches', follows: 'changelog follows' };

/** How fast an admitted body must arrive (REST bodies; gRPC WriteRows streams: see grpc/ingest.ts). */
export interface BodyPace {
  /** Longest pause without a byte (a stream: without a message), ms. */
  idleMs: number;
  /** Least average rate, bytes a second, over each window of `windowMs`; 0: none. */
  minBytesPerS: number;
  /** The window the rate is averaged over, ms; the first one is the grace period. */
  windowMs: number;
  /** Longest a body read into memory (not a streamed upload) may take in all, ms. */
  maxMs: number;
}

export const DEFAULT_BODY_PACE: BodyPace = { idleMs: 30_000, minBytesPerS: 128 * 1024, windowMs: 5_000, maxMs: 60_000 };

/** Why an admitted body was ended (asof_body_timeouts_total's `reason`). */
export type BodyTimeout = 'idle' | 'slow' | 'too_long';

/**
 * The gates of one server, one per kind of work, and the pace of admitted
 * work: a request holding a slot whose client stops sending its body (REST
 * bytes, a gRPC stream's next message) for `idleMs`, or sends it slower than
 * `minBytesPerS` averaged over a window of `windowMs` (so a trickle of a
 * byte every few seconds, which a pause limit alone never trips), or takes
 * longer than `maxMs` over a body read into memory, is ended with
 * ASOF_REQUEST_TIMEOUT and its slot and bytes freed, so that idle or slow
 * clients cannot hold every slot or the whole byte budget (and stop every
 * write) for as long as they keep their connections open. Long streamed
 * uploads (imports) that keep the rate are never cut.
 */
export class Admission {
  readonly gates: Record<WorkKind, Gate>;
  readonly pace: BodyPace;
  /** Bodies ended since start, by why. */
  readonly bodyTimeouts: Record<BodyTimeout, number> = { idle: 0, slow: 0, too_long: 0 };
  constructor(limits: Record<WorkKind, GateLimits>, pace: Partial<BodyPace> = {}) {
    this.pace = { ...DEFAULT_BODY_PACE, ...pace };
    // Follows never queue (enterFollow): their gate gives a place at once or refuses.
    this.gates = Object.fromEntries(WORK_KINDS.map((k) => [k, new Gate(k, k === 'follows' ? { ...limits[k], queue: 0 } : limits[k])])) as Record<WorkKind, Gate>;
  }

  get bodyIdleMs(): number {
    return this.pace.idleMs;
  }

  /**
   * A place for one changelog follow (SSE or gRPC Follow), released when the
   * follow ends; ASOF_OVERLOADED at once when all are taken. A follow lasts as
   * long as its client wants, so waiting for a place would be waiting
   * indefinitely: the follows gate has no queue (config.ts).
   */
  enterFollow(): Release {
    const slot = this.gates.follows.enter();
    if (typeof slot !== 'function') throw new Error('the follows gate has no queue (constructor)');
    return slot;
  }

  /** The error of a request whose body (`what`: "the request body", "the stream") was ended, counted by why. */
  bodyStalled(what: string, why: BodyTimeout = 'idle', got?: number): AsofError {
    this.bodyTimeouts[why]++;
    const p = this.pace;
    const message =
      why === 'idle'
        ? `${what} stalled: nothing arrived for ${p.idleMs} ms (ASOF_BODY_IDLE_TIMEOUT_MS)`
        : why === 'slow'
          ? `${what} arrived too slowly: ${got ?? 0} bytes in the last ${p.windowMs} ms, below ${p.minBytesPerS} bytes a second (ASOF_BODY_MIN_BYTES_PER_S over ASOF_BODY_RATE_WINDOW_MS)`
          : `${what} took longer than ${p.maxMs} ms in all (ASOF_BODY_MAX_MS)`;
    return new AsofError('ASOF_REQUEST_TIMEOUT', `${message} while holding a slot of bounded work; the request was ended and its unfinished body not written; retry and send it promptly`, {
      reason: why,
      idleMs: p.idleMs,
      minBytesPerS: p.minBytesPerS,
      windowMs: p.windowMs,
      maxMs: p.maxMs,
      ...(got === undefined ? {} : { bytesInWindow: got }),
    });
  }
  drain(): void {
    for (const g of Object.values(this.gates)) g.drain();
  }
}

/** Retry-After seconds of an ASOF_OVERLOADED error, for the adapters' headers and metadata. */
export const retryAfterOf = (e: AsofError): number | undefined => (e.code === 'ASOF_OVERLOADED' ? ((e.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds ?? 1) : undefined);
