/**
 * Reading a table's changelog: records, commits and stored frames in offset
 * order, through the union of the cold tier and the hot log (union-read.ts).
 * Every reader of a table's history comes here (changelog and `?key=` reads,
 * SSE and gRPC follow, training sets, materializing, Redis rebuilds, the
 * audit), so tiered records read exactly as hot ones.
 *
 * The table hands these functions a `TableReads`: where its frames are at the
 * moment a read starts (the range, the hot log's first offset), looked up
 * when the read begins, not when it is created.
 */
import { makeVector, type Vector } from 'apache-arrow';
import { CHANGE_NAMES, decodeBatch, decodeIpc, type ChangeName } from './arrow-codec.js';
import { frameOk, HEADER_BYTES, rawFrameOf, splitBody, type FrameMeta, type RawFrame } from './log.js';
import { keyBatches, keyColumns } from './key-read.js';
import { payloadOf, unionFrames, type UnionSource } from './union-read.js';
import type { Row, TableSchema } from './schema.js';

/** One stored commit as Arrow columns (no row objects): `getChild` is null for a column the commit predates. */
export interface ArrowBatch {
  numRows: number;
  getChild(name: string): Vector | null;
}

export interface ChangeRecord {
  offset: number;
  changeType: ChangeName;
  /** Epoch ms, server clock at commit. */
  commitTime: number;
  row: Row;
}

/** A record as key reads give it: the change type as its code (ChangeType: 0 +I, 1 -U, 2 +U, 3 -D). */
export interface KeyRecord {
  offset: number;
  change: number;
  /** Epoch ms, server clock at commit. */
  commitTime: number;
  row: Row;
}

/**
 * One key's records as columns (`scanKeyColumns`): record i is at
 * `offsets[i]`, of change type `changes[i]`, committed at `commitTimes[i]`
 * (epoch ms), and `values[j][i]` is its canonical value of `columns[j]`.
 * Only the first `count` entries count.
 */
export interface KeyColumns {
  count: number;
  offsets: Float64Array;
  changes: Int8Array;
  commitTimes: Float64Array;
  columns: readonly string[];
  values: unknown[][];
}

/** What subscribers get after each durable commit, in offset order. */
export interface Commit {
  table: string;
  firstOffset: number;
  commitTime: number;
  changes: Int8Array | Uint8Array;
  rows: Row[];
}

/** Bytes of hot frames the audit's chain walk reads per call. */
const WALK_RUN_BYTES = 1 << 20;

/** What a read needs of its table, looked up when the read begins. */
export interface TableReads {
  /** The frames as they stand now: hot and cold, the records [0, end). */
  union(): UnionSource;
  schema(): TableSchema;
  /** Offsets of one key's records in [from, to), ascending, the first `limit` of them (the key index), in a new array. */
  offsetsIn(key: string, from: number, to: number, limit?: number): number[];
}

/**
 * Commits in offset order, frame by frame: `[fromOffset, toOffset)`, only
 * committed records. Each batch's rows follow the current schema.
 */
export async function* scanBatches(t: TableReads, opts: { fromOffset?: number; toOffset?: number; columns?: string[] } = {}): AsyncGenerator<Commit & { count: number }> {
  const src = t.union();
  const schema = t.schema();
  const from = Math.max(0, opts.fromOffset ?? 0);
  const to = Math.min(src.end, opts.toOffset ?? src.end);
  if (from >= to || src.frames.size === 0) return;
  const only = opts.columns ? new Set(opts.columns) : undefined;
  for await (const { meta, bytes } of unionFrames(src, from, to)) {
    const { changes, rows } = decodeBatch(decodeIpc(payloadOf(bytes)), schema.columns, only);
    const lo = Math.max(from, meta.firstOffset) - meta.firstOffset;
    const hi = Math.min(to, meta.firstOffset + meta.count) - meta.firstOffset;
    yield { table: schema.name, firstOffset: meta.firstOffset + lo, commitTime: meta.commitTime, changes: changes.subarray(lo, hi), rows: rows.slice(lo, hi), count: hi - lo };
  }
}

