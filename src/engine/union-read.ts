/**
 * Union reads: a table's changelog as one ordered stream of frames, the cold
 * tier below `coldBelow` (the first offset the hot log still holds) and the
 * hot log from there. The frame index knows every frame, hot or cold, so the
 * stream has no gap and no duplicate by construction; each frame comes back
 * as the bytes the changelog stored, checksum checked, wherever it is read from.
 */
import type { ColdTable } from './cold-tier.js';
import type { FrameIndex } from './indexes.js';
import { CHAIN_GENESIS, CHAIN_HASH_BYTES, HEADER_BYTES, parseFrame, type FrameMeta } from './log.js';
import type { SegmentedLog } from './segments.js';

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
export async function* frameRuns(src: UnionSource, which: { from: number; to: number } | number[], reuse?: { buf?: Buffer }): AsyncGenerator<{ meta: FrameMeta; bytes: Uint8Array }[]> {
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
