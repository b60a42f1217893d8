/**
 * The cold tier as the engine sees it: the ColdTier interface, served by the
 * process's LanceDB thread (lance-host.ts; the handlers are cold-worker.ts),
 * which holds this tier's Lance connection. Tiering copies every record again
 * once it is ASOF_TIER_AFTER old; on the main thread the Arrow work of that
 * copy took 1.2 CPU-ms per 1,000 records from the event loop ingest needs (1M
 * records of bench:ingest's 8 columns, session 11); here the main thread only
 * reads the frames from the hot log and hands them over (0.3 CPU-ms, start-up
 * included). Every Engine of the process (bench:audit opens two) and the
 * vector columns share that one thread: LanceDB crashes a process that loads
 * it in two isolates (lance-host.ts).
 *
 * A thread that dies (an uncaught error, out of memory) fails the requests it
 * had, with an error naming why, and is logged; the next request starts a new
 * one, no sooner than a second after the death, and each table re-reads where
 * its cold data ends before it is used again. So a failed tiering step is
 * retried by the next round (tiering.ts), never lost silently.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { ColdColumn, ColdFrame, ColdRecords, ColdTable, ColdTier, KeyMatch } from './cold-tier.js';
import type { ColdConn, ColdState } from './cold-worker.js';
import { hostModule, lanceHost, type LanceHost } from './lance-host.js';

const HANDLERS = hostModule('./cold-worker', import.meta.url);

/**
 * The Lance cold tier at `uri`, served by the process's LanceDB thread, which
 * starts with the first request of any of its users: here, opening a table
 * that existed before (Engine.open opens every table, to read where its cold
 * data ends), or the first append or read of a table created since. Until
 * then neither the thread's isolate nor LanceDB's native library and its
 * threads are in the process: 55 MB of RSS at start (bench:online's fresh
 * server, session 13). A URI Lance cannot connect to fails that first
 * request, as any other cold-tier error does.
 */
export function openColdThread(uri: string, storageOptions: Record<string, string>, logger: Logger): ColdThreadTier {
  return new ColdThreadTier({ id: randomUUID(), uri, storageOptions }, logger);
}

type Op = 'open' | 'append' | 'frames' | 'keyRecords' | 'close';

export class ColdThreadTier implements ColdTier {
  readonly where: string;
  private readonly host: LanceHost = lanceHost();
  private closed = false;
  /** Whether a request reached the thread (so it holds this tier's connection). */
  private used = false;
  private readonly unlisten: () => void;

  constructor(
    private readonly conn: ColdConn,
    readonly logger: Logger,
  ) {
    this.where = conn.uri.replace(/\/\/[^@/]*@/, '//');
    this.unlisten = this.host.onDeath((err, failed) => {
      if (this.used && !this.closed) this.logger.error({ where: this.where, err: err.message, failed }, `${err.message}; a new one starts with the next request`);
    });
  }

  /** The LanceDB thread now serving (undefined before the first request or after a death). */
  get threadId(): number | undefined {
    return this.host.threadId;
  }

  /** LanceDB threads started in the process so far (1 after the first request; more after deaths). */
  get starts(): number {
    return this.host.generation;
  }

  /** Requests sent to the LanceDB thread and not answered yet (by every user of it). */
  get inFlight(): number {
    return this.host.inFlight;
  }

  /** The exit code of the last LanceDB thread that stopped (undefined: none has). */
  get lastExitCode(): number | undefined {
    return this.host.lastExitCode;
  }

  /** Stops the LanceDB thread now, as a crash would: requests under way fail. For tests of what a death does. */
  async kill(): Promise<void> {
    await this.host.kill();
  }

  /**
   * A table created just now is not looked up in Lance until its first append
   * or read (which then syncs, as after a thread's restart): the internal
   * decisions table every server defines would otherwise start the thread, and
   * load LanceDB, in a server that has nothing to tier.
   */
  async open(table: string, keyColumns: string[], opts: { created?: boolean } = {}): Promise<ColdTable> {
    const t = new ThreadTable(this, table, keyColumns);
    if (!opts.created) await t.sync();
    return t;
  }

