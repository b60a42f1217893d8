/**
 * Union reads: a table's changelog as one ordered stream of frames, the cold
 * tier below `coldBelow` (the first offset the hot log still holds) and the
 * hot log from there. The frame index knows every frame, hot or cold, so the
 * stream has no gap and no duplicate by construction; each frame comes back
 * as the bytes the changelog stored, checksum checked, wherever it is read from.
 */
import { makeVector } from 'apache-arrow';
import { CHANGE_COLUMN, decodeBatch, decodeIpc, decodeValuesInto, type StoredBatch } from './arrow-codec.js';
import type { ColdTable, KeyMatch } from './cold-tier.js';
import type { FrameIndex } from './indexes.js';
import { CHAIN_GENESIS, CHAIN_HASH_BYTES, HEADER_BYTES, parseFrame, type FrameMeta } from './log.js';
import type { CompiledColumn, Row, TableSchema } from './schema.js';
import type { SegmentedLog } from './segments.js';
import type { KeyColumns, KeyRecord } from './table-scan.js';

export interface UnionSource {
  frames: FrameIndex;
  log: SegmentedLog;
  cold?: ColdTable;
  /** Offsets below this are only in the cold tier. */
  coldBelow: number;
  /** The table's records are [0, end). */
  end: number;
}

/** Frame bytes fetched from the cold tier per query: bounds memory, keeps queries few. */
const COLD_CHUNK_BYTES = 32 << 20;
/**
 * Hot frames fetched per read (one system call): a frame at a time cost a
 * thread-pool round trip each, most of reading one entity's 2,000 frames
 * (bench:audit); bounded, so a reader that stops early read little ahead.
 */
const HOT_RUN_BYTES = 1 << 20;
/** Bytes between two wanted hot frames read through, rather than split into two reads. */
const HOT_GAP_BYTES = 64 << 10;

/**
 * Frames holding offsets in [from, to), ascending, whole (header and payload).
 * Hot frames are read from segments pinned for the stream's life, so a
 * segment deleted by tiering meanwhile is still read to the end.
 */
export async function* unionFrames(src: UnionSource, from: number, to: number): AsyncGenerator<{ meta: FrameMeta; bytes: Uint8Array }> {
  const { frames } = src;
  from = Math.max(0, from);
  to = Math.min(src.end, to);
  if (from >= to || frames.size === 0) return;
  yield* framesAt(src, { from: frames.find(from), to: frames.find(to - 1) + 1 });
}

/**
 * The frames at the given indexes of the frame index (ascending; a range or a
 * list), whole, skipping frames of no record. Hot frames close together are
 * read in one call (HOT_RUN_BYTES, HOT_GAP_BYTES); cold ones in queries of up
 * to COLD_CHUNK_BYTES.
 */
export async function* framesAt(src: UnionSource, which: { from: number; to: number } | number[]): AsyncGenerator<{ meta: FrameMeta; bytes: Uint8Array }> {
  for await (const run of frameRuns(src, which)) yield* run;
}

/**
 * `framesAt`'s frames as they are read: an array per read call or query.
 * Readers of many small frames take them so, not a frame per await: one
 * await per frame through the key read's generators was about a third of
 * reading bench:audit's log entity (2,000 frames) from the hot log.
 * With `reuse`, hot runs are read into one buffer kept there: a run's bytes
 * are valid only until the next run is asked for (a reader that copies what
 * it keeps, as keyColumns does). A new buffer of a megabyte per run was
 * fresh pages for the kernel to fault in and the allocator to unmap.
 */
