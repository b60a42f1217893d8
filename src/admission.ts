/**
 * Bounded work in flight, per kind (writes, lookups, training sets, searches):
 * a request enters at once while its kind has room, waits in a bounded FIFO
 * queue otherwise, and is refused with 429 ASOF_OVERLOADED (Retry-After) when
 * the queue is full or it waited too long. Every adapter asks the same gates
 * (REST routes declare their kind next to their scope; gRPC methods likewise),
 * so the limits hold for the sum of all clients.
 *
 * Writes also carry a byte budget: the declared sizes of the bodies admitted
 * at once stay under it (one body larger than the budget is admitted alone),
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

  /**
   * A slot for one request of `bytes` (declared body size): the release
   * function at once when there is room (no promise on the hot path), a
   * promise of it when the request must queue; throws ASOF_OVERLOADED when
   * the queue is full.
   */
  enter(bytes = 0): Release | Promise<Release> {
    if (this.waiting.length === 0 && this.fits(bytes)) return this.take(bytes);
    if (this.waiting.length >= this.limits.queue) throw this.overloaded();
    return new Promise<Release>((resolve, reject) => {
      const w: Waiter = { bytes, resolve, reject };
      w.timer = setTimeout(() => {
        const i = this.waiting.indexOf(w);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(this.overloaded());
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

  /** Refuses everything queued (shutdown): they get 503 ASOF_NOT_READY. */
  drain(): void {
    for (const w of [...this.charges.splice(0), ...this.waiting.splice(0)]) {
      clearTimeout(w.timer);
      w.reject(new AsofError('ASOF_NOT_READY', 'the server is shutting down'));
    }
  }

  private fits(bytes: number): boolean {
    if (this.active >= this.limits.inFlight || this.charges.length > 0) return false;
    const budget = this.limits.bytes ?? Infinity;
    return this.active === 0 || this.activeBytes + bytes <= budget;
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
    while (this.waiting.length && this.fits(this.waiting[0].bytes)) {
      const w = this.waiting.shift()!;
      clearTimeout(w.timer);
      w.resolve(this.take(w.bytes));
    }
  }

  private overloaded(): AsofError {
    this.refused++;
    return new AsofError('ASOF_OVERLOADED', `too many ${KIND_TEXT[this.kind]} in flight (${this.limits.inFlight} at once, ${this.limits.queue} waiting); retry after ${this.retryAfterS} s`, {
      kind: this.kind,
      retryAfterSeconds: this.retryAfterS,
    });
  }
}

const KIND_TEXT: Record<WorkKind, string> = { writes: 'writes', lookups: 'lookups', trainingSets: 'training sets', searches: 'vector searches', follows: 'changelog follows' };

/**
 * The gates of one server, one per kind of work, and the deadline of admitted
 * work: a request holding a slot whose client stops sending its body (REST
 * bytes, a gRPC stream's next message) for `bodyIdleMs` is ended with
 * ASOF_REQUEST_TIMEOUT and its slot freed, so that idle clients cannot hold
 * every slot (and stop every write) for as long as they keep their
 * connections open. A pause, not a total: long uploads that keep sending are
 * never cut.
 */
export class Admission {
  readonly gates: Record<WorkKind, Gate>;
  constructor(
    limits: Record<WorkKind, GateLimits>,
    readonly bodyIdleMs = 30_000,
  ) {
    // Follows never queue (enterFollow): their gate gives a place at once or refuses.
    this.gates = Object.fromEntries(WORK_KINDS.map((k) => [k, new Gate(k, k === 'follows' ? { ...limits[k], queue: 0 } : limits[k])])) as Record<WorkKind, Gate>;
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

  /** The error of a request whose body stalled past `bodyIdleMs`. */
  bodyStalled(what: string): AsofError {
    return new AsofError('ASOF_REQUEST_TIMEOUT', `${what} for ${this.bodyIdleMs} ms (ASOF_BODY_IDLE_TIMEOUT_MS) while holding a slot; the request was ended, retry and keep sending`, { idleMs: this.bodyIdleMs });
  }
  drain(): void {
    for (const g of Object.values(this.gates)) g.drain();
  }
}

/** Retry-After seconds of an ASOF_OVERLOADED error, for the adapters' headers and metadata. */
export const retryAfterOf = (e: AsofError): number | undefined => (e.code === 'ASOF_OVERLOADED' ? ((e.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds ?? 1) : undefined);
