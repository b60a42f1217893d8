/**
 * One table: its changelog file, the latest state of a pk table, a per-key
 * index of record offsets, and the group-commit writer.
 *
 * Writes queue up; one writer at a time takes everything queued, turns it into
 * changelog records against the current state, writes one frame, fdatasyncs,
 * applies the records to the in-memory state, tells subscribers, and only then
 * acknowledges every request of the group. So concurrent requests share one
 * fsync, readers never see a record that is not on disk, and a request's
 * answer means its records are durable.
 */
import type { Logger } from '../logger.js';
import { AsofError } from '../errors.js';
import { ChangeType, encodeBatch } from './arrow-codec.js';
import { AppendFailed } from './log.js';
import { keysMetadata, type FrameKey, type IdempotencyKeys, type KeyedAnswer, type KeyedRequest } from './idempotency.js';
import type { ColdTable } from './cold-tier.js';
import type { UnionSource } from './union-read.js';
import { recoverTable, snapshotPath, type Recovered } from './table-recover.js';
import { tierStep, tieredCut } from './table-tier.js';
import { frameBytes, scan, scanArrow, scanBatches, scanKey, storedFrames, type Commit, type TableReads } from './table-scan.js';
import type { SegmentedLog } from './segments.js';
import type { FrameIndex, IndexKey, KeyIndex } from './indexes.js';
import type { PkState } from './pk-state.js';
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

export type { ArrowBatch, ChangeRecord, Commit, KeyRecord } from './table-scan.js';

export type CommitListener = (commit: Commit) => void | Promise<void>;

interface Pending {
  rows: Row[];
  op: WriteOp;
  keyed?: KeyedRequest;
  resolve: (r: WriteResult) => void;
  reject: (e: unknown) => void;
}

export interface TableOptions {
  /**
   * Snapshot once replaying what came after the last snapshot would cost about
   * this many records (or more when the state itself is larger; see maybeSnapshot).
   */
  snapshotEvery: number;
  /** Clock, epoch ms. Injected so tests can control commit times. */
  now: () => number;
  /** How long (ms after its commit) and how many per table idempotency keys are remembered (idempotency.ts). */
  idempotency: { ttlMs: number; capacity: number };
  /** A changelog segment is sealed, and the next one begun, once it holds this many bytes. */
  segmentBytes: number;
}

/**
 * Replaying a frame costs about as much as replaying this many records (the
 * Arrow stream's schema and message parsing); counts toward snapshot cadence
 * so that a log of one-record frames is snapshotted often enough.
 */
const FRAME_COST = 64;

export class Table {
  private log: SegmentedLog;
  private frames: FrameIndex;
  private nextOffset: number;
  private lastCommitTime: number;
  /** Chain hash of the frame holding offset nextOffset - 1 (log.ts), moved with nextOffset so readers see the pair together. */
  private headHash: Buffer;
  /** pk tables: key (schema.indexKeyOf) → latest row, stored by column (pk-state.ts). */
  private state: PkState;
  /** key → offsets of the key's records, ascending (tables with key columns). */
  private keyIndex: KeyIndex;
  private queue: Pending[] = [];
  private flushing = false;
  /** Where the newest snapshot stands. */
  private snapshotAt: { offset: number; frames: number };
  private snapshotting?: Promise<void>;
  private readonly listeners = new Set<CommitListener>();
  /** Keyed requests' answers, from the frames that hold their keys. */
  private readonly keys: IdempotencyKeys;
  /** Offsets below this are only in the cold tier: the hot log's first offset. */
  private coldBelow: number;

  private currentSchema: TableSchema;

  private constructor(
    schema: TableSchema,
    private readonly dir: string,
    private readonly opts: TableOptions,
    private readonly logger: Logger,
    /** The cold tier's copy of this table's changelog (records [0, cold.end())), when tiering is on. */
    private readonly cold: ColdTable | undefined,
    r: Recovered,
  ) {
    this.currentSchema = schema;
    ({ log: this.log, frames: this.frames, nextOffset: this.nextOffset, lastCommitTime: this.lastCommitTime, headHash: this.headHash, state: this.state, keyIndex: this.keyIndex, keys: this.keys, snapshotAt: this.snapshotAt, coldBelow: this.coldBelow } = r);
  }

  get schema(): TableSchema {
    return this.currentSchema;
  }
  /** A schema change (nullable columns appended): the state's rows read the new columns as null. */
  set schema(s: TableSchema) {
    this.currentSchema = s;
    if (s.kind === 'pk') this.state.setColumns(s.columns);
  }

  /** Opens a table's files: loads the newest snapshot, replays the changelog after it, cuts a torn tail (table-recover.ts). */
  static async open(schema: TableSchema, dir: string, opts: TableOptions, logger: Logger, cold?: ColdTable): Promise<Table> {
    return new Table(schema, dir, opts, logger, cold, await recoverTable(schema, dir, opts, logger, cold));
  }

  private applyToState(key: IndexKey, change: number, row: Row, offset: number): void {
    if (change === ChangeType.INSERT || change === ChangeType.UPDATE_AFTER) this.state.set(key, row, offset);
    else if (change === ChangeType.DELETE) this.state.delete(key);
  }

