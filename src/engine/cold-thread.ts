/**
 * The cold tier as the engine sees it: the ColdTier interface, served by a
 * worker thread (cold-worker.ts) that holds the Lance connection. Tiering
 * copies every record again once it is ASOF_TIER_AFTER old; on the main
 * thread the Arrow work of that copy took 1.2 CPU-ms per 1,000 records from
 * the event loop ingest needs (1M records of bench:ingest's 8 columns, session
 * 11); here the main thread only reads the frames from the hot log and hands
 * them over (0.3 CPU-ms, start-up included).
 *
 * A worker that dies (an uncaught error, out of memory) fails the requests it
 * had, with an error naming why, and is logged; the next request starts a new
 * one, no sooner than RESTART_MS after the death, and each table re-reads
 * where its cold data ends before it is used again. So a failed tiering step
 * is retried by the next round (tiering.ts), never lost silently.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../logger.js';
import type { ColdColumn, ColdFrame, ColdRecords, ColdTable, ColdTier, KeyMatch } from './cold-tier.js';
import type { ColdReply, ColdRequest, ColdState, ColdWorkerData } from './cold-worker.js';

/** The least time between a worker's death and the next one's start, ms: a Lance commit the dead one had under way lands first, and is then seen by the table's re-read end. */
const RESTART_MS = 1000;
/** How long close waits for the worker to exit by itself before terminating it. */
const CLOSE_WAIT_MS = 5000;

const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(FROM_SOURCE ? './cold-worker.ts' : './cold-worker.js', import.meta.url);

/** Compiled, the worker is its .js file. From TypeScript source (tests, through tsx) it registers tsx itself first: Node 20 applies no --import hook in a worker. */
const newWorker = (workerData: ColdWorkerData): Worker =>
  FROM_SOURCE ? new Worker(`import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`, { eval: true, workerData }) : new Worker(WORKER_URL, { workerData });

type Ask = ColdRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

/**
 * The Lance cold tier at `uri`, served by a worker thread that starts with the
 * first request: opening a table that existed before (Engine.open opens every
 * table, to read where its cold data ends), or the first append or read of a
 * table created since. Until then neither the worker's isolate nor LanceDB's
 * native library and its threads are in the process: 55 MB of RSS at start
 * (bench:online's fresh server, session 13). A URI Lance cannot connect to
 * fails that first request, as any other cold-tier error does.
 */
export function openColdThread(uri: string, storageOptions: Record<string, string>, logger: Logger): ColdThreadTier {
  return new ColdThreadTier({ uri, storageOptions }, logger);
}

export class ColdThreadTier implements ColdTier {
  readonly where: string;
  private worker?: Worker;
  /** Counts worker starts: a table opened under an older one opens again before its next request. */
  private generation = 0;
  private diedAt = -Infinity;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private closed = false;
  /** The exit code of the last worker that stopped (undefined: none has). 0 is an exit by itself; terminate gives 1. */
  lastExitCode?: number;

  constructor(
    private readonly data: ColdWorkerData,
    private readonly logger: Logger,
  ) {
    this.where = data.uri.replace(/\/\/[^@/]*@/, '//');
  }

  /** The thread id of the worker now serving (undefined before the first request or after a death). */
  get threadId(): number | undefined {
    return this.worker?.threadId;
  }

  /** Workers started so far (1 after the first request; more after deaths). */
  get starts(): number {
    return this.generation;
  }

  /** Requests sent to the worker and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Stops the worker now, as a crash would: requests under way fail. For tests of what a death does. */
  async kill(): Promise<void> {
    await this.worker?.terminate();
  }

  /**
   * A table created just now is not looked up in Lance until its first append
   * or read (which then syncs, as after a worker's restart): the internal
   * decisions table every server defines would otherwise start the worker, and
   * load LanceDB, in a server that has nothing to tier.
   */
  async open(table: string, keyColumns: string[], opts: { created?: boolean } = {}): Promise<ColdTable> {
    const t = new ThreadTable(this, table, keyColumns);
    if (!opts.created) await t.sync();
    return t;
  }

