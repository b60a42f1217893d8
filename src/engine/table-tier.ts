/**
 * A table's side of tiering (tiering.ts runs it): copying whole frames from
 * the hot log into the cold tier, and choosing which sealed segments may go.
 * Reads of what was tiered go through the union (union-read.ts).
 */
import type { ColdFrame } from './cold-tier.js';
import type { CompiledColumn } from './schema.js';
import type { UnionSource } from './union-read.js';

/**
 * How much one tiering step takes: frames committed at or before `olderThan`
 * (epoch ms), until it holds `maxRecords` records or `maxBytes` frame bytes
 * (then it is full: the frame that crosses either is its last). A step that is
 * not full goes only once its first frame was committed at or before `due`
 * (epoch ms).
 */
export interface StepLimits {
  olderThan: number;
  maxRecords: number;
  maxBytes: number;
  due: number;
}

/**
 * Tiering, one step: copies the whole frames after the cold tier's end that
 * `limits` allow into the cold tier in one commit. Returns the records
 * copied (0 when the step is not full and nothing is due yet). Callers run
 * one step at a time per table (one writer).
 */
export async function tierStep(src: UnionSource, table: string, columns: CompiledColumn[], limits: StepLimits): Promise<number> {
  const { cold, frames, log } = src;
  if (!cold || log.needsRestore) return 0;
  const start = cold.end();
  if (start >= src.end) return 0;
  const picked: ColdFrame[] = [];
  let bytes = 0;
  let records = 0;
  for (let f = frames.find(start); f < frames.size && bytes < limits.maxBytes && records < limits.maxRecords; f++) {
    const meta = frames.get(f);
    if (meta.commitTime > limits.olderThan) break;
    // Frames holding only idempotency keys carry no record: not tiered (see README, cold tier).
    if (meta.count === 0) continue;
    bytes += meta.length;
    records += meta.count;
    picked.push({ meta, bytes: new Uint8Array(0) });
  }
  const full = bytes >= limits.maxBytes || records >= limits.maxRecords;
  if (picked.length === 0 || (!full && picked[0].meta.commitTime > limits.due)) return 0;
  if (picked[0].meta.firstOffset !== start) throw new Error(`table "${table}": the cold tier ends at ${start}, inside a frame`);
  const last = picked[picked.length - 1].meta;
  const given = await readStep(src, picked);
  await cold.append(picked, columns, given);
  return last.firstOffset + last.count - start;
}

/**
 * Fills in the picked frames' bytes (all hot: the hot log holds every offset
 * from the cold tier's end on), checksums checked, read into one buffer of
 * their own with one call per segment (global positions run on from one
 * segment into the next), which is returned: the cold tier may then move it
 * to its thread instead of copying it there.
 */
async function readStep(src: UnionSource, picked: ColdFrame[]): Promise<ArrayBuffer> {
  const first = picked[0].meta;
  const last = picked[picked.length - 1].meta;
  if (first.firstOffset < src.coldBelow) throw new Error(`the hot log starts at offset ${src.coldBelow}, after the cold tier's end ${first.firstOffset}`);
  const own = Buffer.allocUnsafeSlow(last.pos + last.length - first.pos);
  const segments = src.log.segments();
  src.log.pin();
  try {
    for (let i = 0; i < picked.length; ) {
      const seg = segments.find((s) => s.base <= picked[i].meta.pos && picked[i].meta.pos < s.end);
      if (!seg) throw new Error(`no changelog segment holds byte ${picked[i].meta.pos}`);
      const j = i;
      while (i < picked.length && picked[i].meta.pos < seg.end) i++;
      const got = await src.log.readRun(picked.slice(j, i).map((f) => f.meta), true, own.subarray(picked[j].meta.pos - first.pos));
      for (let k = j; k < i; k++) picked[k].bytes = got[k - j];
    }
  } finally {
    src.log.unpin();
  }
  return own.buffer;
}

/**
 * Which sealed segments may be deleted: those whose records are all tiered,
 * committed at or before `olderThan` (epoch ms), and strictly below the newest
 * snapshot's offset `snapshotAt` (so recovery from it never needs the cold
 * tier, and finds the snapshot's last frame, whose chain hash the next frame
 * continues). `cut`: delete the segments ending at or before byte `end`; the
 * hot log then starts at `endOffset`. `needSnapshot`: only a newer snapshot
 * keeps more from going.
 */
export function tieredCut(src: UnionSource, snapshotAt: number, olderThan: number): { cut?: { end: number; endOffset: number }; needSnapshot: boolean } {
  const { cold, frames, log } = src;
  if (!cold || log.needsRestore) return { needSnapshot: false };
  const tiered = cold.end();
  let cut: { end: number; endOffset: number } | undefined;
  for (const seg of log.segments()) {
    if (!seg.sealed) break;
    const endOffset = frames.offsetAtPos(seg.end, src.end);
    if (endOffset > tiered || endOffset === 0 || frames.commitTimeOf(endOffset - 1) > olderThan) break;
    if (endOffset >= snapshotAt) return { cut, needSnapshot: src.end > snapshotAt };
    cut = { end: seg.end, endOffset };
  }
  return { cut, needSnapshot: false };
}
