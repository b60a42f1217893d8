/**
 * The process's one LanceDB thread: a worker thread (lance-host-worker.ts)
 * that every user of LanceDB in the process asks, the cold tier of each
 * Engine (cold-thread.ts) and the vector columns (vectors/lance-client.ts),
 * and that no close stops. LanceDB must never be loaded by two V8 isolates of
 * one process, nor by a second one after the first has gone: LanceDB 0.31 is
 * built on napi-rs 3.9.4, whose custom GC hands every Buffer a native call
 * drops off the JS thread to ONE process-wide threadsafe function, the first
 * isolate's (napi-rs/napi-rs#3357, fixed in napi 3.10). A second isolate's
 * buffers are then released in the first one's heap from another thread (a
 * use-after-free; scripts/lance-crash.mjs's two-workers and main-worker did
 * not crash in 100 runs, but the "free(): invalid next size" and segfaults
 * bench:audit showed with two cold workers fit it); once the first isolate
 * is gone, the others' buffers are never released. What did crash in that
 * script (bench/RESULTS.md, session 14) is a worker terminated under native
 * calls (17 and 18 of 20 runs): their promises resolve into the torn-down
 * isolate. So the main thread never loads LanceDB, nothing terminates this
 * thread, and it lives as long as the process: it is unref'd while idle, so
 * it keeps no process alive.
 *
 * Requests name a module (its URL; the host imports it once) and one of its
 * exported handlers, which answers `{ value, transfer? }`. A thread that dies
 * (an uncaught error, out of memory) fails the requests it had, and tells
 * every `onDeath` listener; the next request starts a new one, no sooner than
 * RESTART_MS after the death, and `generation` counts the starts, so a user
 * opens again what the dead thread held. (The new isolate's off-thread buffers
 * then leak: napi-rs 3.9.4 drops them once the first isolate's function is gone.)
 */
import type { Worker } from 'node:worker_threads';
import { AsofError, type ErrorCode } from '../errors.js';
import { startWorker } from '../util/worker.js';

/** The least time between a thread's death and the next one's start, ms: a Lance commit the dead one had under way lands first. */
const RESTART_MS = 1000;

const newWorker = (): Worker => startWorker('./lance-host-worker', import.meta.url);

export interface HostRequest {
  id: number;
  /** URL of the module whose export `op` answers. */
  module: string;
  op: string;
  args: unknown[];
}
/** `code` and `details`: the thread's error was an AsofError, made again on this side. */
export type HostReply = { id: number; value?: unknown; error?: string; code?: ErrorCode; details?: unknown };
/** What a handler answers: the value, and buffers in it to transfer instead of copy. */
export type HostAnswer = { value: unknown; transfer?: ArrayBuffer[] };

/** The URL of a handler module beside `base` (an import.meta.url): `name`.ts from source, .js compiled. */
export const hostModule = (name: string, base: string): string => new URL(`${name}${base.endsWith('.ts') ? '.ts' : '.js'}`, base).href;

export class LanceHost {
  private worker?: Worker;
  private diedAt = -Infinity;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly deathListeners = new Set<(err: Error, failed: number) => void>();
  /** Threads started so far (1 after the first request; more after deaths). */
  generation = 0;
  /** The exit code of the last thread that stopped (undefined: none has). */
  lastExitCode?: number;

  /** The thread id of the thread now serving (undefined before the first request or after a death). */
  get threadId(): number | undefined {
    return this.worker?.threadId;
  }

  /** Requests sent and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Calls `f` with each death of the thread (and how many requests it failed); returns the unsubscribe. */
  onDeath(f: (err: Error, failed: number) => void): () => void {
    this.deathListeners.add(f);
    return () => this.deathListeners.delete(f);
  }

  /**
   * Stops the thread as a crash would, for tests of what a death does: the
   * requests under way fail, unanswered. It exits once the LanceDB calls under
   * way are done: Worker.terminate under them aborts the process (lance-host-worker.ts).
   */
  async kill(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    const gone = new Promise<void>((r) => w.once('exit', () => r()));
    w.ref(); // until it has exited: with nothing in flight it would be unref'd, and the process could end first
    w.postMessage('die');
    await gone;
  }

  /** The current thread's generation, starting one (after RESTART_MS from the last death) if none runs. */
  async ready(): Promise<number> {
    if (!this.worker) {
      const wait = this.diedAt + RESTART_MS - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      this.worker ??= this.start();
    }
    return this.generation;
  }

  private start(): Worker {
    const w = newWorker();
    this.generation++;
    w.unref();
    let why = '';
    w.on('message', (m: HostReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      if (m.error !== undefined) p.reject(m.code ? new AsofError(m.code, m.error, m.details) : new Error(m.error));
      else p.resolve(m.value);
    });
    w.on('error', (e) => (why = `: ${e.message}`));
    w.on('exit', (code) => {
      if (this.worker === w) this.worker = undefined;
      this.lastExitCode = code;
      this.diedAt = performance.now();
      const err = new Error(`the LanceDB worker thread stopped (exit code ${code})${why}`);
      const failed = this.pending.size;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      for (const f of this.deathListeners) f(err, failed);
    });
    return w;
  }

  /** Runs `op` of `module` in the thread (started if none runs) and waits for its answer. */
  async call<T>(module: string, op: string, args: unknown[], transfer: ArrayBuffer[] = []): Promise<T> {
    await this.ready();
    const w = this.worker!;
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      w.ref();
      w.postMessage({ id, module, op, args } satisfies HostRequest, transfer);
    });
  }
}

/** On globalThis, not in this module: two copies of the module (source and compiled) in one process still share one thread. */
const KEY = Symbol.for('asof.lanceHost');

/** The process's LanceDB thread (made, not started, on the first call). */
export function lanceHost(): LanceHost {
  const g = globalThis as { [KEY]?: LanceHost };
  return (g[KEY] ??= new LanceHost());
}