/**
 * Commits in offset order as their stored Arrow record batches, never turned
 * into row objects: the columnar path of offline scans. `[fromOffset,
 * toOffset)`, only committed records. A batch holds `_asof_change` (int8) and
 * the columns of the schema version it was written with: a column added later
 * is absent and reads as null. Timestamps are timestamp[ms, UTC].
 */
export async function* scanArrow(t: TableReads, opts: { fromOffset?: number; toOffset?: number } = {}): AsyncGenerator<{ firstOffset: number; commitTime: number; count: number; batch: ArrowBatch }> {
  const src = t.union();
  const from = Math.max(0, opts.fromOffset ?? 0);
  const to = Math.min(src.end, opts.toOffset ?? src.end);
  if (from >= to || src.frames.size === 0) return;
  for await (const { meta, bytes } of unionFrames(src, from, to)) {
    const stored = decodeIpc(payloadOf(bytes));
    const lo = Math.max(from, meta.firstOffset) - meta.firstOffset;
    const hi = Math.min(to, meta.firstOffset + meta.count) - meta.firstOffset;
    const whole = lo === 0 && hi === stored.numRows;
    const batch: ArrowBatch = {
      numRows: hi - lo,
      getChild(name) {
        const data = stored.column(name);
        if (!data) return null;
        return makeVector(whole ? data : data.slice(lo, hi - lo));
      },
    };
    yield { firstOffset: meta.firstOffset + lo, commitTime: meta.commitTime, count: hi - lo, batch };
  }
}

/**
 * Changelog records in offset order. With `key`, only that key's records,
 * found through the key index (no full read).
 */
export async function* scan(t: TableReads, opts: { fromOffset?: number; toOffset?: number; columns?: string[]; key?: string; limit?: number } = {}): AsyncGenerator<ChangeRecord> {
  let left = opts.limit ?? Infinity;
  if (left <= 0) return;
  if (opts.key !== undefined) {
    for await (const recs of scanKey(t, opts.key, { ...opts, limit: left })) {
      for (const r of recs) yield { offset: r.offset, changeType: CHANGE_NAMES[r.change], commitTime: r.commitTime, row: r.row };
    }
    return;
  }
  for await (const b of scanBatches(t, opts)) {
    for (let i = 0; i < b.count; i++) {
      yield { offset: b.firstOffset + i, changeType: CHANGE_NAMES[b.changes[i]], commitTime: b.commitTime, row: b.rows[i] };
      if (--left <= 0) return;
    }
  }
}

/**
 * One key's records in offset order, an array at a time (fewer awaits than a
 * record at a time: the audit reads whole histories), through the key index:
 * only the frames holding the key's records are read. `[fromOffset,
 * toOffset)`, at most `limit` records.
 */
export async function* scanKey(t: TableReads, key: string, opts: { fromOffset?: number; toOffset?: number; columns?: string[]; limit?: number } = {}): AsyncGenerator<KeyRecord[]> {
  const src = t.union();
  const from = opts.fromOffset ?? 0;
  const to = Math.min(src.end, opts.toOffset ?? Infinity);
  const limit = opts.limit ?? Infinity;
  if (limit <= 0) return;
  const wanted = t.offsetsIn(key, from, to, limit);
  if (wanted.length === 0) return;
  yield* keyBatches(src, t.schema(), key, wanted, opts.columns ? new Set(opts.columns) : undefined);
}

/**
 * `scanKey` as columns, with only `columns`' values (names of the current
 * schema): what rebuilding an entity's state from its history reads, without
 * an object per record. `[fromOffset, toOffset)`, offset order, a chunk per
 * read, at most `limit` records.
 */
