/**
 * Ingest threads: large JSON write bodies are parsed and validated on them,
 * off the event loop that serves every request and commits every write
 * (json-rows.ts says why, and what crosses back). A body goes to the thread
 * with the fewest in flight. A thread that dies answers what it had with
 * nothing (the main thread parses those bodies itself) and is started again
 * by the next body, no sooner than RESTART_MS after its death.
 */
import type { Worker } from 'node:worker_threads';
import type { TableSchema } from '../engine/schema.js';
import type { Logger } from '../logger.js';
import { offThreadBodies } from '../metrics.js';
import { startWorker } from '../util/worker.js';
import { SchemaCache, type ParsedRows } from './json-rows.js';
import type { ParseReply, ParseRequest } from './parse-thread.js';

/** The least time between a thread's death and its next start, ms: meanwhile bodies are parsed on the main thread. */
const RESTART_MS = 1000;

interface Thread {
  worker?: Worker;
  diedAt: number;
  pending: Map<number, (p: ParsedRows | undefined) => void>;
  /** Definitions this thread was sent. */
  sent: Set<string>;
}

export class ParsePool {
  private readonly threads: Thread[];
  private nextId = 1;
  private closed = false;

  constructor(
    size: number,
    private readonly logger: Logger,
  ) {
    this.threads = Array.from({ length: size }, () => ({ diedAt: -Infinity, pending: new Map(), sent: new Set() }));
  }

  get size(): number {
    return this.threads.length;
  }

  /** The body's rows as columns, or undefined when the main thread must parse it (no thread can take it, or json-rows.ts declined). */
  parse(bytes: Uint8Array, schema: TableSchema, maxRows: number): Promise<ParsedRows | undefined> {
    let t: Thread | undefined;
    for (const x of this.threads) if (!t || x.pending.size < t.pending.size) t = x;
    if (!t || this.closed) return Promise.resolve(undefined);
    if (!t.worker) {
      if (performance.now() - t.diedAt < RESTART_MS) return Promise.resolve(undefined);
      t.worker = this.start(t);
    }
    const key = SchemaCache.keyOf(schema.def);
    const def = t.sent.has(key) ? undefined : schema.def;
    t.sent.add(key);
    // A copy: the body's buffer may share its memory with other buffers, which a transfer would take from them.
    const copy = new Uint8Array(bytes);
    const id = this.nextId++;
    const worker = t.worker;
    const pending = t.pending;
    return new Promise((resolve) => {
      pending.set(id, resolve);
      worker.postMessage({ id, bytes: copy, schemaKey: key, def, maxRows } satisfies ParseRequest, [copy.buffer]);
    });
  }

  private start(t: Thread): Worker {
    const w = startWorker('./parse-thread', import.meta.url);
    // Never what keeps the process alive: a body in flight belongs to a request, whose socket does.
    w.unref();
    let why = '';
    w.on('message', (m: ParseReply) => {
      const done = t.pending.get(m.id);
      if (!done) return;
      t.pending.delete(m.id);
      if (m.forgot) t.sent.clear();
      if (m.parsed) offThreadBodies.parsed++;
      else offThreadBodies.declined++;
      done(m.parsed);
    });
    w.on('error', (e) => (why = `: ${e.message}`));
    w.on('exit', (code) => {
      if (t.worker === w) t.worker = undefined;
      t.sent.clear();
      t.diedAt = performance.now();
      if (!this.closed) this.logger.error({ code, failed: t.pending.size }, `an ingest thread stopped (exit code ${code})${why}; its bodies are parsed on the main thread, and a new thread starts with the next body`);
      offThreadBodies.declined += t.pending.size;
      for (const done of t.pending.values()) done(undefined);
      t.pending.clear();
    });
    return w;
  }

  /** Stops the threads; bodies in flight are answered with nothing (parsed on the main thread). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.worker?.terminate()));
  }

  /** Stops one thread as a crash would (tests). */
  async kill(i = 0): Promise<void> {
    await this.threads[i]?.worker?.terminate();
  }
}