  get name(): string {
    return this.schema.name;
  }
  /** Offset the next record will get; the table's records are [0, nextOffset). */
  get endOffset(): number {
    return this.nextOffset;
  }
  get rowCount(): number {
    return this.schema.kind === 'pk' ? this.state.size : this.nextOffset;
  }
  get lastCommit(): number {
    return this.lastCommitTime;
  }
  get logBytes(): number {
    return this.log.bytes;
  }

  /** The latest row of a pk table by canonical key (a fresh object). */
  get(key: string): Row | undefined {
    return this.state.get(this.schema.indexKeyOfText(key));
  }

  /**
   * pk tables: the slot of the key's latest row in the table's state, -1 when
   * the key has none. Valid until the next commit: read it (`versionAt`,
   * `recordAt`) in the same synchronous step.
   */
  latestSlot(key: string): number {
    return this.state.slotOf(this.schema.indexKeyOfText(key));
  }

  /**
   * pk tables: the changelog offset of the record that wrote the row at a slot
   * from `latestSlot`. It changes exactly when the row does, so readers can
   * key what they derive from a row by it.
   */
  versionAt(slot: number): number {
    return this.state.versionAt(slot);
  }

  /** pk tables: the record that wrote the row at a slot from `latestSlot` (a fresh row object). */
  recordAt(slot: number): { offset: number; commitTime: number; row: Row } {
    const offset = this.state.versionAt(slot);
    return { offset, commitTime: this.frames.commitTimeOf(offset), row: this.state.rowAt(slot) };
  }

  /**
   * Every live row of a pk table as it is at this call (unordered): later
   * writes do not show, however slowly the rows are read. Rows are built as
   * they are read, from a copy of the state's columns.
   */
  liveRows(): IterableIterator<Row> {
    return this.state.freeze().rows();
  }