  /**
   * Closes every table's Lance handle and the connection, then lets the worker
   * exit by itself (it closes its port after answering). Terminating it instead
   * could stop the thread while LanceDB's native side still had calls queued
   * into it, which aborted the process once ("Check exception status failed");
   * terminate is kept for a worker that has not exited after CLOSE_WAIT_MS.
   */
  async close(): Promise<void> {
    const w = this.worker;
    let asked = false;
    try {
      if (w && !this.closed) {
        const exited = new Promise<void>((r) => w.once('exit', () => r()));
        await this.ask({ op: 'close' });
        asked = true;
        this.closed = true; // before the exit, so it is not logged as a death
        let timer: NodeJS.Timeout | undefined;
        const late = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), CLOSE_WAIT_MS)))]);
        clearTimeout(timer);
        if (!late) return;
      }
    } finally {
      this.closed = true;
      if (!asked || this.worker === w) await w?.terminate();
    }
  }

  /** The current worker's generation, starting one (after RESTART_MS from the last death) if none runs. */
  async ready(): Promise<number> {
    if (this.closed) throw new Error('the cold tier is closed');
    if (!this.worker) {
      const wait = this.diedAt + RESTART_MS - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      this.worker ??= this.start();
    }
    return this.generation;
  }

  private start(): Worker {
    const w = newWorker(this.data);
    this.generation++;
    w.unref();
    let why = '';
    w.on('message', (m: ColdReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.value);
    });
    w.on('error', (e) => (why = `: ${e.message}`));
    w.on('exit', (code) => {
      if (this.worker === w) this.worker = undefined;
      this.lastExitCode = code;
      this.diedAt = performance.now();
      const err = new Error(`the cold tier's worker thread stopped (exit code ${code})${why}`);
      if (!this.closed) this.logger.error({ where: this.where, code, err: why.slice(2) || undefined, failed: this.pending.size }, `${err.message}; a new one starts with the next request`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
    return w;
  }

  /** Sends one request to the worker (started if none runs) and waits for its answer. */
  async ask<T>(req: Ask, transfer: ArrayBuffer[] = []): Promise<T> {
    await this.ready();
    const w = this.worker!;
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      w.ref();
      w.postMessage({ ...req, id } as ColdRequest, transfer);
    });
  }
}

/** One table's cold data, through the worker; `end` and `versions` as the worker last answered. */
class ThreadTable implements ColdTable {
  private state: ColdState = { end: 0, versions: [], threadId: 0 };
  private generation = 0;

  constructor(
    private readonly tier: ColdThreadTier,
    private readonly name: string,
    private readonly keyColumns: string[],
  ) {}

  /** Opens the table in the current worker and reads where its data ends. */
  async sync(): Promise<void> {
    const g = await this.tier.ready();
    this.state = await this.tier.ask<ColdState>({ op: 'open', table: this.name, keyColumns: this.keyColumns });
    this.generation = g;
  }

  /** Before a request: a worker started since this table was opened has not opened it. */
  private async current(): Promise<void> {
    if (this.generation !== (await this.tier.ready())) await this.sync();
  }

  end(): number {
    return this.state.end;
  }

  versions(): { version: number; end: number }[] {
    return this.state.versions.slice();
  }

  /** The thread that answered the last open or append (the worker's, never the main thread's 0). */
  get threadId(): number {
    return this.state.threadId;
  }

  async append(frames: ColdFrame[], columns: ColdColumn[]): Promise<void> {
    await this.current();
    const plain = columns.map((c) => ({ name: c.name, type: c.type }));
    const { sent, buffer } = packFrames(frames);
    this.state = await this.tier.ask<ColdState>({ op: 'append', table: this.name, frames: sent, columns: plain }, [buffer]);
  }

  async frames(from: number, to: number): Promise<ColdFrame[]> {
    await this.current();
    return this.tier.ask<ColdFrame[]>({ op: 'frames', table: this.name, from, to });
  }

  async keyRecords(key: KeyMatch[], from: number, to: number, expected: number): Promise<ColdRecords[]> {
    await this.current();
    return this.tier.ask<ColdRecords[]>({ op: 'keyRecords', table: this.name, key, from, to, expected });
  }

  async close(): Promise<void> {
    // The worker closes every table with the tier.
  }
}

/**
 * A step's frames copied into one new buffer, which is transferred to the
 * worker, not cloned: the hot log's read buffers stay the main thread's, and
 * the bytes are copied once, here, instead of serialised into the message
 * and copied out again in the worker (a clone of a 4-32 MiB step grew its
 * buffer as it went: the worker's page faults and copies were ~10% of the
 * server's CPU samples with tiering keeping up, session 12). Each frame
 * starts at a multiple of 8, so its Arrow payload (at 40 or 72 bytes) is
 * aligned and is read in place.
 */
function packFrames(frames: ColdFrame[]): { sent: ColdFrame[]; buffer: ArrayBuffer } {
  let total = 0;
  for (const f of frames) total += (f.bytes.length + 7) & ~7;
  const all = new Uint8Array(total);
  let at = 0;
  const sent = frames.map((f) => {
    all.set(f.bytes, at);
    const bytes = all.subarray(at, at + f.bytes.length);
    at += (f.bytes.length + 7) & ~7;
    return { meta: f.meta, bytes };
  });
  return { sent, buffer: all.buffer };
}
