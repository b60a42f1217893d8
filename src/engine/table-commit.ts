/**
 * A table's write side: the group-commit writer and the snapshots it triggers.
 *
 * Writes queue up; one writer at a time takes everything queued, turns it into
 * changelog records against the current state (plan.ts), writes one frame
 * (more when one would exceed the frame limit: commitSplit), fdatasyncs, applies the records to the in-memory state, tells subscribers,
 * and only then acknowledges every request of the group. So concurrent
 * requests share one fsync, readers never see a record that is not on disk,
 * and a request's answer means its records are durable.
 *
 * The writer owns the table's head (next offset, last commit time, chain
 * hash): it is the only code that moves it. table.ts reads it from here.
 */
import type { Logger } from '../logger.js';
import { AsofError } from '../errors.js';
import { ChangeType, encodeBatch } from './arrow-codec.js';
import { AppendFailed, FrameTooLarge } from './log.js';
import { keysMetadata, type FrameKey, type KeyedRequest } from './idempotency.js';
import { snapshotPath, type Recovered } from './table-recover.js';
import type { Commit } from './table-scan.js';
import { planGroup } from './plan.js';
import { writeSnapshot } from './snapshot.js';
import type { Row, TableSchema } from './schema.js';

export type WriteOp = 'upsert' | 'delete';

export interface WriteResult {
  count: number;
  /** Offsets of the records written; null when the request wrote none (a delete of absent keys). */
  firstOffset: number | null;
  lastOffset: number | null;
  commitTime: number;
  /** The answer's token offset: its last record, or the end of its commit when it wrote none. */
  tokenOffset: number;
}

export type CommitListener = (commit: Commit) => void | Promise<void>;

interface Pending {
  rows: Row[];
  op: WriteOp;
  keyed?: KeyedRequest;
  resolve: (r: WriteResult) => void;
  reject: (e: unknown) => void;
}

export interface CommitOptions {
  /**
   * Snapshot once replaying what came after the last snapshot would cost about
   * this many records (or more when the state itself is larger; see maybeSnapshot).
   */
  snapshotEvery: number;
  /** Clock, epoch ms. Injected so tests can control commit times. */
  now: () => number;
}

/**
 * Replaying a frame costs about as much as replaying this many records (the
 * Arrow stream's schema and message parsing); counts toward snapshot cadence
 * so that a log of one-record frames is snapshotted often enough.
 */
const FRAME_COST = 64;

export type TableParts = Pick<Recovered, 'log' | 'frames' | 'state' | 'keyIndex' | 'keys'>;

export class TableWriter {
  /** Offset the next record will get. */
  nextOffset: number;
  lastCommitTime: number;
  /** Chain hash of the frame holding offset nextOffset - 1 (log.ts), moved with nextOffset so readers see the pair together. */
  headHash: Buffer;
  /** Where the newest snapshot stands. */
  snapshotAt: { offset: number; frames: number };
  private snapshotting?: Promise<void>;
  private queue: Pending[] = [];
  private flushing = false;
  private readonly listeners = new Set<CommitListener>();

  constructor(
    /** The table's log, indexes and state, shared with table.ts (which only reads them). */
    private readonly t: TableParts,
    head: Pick<Recovered, 'nextOffset' | 'lastCommitTime' | 'headHash' | 'snapshotAt'>,
    private readonly schema: () => TableSchema,
    private readonly dir: string,
    private readonly opts: CommitOptions,
    private readonly logger: Logger,
  ) {
    ({ nextOffset: this.nextOffset, lastCommitTime: this.lastCommitTime, headHash: this.headHash, snapshotAt: this.snapshotAt } = head);
  }

  private get name(): string {
    return this.schema().name;
  }

