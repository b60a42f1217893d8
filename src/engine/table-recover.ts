/**
 * Opening a table: load the newest snapshot (state and indexes at some
 * offset), replay the changelog frames after it into the indexes and state,
 * and cut a torn tail; with no usable snapshot, replay the whole changelog,
 * the part below the hot log from the cold tier. The changelog is the source
 * of truth: a snapshot that does not match it is ignored.
 */
import { join } from 'node:path';
import type { Logger } from '../logger.js';
import { ChangeType, decodeIpc, decodeValues, streamMetadata } from './arrow-codec.js';
import { FILE_START, SnapshotMismatch, type FrameMeta, type ResumePoint } from './log.js';
import { IdempotencyKeys, keysOf } from './idempotency.js';
import type { ColdTable } from './cold-tier.js';
import { replayCold } from './union-read.js';
import { SegmentedLog } from './segments.js';
import { FrameIndex, KeyIndex, type IndexKey } from './indexes.js';
import { PkState } from './pk-state.js';
import { readSnapshot } from './snapshot.js';
import type { TableSchema } from './schema.js';

/** Where a table's snapshot is kept. */
export const snapshotPath = (dir: string): string => join(dir, 'state.snapshot');

/** A table as recovered: everything it holds in memory, and its open changelog. */
export interface Recovered {
  log: SegmentedLog;
  frames: FrameIndex;
  nextOffset: number;
  lastCommitTime: number;
  /** Chain hash of the frame holding offset nextOffset - 1. */
  headHash: Buffer;
  state: PkState;
  keyIndex: KeyIndex;
  keys: IdempotencyKeys;
  /** Where the snapshot loaded stands ({0, 0} without one). */
  snapshotAt: { offset: number; frames: number };
  /** The hot log's first offset: records below it are only in the cold tier. */
  coldBelow: number;
}

export interface RecoverOptions {
  idempotency: { ttlMs: number; capacity: number };
  segmentBytes: number;
}

/** Opens a table's files (see the top of this file). */
export function recoverTable(schema: TableSchema, dir: string, opts: RecoverOptions, logger: Logger, cold: ColdTable | undefined): Promise<Recovered> {
  return new Recovery(schema, dir, opts, logger, cold).run();
}

class Recovery {
  private frames = new FrameIndex();
  private nextOffset = 0;
  private lastCommitTime = 0;
  private state: PkState;
  private keyIndex: KeyIndex;
  private readonly keys: IdempotencyKeys;
  private snapshotAt = { offset: 0, frames: 0 };

  constructor(
    private readonly schema: TableSchema,
    private readonly dir: string,
    private readonly opts: RecoverOptions,
    private readonly logger: Logger,
    private readonly cold: ColdTable | undefined,
  ) {
    this.keys = new IdempotencyKeys(opts.idempotency.ttlMs, opts.idempotency.capacity);
    this.keyIndex = new KeyIndex(schema.numericKey);
    this.state = schema.kind !== 'pk' ? new PkState([]) : new PkState(schema.columns, schema.numericKey ? schema.columns.indexOf(schema.keyColumns[0]) : undefined);
  }

  private get name(): string {
    return this.schema.name;
  }