async function* frameRuns(src: UnionSource, which: { from: number; to: number } | number[], reuse?: { buf?: Buffer }): AsyncGenerator<{ meta: FrameMeta; bytes: Uint8Array }[]> {
  const { frames, log } = src;
  const coldBelow = src.coldBelow;
  const n = Array.isArray(which) ? which.length : which.to - which.from;
  const at = Array.isArray(which) ? (k: number) => which[k] : (k: number) => which.from + k;
  log.pin();
  try {
    let k = 0;
    while (k < n) {
      const meta = frames.get(at(k));
      // A frame holding only idempotency keys has no records to read (and the cold tier keeps no row for it).
      if (meta.count === 0) {
        k++;
        continue;
      }
      if (meta.firstOffset >= coldBelow) {
        const run = [meta];
        let end = meta.pos + meta.length;
        for (k++; k < n; k++) {
          const m = frames.get(at(k));
          if (m.count === 0) continue;
          if (m.pos - end > HOT_GAP_BYTES || m.pos + m.length - meta.pos > HOT_RUN_BYTES) break;
          run.push(m);
          end = m.pos + m.length;
        }
        let into: Buffer | undefined;
        if (reuse) {
          const span = end - meta.pos;
          if ((reuse.buf?.length ?? 0) < span) reuse.buf = Buffer.allocUnsafeSlow(Math.max(span, HOT_RUN_BYTES + HOT_GAP_BYTES));
          into = reuse.buf;
        }
        const got = await log.readRun(run, true, into);
        yield run.map((meta, i) => ({ meta, bytes: got[i] }));
        continue;
      }
      if (!src.cold) throw new Error(`changelog offsets below ${coldBelow} are in the cold tier, and none is open`);
      // A run of adjacent cold frames, up to COLD_CHUNK_BYTES, in one query.
      const run: FrameMeta[] = [];
      let bytes = 0;
      for (let prev = at(k) - 1; k < n && bytes < COLD_CHUNK_BYTES; k++) {
        const m = frames.get(at(k));
        if (m.firstOffset >= coldBelow || at(k) !== prev + 1) break;
        prev = at(k);
        if (m.count === 0) continue;
        bytes += m.length;
        run.push(m);
      }
      const lastMeta = run[run.length - 1];
      const got = new Map((await src.cold.frames(run[0].firstOffset, lastMeta.firstOffset + lastMeta.count)).map((f) => [f.meta.firstOffset, f]));
      yield run.map((want) => {
        const have = got.get(want.firstOffset);
        if (!have || have.meta.count !== want.count || have.meta.commitTime !== want.commitTime) {
          throw new Error(`the cold tier's frame at offset ${want.firstOffset} is missing or differs from the changelog's (got ${have ? `${have.meta.firstOffset}+${have.meta.count}` : 'none'})`);
        }
        return { meta: want, bytes: have.bytes };
      });
    }
  } finally {
    log.unpin();
  }
}

/** A whole frame's payload (after the chain hash of a version-2 frame). */
export const payloadOf = (bytes: Uint8Array): Uint8Array => bytes.subarray(HEADER_BYTES + (bytes[4] >= 2 ? CHAIN_HASH_BYTES : 0));

/**
 * A canonical key → one Lance literal per key column, or undefined when a key
 * column's type has no exact literal (then the caller reads the key's frames).
 */
export function keyMatch(schema: TableSchema, key: string): KeyMatch[] | undefined {
  const parts: unknown[] = schema.keyColumns.length === 1 ? [key] : JSON.parse(key);
  const out: KeyMatch[] = [];
  for (let i = 0; i < schema.keyColumns.length; i++) {
    const c = schema.keyColumns[i];
    const v = String(parts[i]);
    switch (c.type.kind) {
      case 'int32':
      case 'int64':
        if (!/^-?\d+$/.test(v)) return undefined;
        out.push({ column: c.name, literal: v });
        break;
      case 'bool':
        if (v !== 'true' && v !== 'false') return undefined;
        out.push({ column: c.name, literal: v });
        break;
      case 'string':
        // Quoted as data: a quote is doubled, nothing else is special inside a SQL string literal.
        out.push({ column: c.name, literal: `'${v.replaceAll("'", "''")}'` });
        break;
      default:
        return undefined;
    }
  }
  return out;
}