  /**
   * Closes every table's Lance handle and the connection, in the LanceDB
   * thread, which stays: it is the process's, never terminated (terminating
   * it under LanceDB's native work aborted the process once, "Check exception
   * status failed"; and a new one could not load LanceDB safely).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unlisten();
    // A thread that died since took the connection with it: none is started just to close.
    if (this.used && this.host.threadId !== undefined) await this.host.call(HANDLERS, 'close', [this.conn]);
  }

  /** The LanceDB thread's generation, starting one if none runs. */
  async ready(): Promise<number> {
    if (this.closed) throw new Error('the cold tier is closed');
    return this.host.ready();
  }

  /** Runs one of cold-worker.ts's handlers for this tier in the LanceDB thread and waits for its answer. */
  async ask<T>(op: Op, args: unknown[], transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.closed) throw new Error('the cold tier is closed');
    this.used = true;
    return this.host.call<T>(HANDLERS, op, [this.conn, ...args], transfer);
  }
}

/** One table's cold data, through the LanceDB thread; `end` as the worker last answered. */
class ThreadTable implements ColdTable {
  private state: ColdState = { end: 0, threadId: 0 };
  private generation = 0;

  constructor(
    private readonly tier: ColdThreadTier,
    private readonly name: string,
    private readonly keyColumns: string[],
  ) {}

  /** Opens the table in the current LanceDB thread and reads where its data ends. */
  async sync(): Promise<void> {
    const g = await this.tier.ready();
    this.state = await this.tier.ask<ColdState>('open', [this.name, this.keyColumns]);
    this.generation = g;
  }

  /** Before a request: a thread started since this table was opened has not opened it. */
  private async current(): Promise<void> {
    if (this.generation !== (await this.tier.ready())) await this.sync();
  }

  end(): number {
    return this.state.end;
  }

  /** The thread that answered the last open or append (the LanceDB thread, never the main thread's 0). */
  get threadId(): number {
    return this.state.threadId;
  }

  async append(frames: ColdFrame[], columns: ColdColumn[], given?: ArrayBuffer): Promise<void> {
    await this.current();
    const plain = columns.map((c) => ({ name: c.name, type: c.type }));
    const { sent, buffer } = packFrames(frames, given);
    try {
      this.state = await this.tier.ask<ColdState>('append', [this.name, sent, plain], [buffer]);
    } catch (e) {
      // The append may have moved the table's end in the thread before it failed: read it again, or the next step
      // would resend from the old end and be refused for good. After the thread's death the next request does.
      if (this.tier.threadId !== undefined) await this.sync().catch(() => undefined);
      throw e;
    }
    if (this.state.maintenance) this.tier.logger.warn({ table: this.name, err: this.state.maintenance }, 'cold tier index upkeep failed; retrying after the next append');
  }

  async frames(from: number, to: number): Promise<ColdFrame[]> {
    await this.current();
    return this.tier.ask<ColdFrame[]>('frames', [this.name, from, to]);
  }

  async keyRecords(key: KeyMatch[], from: number, to: number, expected: number): Promise<ColdRecords[]> {
    await this.current();
    return this.tier.ask<ColdRecords[]>('keyRecords', [this.name, key, from, to, expected]);
  }

  async close(): Promise<void> {
    // The LanceDB thread closes every table with the tier.
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
function packFrames(frames: ColdFrame[], given?: ArrayBuffer): { sent: ColdFrame[]; buffer: ArrayBuffer } {
  // Frames read into a buffer their caller gives up (tierStep), each at a multiple of 8 in it, go as they are: the
  // copy into a new buffer was 0.6-1.3% of the server's CPU samples under bench:ingest, on its main thread (session 15).
  if (given && frames.every((f) => f.bytes.buffer === given && f.bytes.byteOffset % 8 === 0)) return { sent: frames, buffer: given };
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
