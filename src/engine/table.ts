/**
 * One table: its changelog file, the latest state of a pk table, a per-key
 * index of record offsets. Writes go through the group-commit writer
 * (table-commit.ts), reads through table-scan.ts, recovery is
 * table-recover.ts's and tiering table-tier.ts's; this class holds the parts
 * together and answers what the rest of asof asks of a table.
 */
import type { Logger } from '../logger.js';
import { AsofError } from '../errors.js';
import type { IdempotencyKeys, KeyedAnswer, KeyedRequest } from './idempotency.js';
import type { ColdTable } from './cold-tier.js';
import type { UnionSource } from './union-read.js';
import { recoverTable, type Recovered } from './table-recover.js';
import { TableWriter, type CommitListener, type CommitOptions, type WriteOp, type WriteResult } from './table-commit.js';
import { tierStep, tieredCut, type StepLimits } from './table-tier.js';
import { frameBytes, scan, scanArrow, scanBatches, scanKey, scanKeyColumns, storedFrames, type TableReads } from './table-scan.js';
import type { SegmentedLog } from './segments.js';
import type { FrameIndex, KeyIndex } from './indexes.js';
import type { FrozenState, PkState } from './pk-state.js';
import type { Row, TableSchema } from './schema.js';

export type { ArrowBatch, ChangeRecord, Commit, KeyRecord } from './table-scan.js';
export type { CommitListener, WriteOp, WriteResult } from './table-commit.js';

/** Throws the 400 for an op the table does not take: a delete needs a pk table (a log table is append-only). */
export function checkOp(schema: TableSchema, op: WriteOp): void {
  if (op === 'delete' && schema.kind !== 'pk') throw new AsofError('ASOF_INVALID_ARGUMENT', `op "delete" needs a pk table; "${schema.name}" is a log table`, [{ field: 'op', reason: 'log tables are append-only' }]);
}

export interface TableOptions extends CommitOptions {
  /** How long (ms after its commit) and how many per table idempotency keys are remembered (idempotency.ts). */
  idempotency: { ttlMs: number; capacity: number };
  /** A changelog segment is sealed, and the next one begun, once it holds this many bytes. */
  segmentBytes: number;
}

export class Table {
  private log: SegmentedLog;
  private frames: FrameIndex;
  /** pk tables: key (schema.indexKeyOf) → latest row, stored by column (pk-state.ts). */
  private state: PkState;
  /** key → offsets of the key's records, ascending (tables with key columns). */
  private keyIndex: KeyIndex;
  /** Moves the head (next offset, last commit time, chain hash) and takes snapshots. */
  private readonly writer: TableWriter;
  /** Keyed requests' answers, from the frames that hold their keys. */
  private readonly keys: IdempotencyKeys;
  /** Offsets below this are only in the cold tier: the hot log's first offset. */
  private coldBelow: number;

  private currentSchema: TableSchema;