/**
 * The records at `wanted` (ascending offsets, all of one key), in offset
 * order, an array at a time: those below the hot log from the cold tier
 * through its scalar index on the key columns (one query), the rest from the
 * frames holding them, each read once (close ones together) and only the
 * wanted rows built.
 */
export async function* keyBatches(src: UnionSource, schema: TableSchema, key: string, wanted: readonly number[], only: Set<string> | undefined): AsyncGenerator<KeyRecord[]> {
  // Pinned from the start: tiering may delete the segments of the hot frames this read counts on (coldBelow was
  // looked up before the cold query) while that query runs, and a segment deleted while no read pins it is closed.
  src.log.pin();
  try {
    let i = 0;
    const coldBelow = src.coldBelow;
    const match = src.cold && wanted.length && wanted[0] < coldBelow ? keyMatch(schema, key) : undefined;
    if (match) {
      const expect = wanted.filter((o) => o < coldBelow);
      const recs = await coldKeyRecords(src.cold!, schema.columns, match, expect[0], expect[expect.length - 1] + 1, expect.length, only);
      if (recs.length !== expect.length || recs.some((r, j) => r.offset !== expect[j])) {
        throw coldMismatch(schema, key, recs.length, expect.length);
      }
      yield recs;
      i = expect.length;
    }
    // One array per read (frameRuns), not per frame.
    read: for await (const run of frameRuns(src, framesHolding(src, wanted, i))) {
      const out: KeyRecord[] = [];
      for (const { meta, bytes } of run) {
        const at: number[] = [];
        for (let j = i; j < wanted.length && wanted[j] < meta.firstOffset + meta.count; j++) at.push(wanted[j] - meta.firstOffset);
        if (at.length === 0 || at[0] < 0) {
          if (out.length) yield out;
          break read;
        }
        const { changes, rows } = decodeBatch(decodeIpc(payloadOf(bytes)), schema.columns, only, at);
        for (let k = 0; k < at.length; k++) out.push({ offset: meta.firstOffset + at[k], change: changes[at[k]], commitTime: meta.commitTime, row: rows[k] });
        i += at.length;
      }
      if (out.length) yield out;
    }
    if (i < wanted.length) throw new Error(`no frame holds offset ${wanted[i]} of table "${schema.name}"`);
  } finally {
    src.log.unpin();
  }
}

/**
 * `keyBatches` as columns: the records at `wanted` (ascending offsets, all of
 * one key), in offset order, with only the values of `columns` (all of them
 * the schema's), a chunk per read (a run of hot frames, or the cold tier's
 * query). No object is made per record: rebuilding an entity's state needs
 * a few columns of each record, and 10,000 records, each with its row, were
 * most of what reconstructing bench:audit's log entity allocated.
 */