  subscribe(listener: CommitListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The answer a keyed request got, while its key is remembered (idempotency.ts).
   * Keys are recorded before a commit's requests are answered.
   */
  keyedAnswer(key: string): KeyedAnswer | undefined {
    return this.keys.get(key, this.opts.now());
  }

  /**
   * Queues validated, canonical rows; resolves once they are durable and
   * applied. With `keyed`, the key and fingerprint are written in the same
   * frame as the records (idempotency.ts); the caller checks `keyedAnswer` first.
   */
  write(rows: Row[], op: WriteOp, keyed?: KeyedRequest): Promise<WriteResult> {
    if (op === 'delete' && this.schema.kind !== 'pk') return Promise.reject(new AsofError('ASOF_INVALID_ARGUMENT', `op "delete" needs a pk table; "${this.name}" is a log table`, [{ field: 'op', reason: 'log tables are append-only' }]));
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
        if (this.log.needsRestore) {
          try {
            await this.log.restore();
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
    const pk = this.schema.kind === 'pk';
    const { changes, rows, keys, counts } = planGroup(this.schema, this.state, group);
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
        const payload = encodeBatch(this.schema.columns, changes, rows, keysMetadata(keyed));
        const [meta] = await this.log.append([{ firstOffset, count: rows.length, schemaVersion: this.schema.version, commitTime, payload }]);
        this.frames.push(meta);
      }
    } catch (e) {
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
    this.headHash = this.log.chainHead;
    if (keys) {
      for (let i = 0; i < rows.length; i++) {
        this.keyIndex.add(keys[i], firstOffset + i);
        if (pk) this.applyToState(keys[i], changes[i], rows[i], firstOffset + i);
      }
    }
    if (keyed.length) this.keys.addFrame(firstOffset, rows.length, commitTime, keyed);
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
   * Snapshots once the replay it would save outweighs what it costs. A
   * snapshot writes every live row and every indexed offset; waiting until
   * the replay debt reaches the live rows, or a quarter of the indexed offsets,
   * keeps its cost per record bounded (about one row and four offsets) however
   * large the table grows, and start-up replays at most about that much.
   */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.log.needsRestore) return;
    const debt = this.nextOffset - this.snapshotAt.offset + FRAME_COST * (this.frames.size - this.snapshotAt.frames);
    if (debt < Math.max(this.opts.snapshotEvery, this.state.size, this.keyIndex.entries / 4)) return;
    void this.snapshot().catch((e) => this.logger.warn({ table: this.name, err: String(e) }, 'snapshot failed; will retry later'));
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
   * Writes a snapshot of the table as it is now: pk state, frame and key
   * indexes, and the changelog bytes they cover. One at a time.
   */
  snapshot(): Promise<void> {
    const run = async (): Promise<void> => {
      // Captured synchronously, so it is one consistent point even while writes go on.
      const point = { offset: this.nextOffset, lastCommitTime: this.lastCommitTime, logBytes: this.frames.endPos };
      const frameCount = this.frames.size;
      const rows = this.schema.kind === 'pk' ? this.state.freeze() : undefined;
      await writeSnapshot(snapshotPath(this.dir), this.schema, point, rows, this.frames.serialize(), this.keyIndex.serialize(), this.keys.serialize(this.opts.now()));
      this.snapshotAt = { offset: point.offset, frames: frameCount };
    };
    const next = (this.snapshotting ?? Promise.resolve()).then(run, run);
    const tracked: Promise<void> = next.finally(() => {
      if (this.snapshotting === tracked) this.snapshotting = undefined;
    });
    this.snapshotting = tracked;
    return next;
  }

  private get union(): UnionSource {
    return { frames: this.frames, log: this.log, cold: this.cold, coldBelow: this.coldBelow, end: this.nextOffset };
  }

  /** What reads (table-scan.ts) look up when they begin. */
  private readonly reads: TableReads = { union: () => this.union, schema: () => this.schema, offsetsOf: (key) => this.offsetsOf(key) };

  /** Frames holding offsets in [fromOffset, toOffset), whole and checksum checked (table-scan.ts). */
  frameBytes(fromOffset: number, toOffset: number): ReturnType<typeof frameBytes> {
    return frameBytes(this.reads, fromOffset, toOffset);
  }

  /** Records [0, tieredEnd) are in the cold tier; 0 without one. */
  get tieredEnd(): number {
    return this.cold?.end() ?? 0;
  }

  /** The first offset the hot log holds (records below it are read from the cold tier). */
  get hotStart(): number {
    return this.coldBelow;
  }

  /** Commit time (epoch ms) of the record at `offset` (within [0, endOffset)). */
  commitTimeAt(offset: number): number {
    return this.frames.commitTimeOf(offset);
  }

  /** Tiering, one step (table-tier.ts): returns the records copied into the cold tier. */
  tierStep(olderThan: number, maxBytes: number): Promise<number> {
    return tierStep(this.union, this.name, this.schema.columns, olderThan, maxBytes);
  }

  /** Deletes the sealed segments table-tier.ts's `tieredCut` allows (taking a snapshot when only that is missing). Returns how many went. */
  async dropTieredSegments(olderThan: number): Promise<number> {
    const { cut, needSnapshot } = tieredCut(this.union, this.snapshotAt.offset, olderThan);
    if (needSnapshot && !this.snapshotting) void this.snapshot().catch((e) => this.logger.warn({ table: this.name, err: String(e) }, 'snapshot failed; will retry later'));
    if (!cut) return 0;
    // New reads go to the cold tier before the files go; reads under way keep their pinned segments.
    this.coldBelow = cut.endOffset;
    return this.log.deleteBefore(cut.end);
  }

  /** Offsets of one key's records, ascending; empty when the table has no key columns or the key never appeared. */
  offsetsOf(key: string): number[] {
    // The live array, not a copy (a hot key may have millions of offsets): callers must not change it.
    return this.keyIndex.offsetsOf(key) as number[];
  }

  /** Commits in offset order, rows following the current schema (table-scan.ts). */
  scanBatches(opts: Parameters<typeof scanBatches>[1] = {}): ReturnType<typeof scanBatches> {
    return scanBatches(this.reads, opts);
  }

  /** Commits in offset order as their stored Arrow batches (table-scan.ts). */
  scanArrow(opts: Parameters<typeof scanArrow>[1] = {}): ReturnType<typeof scanArrow> {
    return scanArrow(this.reads, opts);
  }

  /** Records in offset order; with `key`, only that key's, through the key index (table-scan.ts). */
  scan(opts: Parameters<typeof scan>[1] = {}): ReturnType<typeof scan> {
    return scan(this.reads, opts);
  }

  /** One key's records in offset order, an array at a time, through the key index (table-scan.ts). */
  scanKey(key: string, opts: Parameters<typeof scanKey>[2] = {}): ReturnType<typeof scanKey> {
    return scanKey(this.reads, key, opts);
  }

  /** The newest committed offset (-1 when empty) and the chain hash (hex) of the frame holding it: what a decision cites. */
  get chainHead(): { offset: number; hash: string } {
    return { offset: this.nextOffset - 1, hash: this.headHash.toString('hex') };
  }

  /** Frames as stored, checksums and chain hashes reported, not enforced: the audit's chain walk (table-scan.ts). */
  storedFrames(fromOffset = 0, toOffset?: number): ReturnType<typeof storedFrames> {
    return storedFrames(this.reads, fromOffset, toOffset);
  }

  /** Waits for queued writes, snapshots what changed since the last snapshot (so the next start reads nothing), closes the file. */
  async close(): Promise<void> {
    while (this.flushing || this.queue.length) await new Promise((r) => setTimeout(r, 5));
    await this.snapshotting?.catch(() => undefined);
    // A refused frame still in the file would be replayed at the next start: one last try to cut it.
    await this.log.restore().catch((e) => this.logger.error({ table: this.name, err: String(e) }, 'changelog could not be cut back to its last durable frame at close; the next start may replay a refused frame'));
    if (!this.log.needsRestore && (this.nextOffset > this.snapshotAt.offset || this.frames.size > this.snapshotAt.frames)) {
      await this.snapshot().catch((e) => this.logger.warn({ table: this.name, err: String(e) }, 'snapshot at close failed; the next start replays more'));
    }
    await this.log.close();
  }
}