  private constructor(
    schema: TableSchema,
    dir: string,
    private readonly opts: TableOptions,
    logger: Logger,
    /** The cold tier's copy of this table's changelog (records [0, cold.end())), when tiering is on. */
    private readonly cold: ColdTable | undefined,
    r: Recovered,
  ) {
    this.currentSchema = schema;
    ({ log: this.log, frames: this.frames, state: this.state, keyIndex: this.keyIndex, keys: this.keys, coldBelow: this.coldBelow } = r);
    this.writer = new TableWriter(r, r, () => this.currentSchema, dir, opts, logger);
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

  get name(): string {
    return this.schema.name;
  }
  /** Offset the next record will get; the table's records are [0, nextOffset). */
  get endOffset(): number {
    return this.writer.nextOffset;
  }
  get rowCount(): number {
    return this.schema.kind === 'pk' ? this.state.size : this.writer.nextOffset;
  }
  get lastCommit(): number {
    return this.writer.lastCommitTime;
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

  /** pk tables: the record that wrote the row at a slot from `latestSlot`, with the row's values of `columns` (schema positions, in that order). */
  recordAt(slot: number, columns: readonly number[]): { offset: number; commitTime: number; values: unknown[] } {
    const offset = this.state.versionAt(slot);
    return { offset, commitTime: this.frames.commitTimeOf(offset), values: this.state.valuesAt(slot, columns) };
  }

  /**
   * Every live row of a pk table as it is at this call (unordered): later
   * writes do not show, however slowly the rows are read. Rows are built as
   * they are read, from a copy of the state's columns.
   */
  liveRows(): IterableIterator<Row> {
    return this.state.freeze().rows();
  }

  /**
   * pk tables: a copy of the live rows as they are at this call (pk-state.ts
   * `freeze`: about 8 bytes a value), for a reader that starts now and reads
   * later, such as a queued training-set job.
   */
  frozenRows(): FrozenState {
    return this.state.freeze();
  }

  /** Calls `listener` after each durable commit, in offset order, before the commit's requests are answered. */
  subscribe(listener: CommitListener): () => void {
    return this.writer.subscribe(listener);
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
    try {
      checkOp(this.schema, op);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.writer.write(rows, op, keyed);
  }

  /** Writes a snapshot of the table as it is now (table-commit.ts); one at a time. */
  snapshot(): Promise<void> {
    return this.writer.snapshot();
  }

  private get union(): UnionSource {
    return { frames: this.frames, log: this.log, cold: this.cold, coldBelow: this.coldBelow, end: this.writer.nextOffset };
  }

  /** What reads (table-scan.ts) look up when they begin. */
  private readonly reads: TableReads = { union: () => this.union, schema: () => this.schema, offsetsIn: (key, from, to, limit) => this.keyIndex.offsetsIn(key, from, to, limit) };

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
  tierStep(limits: StepLimits): Promise<number> {
    return tierStep(this.union, this.name, this.schema.columns, limits);
  }

  /** Deletes the sealed segments table-tier.ts's `tieredCut` allows (taking a snapshot when only that is missing). Returns how many went. */
  async dropTieredSegments(olderThan: number): Promise<number> {
    const { cut, needSnapshot } = tieredCut(this.union, this.writer.snapshotAt.offset, olderThan);
    if (needSnapshot) this.writer.snapshotInBackground('snapshot failed; will retry later');
    if (!cut) return 0;
    // New reads go to the cold tier before the files go; reads under way keep their pinned segments.
    this.coldBelow = cut.endOffset;
    return this.log.deleteBefore(cut.end);
  }

  /**
   * Offsets of one key's records, ascending, in a new array (a hot key's may be millions: readers of a range
   * use scanKey, which copies only the range); empty when the table has no key columns or the key never appeared.
   */
  offsetsOf(key: string): number[] {
    return this.keyIndex.offsetsOf(key);
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

  /** One key's records as columns, only `columns`' values, through the key index (table-scan.ts). */
  scanKeyColumns(key: string, columns: readonly string[], opts: Parameters<typeof scanKeyColumns>[3] = {}): ReturnType<typeof scanKeyColumns> {
    return scanKeyColumns(this.reads, key, columns, opts);
  }

  /** The newest committed offset (-1 when empty) and the chain hash (hex) of the frame holding it: what a decision cites. */
  get chainHead(): { offset: number; hash: string } {
    return { offset: this.writer.nextOffset - 1, hash: this.writer.headHash.toString('hex') };
  }

  /** Frames as stored, checksums and chain hashes reported, not enforced: the audit's chain walk (table-scan.ts). */
  storedFrames(fromOffset = 0, toOffset?: number): ReturnType<typeof storedFrames> {
    return storedFrames(this.reads, fromOffset, toOffset);
  }

  /** Waits for queued writes, snapshots what changed since the last snapshot (so the next start reads nothing), closes the file. */
  async close(): Promise<void> {
    await this.writer.close();
    await this.log.close();
  }
}