export async function* keyColumns(src: UnionSource, schema: TableSchema, key: string, wanted: readonly number[], columns: readonly string[]): AsyncGenerator<KeyColumns> {
  const cols = columns.map((name) => {
    const c = schema.byName.get(name);
    if (!c) throw new Error(`table "${schema.name}" has no column "${name}"`);
    return c;
  });
  src.log.pin();
  try {
    let i = 0;
    const coldBelow = src.coldBelow;
    const match = src.cold && wanted.length && wanted[0] < coldBelow ? keyMatch(schema, key) : undefined;
    if (match) {
      let n = 0;
      while (n < wanted.length && wanted[n] < coldBelow) n++;
      const got = await coldKeyColumns(src.cold!, cols, match, wanted[0], wanted[n - 1] + 1, n);
      let same = got.count === n;
      for (let j = 0; same && j < n; j++) same = got.offsets[j] === wanted[j];
      if (!same) throw coldMismatch(schema, key, got.count, n);
      yield got;
      i = n;
    }
    const at: number[] = [];
    // Values are copied out of the frames (numbers, and strings made from the bytes), so one read buffer serves every run.
    read: for await (const run of frameRuns(src, framesHolding(src, wanted, i), {})) {
      const lastMeta = run[run.length - 1].meta;
      let n = i;
      while (n < wanted.length && wanted[n] < lastMeta.firstOffset + lastMeta.count) n++;
      const out = newColumns(columns, n - i);
      let w = 0;
      for (const { meta, bytes } of run) {
        at.length = 0;
        for (let j = i; j < wanted.length && wanted[j] < meta.firstOffset + meta.count; j++) at.push(wanted[j] - meta.firstOffset);
        if (at.length === 0 || at[0] < 0) {
          out.count = w;
          if (w) yield out;
          break read;
        }
        const changes = decodeValuesInto(decodeIpc(payloadOf(bytes)), cols, at, out.values, w);
        for (let k = 0; k < at.length; k++, w++) {
          out.offsets[w] = meta.firstOffset + at[k];
          out.changes[w] = changes[at[k]];
          out.commitTimes[w] = meta.commitTime;
        }
        i += at.length;
      }
      out.count = w;
      if (w) yield out;
    }
    if (i < wanted.length) throw new Error(`no frame holds offset ${wanted[i]} of table "${schema.name}"`);
  } finally {
    src.log.unpin();
  }
}

/**
 * The hot frames holding `wanted[from..]`, each once, in order: a search per
 * frame, not per offset (offsets the frame found last holds are passed by);
 * one per offset was ~4% of replaying bench:audit's log entity (10,000
 * offsets in 2,000 frames).
 */
function framesHolding(src: UnionSource, wanted: readonly number[], from: number): number[] {
  const idx: number[] = [];
  let end = -Infinity;
  for (let j = from; j < wanted.length; j++) {
    if (wanted[j] < end) continue;
    const f = src.frames.find(wanted[j]);
    idx.push(f);
    end = src.frames.endOffsetOf(f);
  }
  return idx;
}

const coldMismatch = (schema: TableSchema, key: string, got: number, expected: number): Error =>
  new Error(`the cold tier's records of key ${key} in table "${schema.name}" differ from the key index (${got} records, ${expected} expected)`);

function newColumns(columns: readonly string[], n: number): KeyColumns {
  return { count: n, offsets: new Float64Array(n), changes: new Int8Array(n), commitTimes: new Float64Array(n), columns, values: columns.map(() => new Array<unknown>(n)) };
}

/**
 * `coldKeyRecords` as columns: one key's records in [from, to) from the cold
 * tier, ascending by offset. Each batch the query answers is decoded straight
 * into the columns (values as the hot log's are, offsets and commit times from
 * their typed arrays), and reordered only when the batches did not come in
 * offset order: reading the offsets value by value through Arrow's vectors and
 * placing every record through a sorted permutation was a tenth of the main
 * thread's part of replaying bench:audit's log entity from Lance.
 */
async function coldKeyColumns(cold: ColdTable, cols: CompiledColumn[], key: KeyMatch[], from: number, to: number, expected: number): Promise<KeyColumns> {
  const batches = (await cold.keyRecords(key, from, to, expected)).map((ipc) => decodeIpc(ipc));
  let n = 0;
  for (const b of batches) n += b.numRows;
  const out = newColumns(cols.map((c) => c.name), n);
  let w = 0;
  for (const stored of batches) {
    const changes = decodeValuesInto(stored, cols, undefined, out.values, w);
    out.changes.set(changes, w);
    numbersInto(stored, '_asof_offset', out.offsets, w);
    numbersInto(stored, '_asof_commit_time', out.commitTimes, w);
    w += stored.numRows;
  }
  for (let i = 1; i < n; i++) if (out.offsets[i] <= out.offsets[i - 1]) return byOffset(out);
  return out;
}