export async function* scanKeyColumns(t: TableReads, key: string, columns: readonly string[], opts: { fromOffset?: number; toOffset?: number; limit?: number } = {}): AsyncGenerator<KeyColumns> {
  const src = t.union();
  const to = Math.min(src.end, opts.toOffset ?? Infinity);
  const wanted = t.offsetsIn(key, opts.fromOffset ?? 0, to, opts.limit);
  if (wanted.length === 0) return;
  yield* keyColumns(src, t.schema(), key, wanted, columns);
}

/**
 * The frames holding offsets in [fromOffset, toOffset), whole (header and
 * payload as stored, checksum checked), from the hot log or the cold tier:
 * what re-verifying a frame's checksum or hash chain needs.
 */
export async function* frameBytes(t: TableReads, fromOffset: number, toOffset: number): AsyncGenerator<{ firstOffset: number; count: number; commitTime: number; bytes: Uint8Array }> {
  for await (const { meta, bytes } of unionFrames(t.union(), fromOffset, toOffset)) yield { firstOffset: meta.firstOffset, count: meta.count, commitTime: meta.commitTime, bytes };
}

/**
 * Frames as stored, in offset order, from the one holding `fromOffset` to the
 * one holding `toOffset - 1`: the audit's chain walk. Tiered frames come from
 * the cold tier (their stored bytes, checked when tiered), the rest from the
 * hot log with checksums and chain hashes reported, not enforced.
 */
export async function* storedFrames(t: TableReads, fromOffset: number, toOffset?: number): AsyncGenerator<RawFrame> {
  const src = t.union();
  const { frames, log, coldBelow } = src;
  toOffset ??= src.end;
  if (frames.size === 0 || fromOffset >= toOffset) return;
  if (fromOffset < coldBelow) {
    for await (const { meta, bytes } of unionFrames(src, fromOffset, Math.min(toOffset, coldBelow))) yield rawFrameOf(bytes, meta.pos);
  }
  log.pin();
  try {
    // Read in runs of adjacent frames (one call each, up to WALK_RUN_BYTES), the next run's read started before the
    // current run's frames are handed out, so the reading overlaps the caller's hashing. Checksums reported, not enforced.
    // Two read buffers, taken in turn: 128 MB walked into a new buffer per run made V8 mark-compact every ~80 ms
    // (external memory), about a third of the walk. A yielded frame's bytes are therefore valid until the walk has
    // moved past the next run: a caller that keeps any copies them (chain.ts keeps 32-byte hashes).
    const pool: Buffer[] = [];
    let turn = 0;
    let f = frames.find(Math.max(0, fromOffset, coldBelow));
    const nextRun = (): { run: FrameMeta[]; got: Promise<Buffer[]> } | undefined => {
      const run: FrameMeta[] = [];
      for (let bytes = 0; f < frames.size && bytes < WALK_RUN_BYTES; f++) {
        const meta = frames.get(f);
        if (meta.firstOffset >= toOffset!) break;
        if (meta.firstOffset < coldBelow) continue;
        run.push(meta);
        bytes += meta.length;
      }
      if (run.length === 0) return undefined;
      const span = run[run.length - 1].pos + run[run.length - 1].length - run[0].pos;
      const slot = turn++ & 1;
      if ((pool[slot]?.length ?? 0) < span) pool[slot] = Buffer.allocUnsafeSlow(Math.max(span, WALK_RUN_BYTES + (64 << 10)));
      const got = log.readRun(run, false, pool[slot]);
      got.catch(() => undefined); // awaited below; a walk abandoned early must not leave an unhandled rejection
      return { run, got };
    };
    for (let cur = nextRun(); cur !== undefined; ) {
      const got = await cur.got;
      const { run } = cur;
      cur = nextRun();
      for (let i = 0; i < run.length; i++) {
        const buf = got[i];
        const version = buf[4];
        // The checksum is worked out only when asked: a chained frame whose SHA-256 link holds needs no CRC-32 (chain.ts).
        yield {
          ...run[i],
          version,
          get crcOk() {
            return frameOk(buf);
          },
          ...splitBody(version, buf.subarray(HEADER_BYTES)),
        };
      }
    }
  } finally {
    log.unpin();
  }
}