  async run(): Promise<Recovered> {
    const started = performance.now();
    const s = this.schema;
    const keyCols = s.keyColumns.map((c) => s.columns.indexOf(c));
    const snap = await readSnapshot(snapshotPath(this.dir), s, (values, n) => {
      const keyValues = keyCols.map((j) => values[j]);
      // A snapshot's rows carry no versions; they are set from its key index below.
      for (let i = 0; i < n; i++) this.state.setAt(this.keyAt(keyValues, i)!, values, i, NaN); // pk keys are never null
    });
    let opened: Awaited<ReturnType<typeof SegmentedLog.open>> | undefined;
    if (snap && 'damaged' in snap) {
      this.state.clear();
      this.logger.warn({ table: this.name, reason: snap.damaged }, `snapshot unusable (${snap.damaged}); replaying the whole changelog`);
    } else if (snap) {
      this.frames = snap.frames;
      this.keyIndex = snap.keys;
      this.keys.load(snap.idempotency);
      if (s.kind === 'pk') this.state.fillVersions((key) => snap.keys.lastOffset(key));
      this.nextOffset = snap.offset;
      this.lastCommitTime = snap.lastCommitTime;
      this.snapshotAt = { offset: snap.offset, frames: snap.frames.size };
      const lastFrame = snap.frames.size ? snap.frames.get(snap.frames.size - 1) : undefined;
      opened = await this.openLog({ pos: snap.logBytes, offset: snap.offset, commitTime: lastFrame ? snap.lastCommitTime : -Infinity, lastFrame }).catch((e) => {
        if (!(e instanceof SnapshotMismatch)) throw e;
        // The changelog is the source of truth: a snapshot that does not match it is ignored.
        this.logger.warn({ table: this.name, reason: e.message }, `snapshot unusable (${e.message}); replaying the whole changelog`);
        this.state.clear();
        this.keys.clear();
        this.frames = new FrameIndex();
        this.keyIndex = new KeyIndex(this.schema.numericKey);
        this.nextOffset = 0;
        this.lastCommitTime = 0;
        this.snapshotAt = { offset: 0, frames: 0 };
        return undefined;
      });
    }
    const { log, report } = opened ?? (await this.openLog(FILE_START));
    const from = opened ? this.snapshotAt.offset : 0;
    const coldBelow = this.frames.offsetAtPos(log.segments()[0].base, this.nextOffset);
    const cold = this.cold;
    if ((!cold && coldBelow > 0) || (cold && cold.end() < coldBelow)) await log.close();
    if (!cold && coldBelow > 0) {
      throw new Error(`table "${this.name}": the hot changelog starts at offset ${coldBelow}, the records below it are in the cold tier, and tiering is off (ASOF_TIER_AFTER=off): set ASOF_LANCE_URI to where they were tiered`);
    }
    if (cold && cold.end() < coldBelow) {
      throw new Error(`table "${this.name}": the hot changelog starts at offset ${coldBelow} but the cold tier holds only [0, ${cold.end()}): records are missing (is ASOF_LANCE_URI the one this data folder was tiered to?)`);
    }
    if (report.cutBytes > 0) {
      this.logger.warn({ table: this.name, cutBytes: report.cutBytes, reason: report.cutReason, keptRecords: this.nextOffset }, `changelog tail cut: ${report.cutBytes} bytes after the last whole frame (${report.cutReason})`);
    }
    this.logger.info({ table: this.name, records: this.nextOffset, frames: this.frames.size, fromSnapshot: from, replayed: report.records, ms: Math.round(performance.now() - started) }, 'table recovered');
    const { frames, nextOffset, lastCommitTime, state, keyIndex, keys, snapshotAt } = this;
    return { log, frames, nextOffset, lastCommitTime, headHash: log.chainHead, state, keyIndex, keys, snapshotAt, coldBelow };
  }

  /** Opens the changelog at `from`, replaying each frame after it into the indexes and state. */
  private openLog(from: ResumePoint): ReturnType<typeof SegmentedLog.open> {
    const onFrame = (meta: FrameMeta, payload: Uint8Array): void => {
      this.frames.push(meta);
      this.nextOffset = meta.firstOffset + meta.count;
      this.lastCommitTime = meta.commitTime;
      this.replayFrame(meta, payload);
    };
    return SegmentedLog.open(
      this.dir,
      from,
      this.opts.segmentBytes,
      onFrame,
      async (hotFirst) => {
        const at = await replayCold(this.cold, this.name, hotFirst, onFrame);
        this.logger.info({ table: this.name, records: at.offset }, 'replayed the cold tier below the hot changelog');
        return at;
      },
      this.name,
    );
  }

  /**
   * Replays one frame into the key index and (pk tables) the state. Log tables
   * decode only their key columns; pk tables build rows only for what they
   * keep (+I, +U), not for before-images.
   */
  private replayFrame(meta: FrameMeta, payload: Uint8Array): void {
    const { firstOffset } = meta;
    const keyed = keysOf(streamMetadata(payload));
    if (keyed.length) this.keys.addFrame(firstOffset, meta.count, meta.commitTime, keyed);
    const s = this.schema;
    if (s.keyColumns.length === 0 || meta.count === 0) return;
    const pk = s.kind === 'pk';
    const { changes, values } = decodeValues(decodeIpc(payload), pk ? s.columns : s.keyColumns);
    const keyValues = pk ? s.keyColumns.map((c) => values[s.columns.indexOf(c)]) : values;
    for (let i = 0; i < changes.length; i++) {
      const key = this.keyAt(keyValues, i);
      if (key === null) continue; // a log record whose key is null belongs to no key (schema.keyOf)
      this.keyIndex.add(key, firstOffset + i);
      if (!pk) continue;
      const change = changes[i];
      if (change === ChangeType.INSERT || change === ChangeType.UPDATE_AFTER) this.state.setAt(key, values, i, firstOffset + i);
      else if (change === ChangeType.DELETE) this.state.delete(key);
    }
  }

  /** The key (schema.indexKeyOf) of row `i` of decoded key columns; null when it has none. */
  private keyAt(keyValues: unknown[][], i: number): IndexKey | null {
    if (this.schema.numericKey) {
      const v = keyValues[0][i];
      return typeof v === 'number' ? v : v === null || v === undefined ? null : String(v);
    }
    return this.schema.keyAt(keyValues, i);
  }
}