/** An int64 or timestamp column of a cold batch (no nulls) as numbers into `into` from `at`. */
function numbersInto(stored: StoredBatch, name: string, into: Float64Array, at: number): void {
  const data = stored.column(name);
  if (!data) throw new Error(`the cold tier's batch has no column ${name}`);
  const values = data.values as ArrayLike<bigint | number>;
  for (let k = 0; k < stored.numRows; k++) into[at + k] = Number(values[data.offset + k]);
}

/** The columns' records reordered ascending by offset. */
function byOffset(c: KeyColumns): KeyColumns {
  const order = Array.from({ length: c.count }, (_, i) => i).sort((a, b) => c.offsets[a] - c.offsets[b]);
  const out = newColumns(c.columns, c.count);
  order.forEach((i, w) => {
    out.offsets[w] = c.offsets[i];
    out.changes[w] = c.changes[i];
    out.commitTimes[w] = c.commitTimes[i];
    for (let j = 0; j < c.values.length; j++) out.values[j][w] = c.values[j][i];
  });
  return out;
}

/** One key's records from the cold tier in [from, to) (`expected` of them, by the key index), ascending by offset, rows decoded as the hot log's are. */
export async function coldKeyRecords(
  cold: ColdTable,
  columns: CompiledColumn[],
  key: KeyMatch[],
  from: number,
  to: number,
  expected: number,
  only: Set<string> | undefined,
): Promise<KeyRecord[]> {
  const out: KeyRecord[] = [];
  for (const ipc of await cold.keyRecords(key, from, to, expected)) {
    const stored = decodeIpc(ipc);
    const { rows } = decodeBatch(stored, columns, only);
    const offsets = makeVector(stored.column('_asof_offset')!);
    const commits = makeVector(stored.column('_asof_commit_time')!);
    const changes = makeVector(stored.column(CHANGE_COLUMN)!);
    for (let i = 0; i < stored.numRows; i++) {
      out.push({ offset: Number(offsets.get(i)), change: Number(changes.get(i)), commitTime: Number(commits.get(i)), row: rows[i] });
    }
  }
  return out.sort((a, b) => a.offset - b.offset);
}

/**
 * Recovery without a snapshot when the hot log's first segments were deleted:
 * the frames below the hot log's first offset (`hotFirst`; all the cold tier
 * holds when the hot log holds none) go to `onFrame` in order, exactly as
 * the hot log's would. Returns where the hot log must go on.
 */
export async function replayCold(
  cold: ColdTable | undefined,
  table: string,
  hotFirst: number | undefined,
  onFrame: (meta: FrameMeta, payload: Uint8Array) => void,
): Promise<{ offset: number; commitTime: number; head: Buffer }> {
  if (!cold) throw new Error(`changelog of table "${table}" starts at offset ${hotFirst ?? '(none)'}: the records below it are in the cold tier, and none is open`);
  const to = hotFirst ?? cold.end();
  if (cold.end() < to) throw new Error(`changelog of table "${table}" starts at offset ${to} but the cold tier holds only [0, ${cold.end()})`);
  let at = 0;
  let commitTime = -Infinity;
  let head = CHAIN_GENESIS;
  while (at < to) {
    // Offsets, not bytes, bound a query here: frames are not indexed yet.
    const got = await cold.frames(at, Math.min(to, at + 100_000));
    if (got.length === 0) throw new Error(`cold tier of table "${table}" lacks the frame at offset ${at}`);
    for (const f of got) {
      if (f.meta.firstOffset !== at) throw new Error(`cold tier of table "${table}": frame at ${f.meta.firstOffset}, expected ${at}`);
      const { version: _v, crcOk: _c, hash, payload, ...meta } = parseFrame(f.bytes, f.meta.pos, `cold tier of "${table}"`);
      onFrame(meta, payload);
      at += meta.count;
      commitTime = meta.commitTime;
      if (hash) head = Buffer.from(hash);
    }
  }
  return { offset: to, commitTime, head };
}
