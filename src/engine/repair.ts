/**
 * `asof repair`: cuts a table's changelog at its first bad frame, and only
 * when asked. A table whose changelog is damaged before its end does not open
 * (log.ts); this is the one way to make it open again, losing every record
 * from the damage on, and it says exactly what that is. The snapshot is
 * removed with the cut (it may cover frames that are gone), and also when it
 * does not match the changelog as it is: it covers more bytes than the
 * changelog holds (a changelog cut at a frame boundary, which start-up refuses
 * and tells the user to repair), or no frame ends where it says. The next
 * start then replays the changelog from 0. It takes the data folder's lock (lock.ts),
 * so it refuses to run while a server (or any asof process) has the folder
 * open: cutting a changelog under a live writer would lose acknowledged
 * records. A dry run takes it too: it reads files a server may be writing.
 */
import { open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readJson, syncDir } from '../util/fs.js';
import { DataDirLock } from './lock.js';
import { ChangelogFile, type RepairReport } from './log.js';
import { firstOffsetIn, walkFrames } from './frame-walk.js';
import { snapshotPoint } from './snapshot.js';
import type { TableDef } from './schema.js';

export interface TableRepairReport extends RepairReport {
  table: string;
  /** Whether state.snapshot was removed: whenever something is cut, and when it does not match the changelog (`snapshotMismatch`). */
  snapshotRemoved: boolean;
  /** Why the snapshot does not match the changelog (nothing cut): it is removed (a dry run only reports this). */
  snapshotMismatch?: string;
}

interface Seg {
  path: string;
  base: number;
}

/** Checks a table's changelog and, unless `dryRun`, cuts it at the first bad frame. Throws for a table the catalog does not hold. */
export async function repairTable(dataDir: string, table: string, opts: { dryRun?: boolean } = {}): Promise<TableRepairReport> {
  const { tables } = await readJson<{ tables: TableDef[] }>(join(dataDir, 'catalog.json'), { tables: [] });
  if (!tables.some((t) => t.name === table)) throw new Error(`no table "${table}" in the catalog of ${dataDir} (tables: ${tables.map((t) => t.name).join(', ') || 'none'})`);
  const dir = join(dataDir, 'tables', table);
  const lock = await DataDirLock.acquire(dataDir);
  try {
    const segs = await segmentFiles(dir);
    const { report, cutAt } = await findCut(segs);
    const snapshot = join(dir, 'state.snapshot');
    const snapshotMismatch = cutAt ? undefined : await mismatchOf(snapshot, segs);
    const snapshotRemoved = !opts.dryRun && (cutAt !== undefined || snapshotMismatch !== undefined);
    if (snapshotRemoved) {
      // Before anything is cut: a crash after the cut and before this would leave a snapshot covering records that are gone, and the table would not open.
      await rm(snapshot, { force: true });
      await syncDir(dir);
    }
    if (cutAt && !opts.dryRun) {
      await ChangelogFile.repair(cutAt.path, {});
      for (const l of cutAt.later) await rm(l.path);
      if (cutAt.later.length) await syncDir(dir);
    }
    return { table, ...report, dryRun: opts.dryRun && (report.cut || snapshotMismatch) ? true : undefined, snapshotRemoved, ...(snapshotMismatch ? { snapshotMismatch } : {}) };
  } finally {
    await lock.release();
  }
}

const SEGMENT = /^changelog-(\d{20})\.log$/;

/** The table's changelog files in order, each with the byte position it starts at in the whole changelog (its name). */
async function segmentFiles(dir: string): Promise<Seg[]> {
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  const segs = names
    .filter((n) => SEGMENT.test(n))
    .map((n) => ({ path: join(dir, n), base: Number(SEGMENT.exec(n)![1]) }))
    .sort((a, b) => a.base - b.base);
  // A data folder from before segments: its one file is the first segment (renamed when the table next opens).
  if (names.includes('changelog.log') && !segs.some((s) => s.base === 0)) segs.unshift({ path: join(dir, 'changelog.log'), base: 0 });
  return segs;
}