  subscribe(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Queues validated, canonical rows; resolves once they are durable and applied (see table.ts `write`). */
  write(rows: Row[], op: WriteOp, keyed?: KeyedRequest): Promise<WriteResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ rows, op, keyed, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const group = this.queue;
        this.queue = [];
        if (this.t.log.needsRestore) {
          try {
            await this.t.log.restore();
            this.logger.warn({ table: this.name }, 'changelog cut back to its last durable frame; the table takes writes again');
          } catch (e) {
            const err = new AsofError('ASOF_STORAGE_FAILED', `table "${this.name}" takes no writes until its changelog is cut back to its last durable frame, which failed again: ${(e as Error).message}; nothing was written`);
            for (const p of group) p.reject(err);
            continue;
          }
        }
        await this.commitGroup(group);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async commitGroup(group: Pending[]): Promise<void> {
    const schema = this.schema();
    const { log, frames, state, keyIndex } = this.t;
    const { changes, rows, keys, counts } = planGroup(schema, state, group);
    const commitTime = Math.max(this.opts.now(), this.lastCommitTime);
    const firstOffset = this.nextOffset;
    const keyed: FrameKey[] = [];
    for (let i = 0, at = 0; i < group.length; at += counts[i++]) {
      const k = group[i].keyed;
      if (k) keyed.push([k.key, k.fingerprint, at, counts[i]]);
    }
    try {
      // A keyed request that writes no record still needs a frame (of none) to hold its key.
      if (rows.length > 0 || keyed.length > 0) {
        const payload = encodeBatch(schema.columns, changes, rows, keysMetadata(keyed));
        const [meta] = await log.append([{ firstOffset, count: rows.length, schemaVersion: schema.version, commitTime, payload }]);
        frames.push(meta);
      }
    } catch (e) {
      if (e instanceof FrameTooLarge) {
        await this.commitSplit(group, e);
        return;
      }
      if (!(e instanceof AppendFailed)) {
        // Nothing reached the file (the batch could not be encoded): only this group fails.
        for (const p of group) p.reject(e);
        return;
      }
      // Nothing of the group is acknowledged. Once the file is back at its last durable frame (log.ts), later groups go on.
      this.logger.error({ table: this.name, err: String(e.cause), restored: e.restored }, e.restored ? 'changelog write failed; cut back to the last durable frame' : 'changelog write failed and the file could not be cut back; no writes until it is');
      const err = new AsofError(
        'ASOF_STORAGE_FAILED',
        `changelog write failed for table "${this.name}": ${e.cause.message}; nothing was written${e.restored ? '' : ' (the table takes no writes until its changelog is cut back to its last durable frame)'}`,
      );
      for (const p of group) p.reject(err);
      return;
    }
    this.nextOffset = firstOffset + rows.length;
    this.lastCommitTime = commitTime;
    this.headHash = log.chainHead;
    if (keys) {
      const pk = schema.kind === 'pk';
      for (let i = 0; i < rows.length; i++) {
        const key = keys[i];
        if (key === null) continue; // a log record whose key is null belongs to no key (schema.keyOf)
        keyIndex.add(key, firstOffset + i);
        if (!pk) continue;
        const change = changes[i];
        if (change === ChangeType.INSERT || change === ChangeType.UPDATE_AFTER) state.set(key, rows[i], firstOffset + i);
        else if (change === ChangeType.DELETE) state.delete(key);
      }
    }
    if (keyed.length) this.t.keys.addFrame(firstOffset, rows.length, commitTime, keyed);
    if (rows.length > 0 && this.listeners.size > 0) await this.notify({ table: this.name, firstOffset, commitTime, changes, rows });
    let first = firstOffset;
    group.forEach((p, i) => {
      const count = counts[i];
      p.resolve({ count, firstOffset: count ? first : null, lastOffset: count ? first + count - 1 : null, commitTime, tokenOffset: count ? first + count - 1 : firstOffset + rows.length - 1 });
      first += count;
    });
    this.maybeSnapshot();
  }

  /**
   * A group whose frame would be larger than start-up reads (frame.ts; nothing
   * was written): its two halves are committed one after the other, each its
   * own frame, so requests that fit are never refused for what others sent
   * with them. A request whose rows alone make too large a frame is refused
   * and writes nothing.
   */
  private async commitSplit(group: Pending[], e: FrameTooLarge): Promise<void> {
    if (group.length === 1) {
      group[0].reject(
        new AsofError('ASOF_PAYLOAD_TOO_LARGE', `the batch for table "${this.name}" makes a changelog frame of ${e.bytes} bytes, more than the ${e.limit} bytes one frame may hold; nothing was written: send its rows in smaller requests`, {
          table: this.name,
          frameBytes: e.bytes,
          maxFrameBytes: e.limit,
        }),
      );
      return;
    }
    const half = Math.ceil(group.length / 2);
    await this.commitGroup(group.slice(0, half));
    await this.commitGroup(group.slice(half));
  }

  private async notify(commit: Commit): Promise<void> {
    for (const l of this.listeners) {
      try {
        await l(commit);
      } catch (e) {
        // A subscriber (a materializer) tracks its own progress and catches up; the write itself is durable.
        this.logger.warn({ table: this.name, err: String(e) }, 'commit subscriber failed');
      }
    }
  }

  /**
   * Snapshots once the replay it would save outweighs what it costs. A
   * snapshot writes every live row and every indexed offset; waiting until
   * the replay debt reaches the live rows, or a quarter of the indexed offsets,
   * keeps its cost per record bounded (about one row and four offsets) however
   * large the table grows, and start-up replays at most about that much.
   */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.t.log.needsRestore) return;
    const debt = this.nextOffset - this.snapshotAt.offset + FRAME_COST * (this.t.frames.size - this.snapshotAt.frames);
    if (debt < Math.max(this.opts.snapshotEvery, this.t.state.size, this.t.keyIndex.entries / 4)) return;
    this.snapshotInBackground('snapshot failed; will retry later');
  }

  /** Starts a snapshot unless one is under way; a failure is logged, never thrown. */
  snapshotInBackground(failed: string): void {
    if (!this.snapshotting) void this.snapshot().catch((e) => this.logger.warn({ table: this.name, err: String(e) }, failed));
  }

  /**
   * Writes a snapshot of the table as it is now: pk state, frame and key
   * indexes, and the changelog bytes they cover. One at a time.
   */
  snapshot(): Promise<void> {
    const run = async (): Promise<void> => {
      const { frames, state, keyIndex, keys } = this.t;
      const schema = this.schema();
      // Captured synchronously, so it is one consistent point even while writes go on.
      const point = { offset: this.nextOffset, lastCommitTime: this.lastCommitTime, logBytes: frames.endPos };
      const frameCount = frames.size;
      const rows = schema.kind === 'pk' ? state.freeze() : undefined;
      await writeSnapshot(snapshotPath(this.dir), schema, point, rows, frames.serialize(), keyIndex.serialize(), keys.serialize(this.opts.now()));
      this.snapshotAt = { offset: point.offset, frames: frameCount };
    };
    const next = (this.snapshotting ?? Promise.resolve()).then(run, run);
    // Only the caller handles `next`'s failure: the tracked copy never rejects, or a failed snapshot (a full disk) would be an unhandled rejection, which ends the process.
    const tracked: Promise<void> = next.then(noop, noop).finally(() => {
      if (this.snapshotting === tracked) this.snapshotting = undefined;
    });
    this.snapshotting = tracked;
    return next;
  }

  /**
   * Waits for queued writes and a snapshot under way, cuts a refused frame
   * still in the file, and snapshots what changed since the last snapshot (so
   * the next start reads nothing). The log itself stays open.
   */
  async close(): Promise<void> {
    const { log, frames } = this.t;
    while (this.flushing || this.queue.length) await new Promise((r) => setTimeout(r, 5));
    await this.snapshotting?.catch(() => undefined);
    // A refused frame still in the file would be replayed at the next start: one last try to cut it.
    await log.restore().catch((e) => this.logger.error({ table: this.name, err: String(e) }, 'changelog could not be cut back to its last durable frame at close; the next start may replay a refused frame'));
    if (!log.needsRestore && (this.nextOffset > this.snapshotAt.offset || frames.size > this.snapshotAt.frames)) {
      await this.snapshot().catch((e) => this.logger.warn({ table: this.name, err: String(e) }, 'snapshot at close failed; the next start replays more'));
    }
  }
}

const noop = (): void => undefined;
