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
 * instead of in this process's memory. Nothing here runs once a request was
 * admitted, so an acknowledged write is never affected.
 */
import { AsofError } from './errors.js';

export const WORK_KINDS = ['writes', 'lookups', 'trainingSets', 'searches'] as const;
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
  timer: NodeJS.Timeout;
}

export class Gate {
  active = 0;
  activeBytes = 0;
  /** Requests refused (429) since start. */
  refused = 0;
  private readonly waiting: Waiter[] = [];

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
      const w: Waiter = {
        bytes,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiting.indexOf(w);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(this.overloaded());
        }, this.limits.maxWaitMs),
      };
      w.timer.unref();
      this.waiting.push(w);
    });
  }

  /** Refuses everything queued (shutdown): they get 503 ASOF_NOT_READY. */
  drain(): void {
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new AsofError('ASOF_NOT_READY', 'the server is shutting down'));
    }
  }

  private fits(bytes: number): boolean {
    if (this.active >= this.limits.inFlight) return false;
    const budget = this.limits.bytes ?? Infinity;
    return this.active === 0 || this.activeBytes + bytes <= budget;
  }

  private take(bytes: number): Release {
    this.active++;
    this.activeBytes += bytes;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      this.activeBytes -= bytes;
      this.admitWaiting();
    };
  }

  private admitWaiting(): void {
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

const KIND_TEXT: Record<WorkKind, string> = { writes: 'writes', lookups: 'lookups', trainingSets: 'training sets', searches: 'vector searches' };

/** The gates of one server, one per kind of work. */
export class Admission {
  readonly gates: Record<WorkKind, Gate>;
  constructor(limits: Record<WorkKind, GateLimits>) {
    this.gates = Object.fromEntries(WORK_KINDS.map((k) => [k, new Gate(k, limits[k])])) as Record<WorkKind, Gate>;
  }
  drain(): void {
    for (const g of Object.values(this.gates)) g.drain();
  }
}

/** Retry-After seconds of an ASOF_OVERLOADED error, for the adapters' headers and metadata. */
export const retryAfterOf = (e: AsofError): number | undefined => (e.code === 'ASOF_OVERLOADED' ? ((e.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds ?? 1) : undefined);