/**
 * Walks the segments in order, changing nothing. The first bad frame is where
 * the cut goes (`cutAt`), and every later segment goes with it (its records
 * follow the damage, so they are lost too and counted). Positions are in the
 * whole changelog (segment base + position in it).
 */
async function findCut(segs: Seg[]): Promise<{ report: RepairReport; cutAt?: { path: string; later: Seg[] } }> {
  let frames = 0;
  let size = 0;
  for (const s of segs) size += (await stat(s.path)).size;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    const found = await ChangelogFile.repair(seg.path, { dryRun: true });
    if (!found.cut) {
      frames += found.kept.frames;
      continue;
    }
    const later = segs.slice(i + 1);
    let endOffset = found.cut.endOffset;
    let laterBytes = 0;
    for (const l of later) {
      const r = await ChangelogFile.repair(l.path, { dryRun: true });
      endOffset = Math.max(endOffset, r.cut ? r.cut.endOffset : r.kept.records);
      laterBytes += r.size;
    }
    // A bad last frame in its segment is a torn tail only when no later segment follows: whole frames after it make it damage.
    const cut = { ...found.cut, pos: seg.base + found.cut.pos, bytes: found.cut.bytes + laterBytes, tornTail: found.cut.tornTail && later.length === 0, endOffset, records: endOffset - found.cut.fromOffset };
    return { report: { path: seg.path, size, kept: { bytes: seg.base + found.kept.bytes, frames: frames + found.kept.frames, records: found.kept.records }, cut }, cutAt: { path: seg.path, later } };
  }
  const last = segs[segs.length - 1];
  const records = last ? (await ChangelogFile.repair(last.path, { dryRun: true })).kept.records : 0;
  return { report: { path: last?.path ?? '', size, kept: { bytes: size, frames, records } } };
}

/**
 * Why the snapshot does not match the (whole) changelog, or undefined when it
 * does or there is none to check: it must end at a frame boundary of the
 * changelog, at the offset that frame ends at. Positions below the hot log
 * (segments deleted once tiered) are not checked: their frames are in the cold tier.
 */
async function mismatchOf(snapshot: string, segs: Seg[]): Promise<string | undefined> {
  const at = await snapshotPoint(snapshot);
  if (!at) return undefined;
  const sizes = await Promise.all(segs.map(async (s) => (await stat(s.path)).size));
  const end = segs.length ? segs[segs.length - 1].base + sizes[sizes.length - 1] : 0;
  if (at.logBytes > end) return `it covers ${at.logBytes} bytes of the changelog (offsets below ${at.offset}), but the changelog holds ${end} bytes`;
  const k = segs.findIndex((s, j) => at.logBytes >= s.base && at.logBytes <= s.base + sizes[j]);
  if (k < 0) return undefined;
  const local = at.logBytes - segs[k].base;
  // The offset a frame of this segment starts or ends at, at `local`; at the start of a later empty segment nothing tells.
  let offset: number | undefined = local === 0 && segs[k].base === 0 ? 0 : undefined;
  // The commit time of the frame ending there: the snapshot's last frame's, as start-up checks it (log.ts).
  let commitTime: number | undefined;
  const fh = await open(segs[k].path, 'r');
  try {
    await walkFrames(fh, sizes[k], await firstOffsetIn(fh), (m) => {
      if (m.pos === local) offset = m.firstOffset;
      else if (m.pos + m.length === local) [offset, commitTime] = [m.firstOffset + m.count, m.commitTime];
    });
  } finally {
    await fh.close();
  }
  if (offset === undefined && local !== 0) return `no frame of the changelog ends at byte ${at.logBytes}, where it ends`;
  if (offset !== undefined && offset !== at.offset) return `it ends at offset ${at.offset}, but the changelog's frame at byte ${at.logBytes} ends at offset ${offset}`;
  // Against the commit time the snapshot recorded for its last frame, as start-up checks it, not the table's last
  // commit time, which a write that adds no frame (deleting an absent key) also moves.
  if (commitTime !== undefined && at.lastFrameCommitTime !== undefined && commitTime !== at.lastFrameCommitTime) return `its last frame was committed at ${at.lastFrameCommitTime}, the changelog's frame ending at byte ${at.logBytes} at ${commitTime}`;
  return undefined;
}
