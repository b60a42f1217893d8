/**
 * `asof repair`: cuts a table's changelog at its first bad frame, and only
 * when asked. A table whose changelog is damaged before its end does not open
 * (log.ts); this is the one way to make it open again, losing every record
 * from the damage on, and it says exactly what that is. The snapshot is
 * removed with the cut (it may cover frames that are gone): the next start
 * replays the changelog from 0. It takes the data folder's lock (lock.ts),
 * so it refuses to run while a server (or any asof process) has the folder
 * open: cutting a changelog under a live writer would lose acknowledged
 * records. A dry run takes it too: it reads files a server may be writing.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readJson, syncDir } from '../util/fs.js';
import { DataDirLock } from './lock.js';
import { ChangelogFile, type RepairReport } from './log.js';
import type { TableDef } from './schema.js';

export interface TableRepairReport extends RepairReport {
  table: string;
  /** Whether state.snapshot was removed (it is whenever something is cut). */
  snapshotRemoved: boolean;
}

/** Checks a table's changelog and, unless `dryRun`, cuts it at the first bad frame. Throws for a table the catalog does not hold. */
export async function repairTable(dataDir: string, table: string, opts: { dryRun?: boolean } = {}): Promise<TableRepairReport> {
  const { tables } = await readJson<{ tables: TableDef[] }>(join(dataDir, 'catalog.json'), { tables: [] });
  if (!tables.some((t) => t.name === table)) throw new Error(`no table "${table}" in the catalog of ${dataDir} (tables: ${tables.map((t) => t.name).join(', ') || 'none'})`);
  const dir = join(dataDir, 'tables', table);
  const lock = await DataDirLock.acquire(dataDir);
  try {
    const report = await repairSegments(await segmentFiles(dir), opts);
    const snapshotRemoved = Boolean(report.cut && !opts.dryRun);
    if (snapshotRemoved) {
      await rm(join(dir, 'state.snapshot'), { force: true });
      await syncDir(dir);
    }
    return { table, ...report, snapshotRemoved };
  } finally {
    await lock.release();
  }
}

const SEGMENT = /^changelog-(\d{20})\.log$/;

/** The table's changelog files in order, each with the byte position it starts at in the whole changelog (its name). */
async function segmentFiles(dir: string): Promise<{ path: string; base: number }[]> {
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
 * Walks the segments in order; the first bad frame is cut, and every later
 * segment is removed with it (its records follow the damage, so they are lost
 * too and counted). Positions are in the whole changelog (segment base + position in it).
 */
async function repairSegments(segs: { path: string; base: number }[], opts: { dryRun?: boolean }): Promise<RepairReport> {
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
    if (!opts.dryRun) {
      await ChangelogFile.repair(seg.path, {});
      for (const l of later) await rm(l.path);
    }
    // A bad last frame in its segment is a torn tail only when no later segment follows: whole frames after it make it damage.
    const cut = { ...found.cut, pos: seg.base + found.cut.pos, bytes: found.cut.bytes + laterBytes, tornTail: found.cut.tornTail && later.length === 0, endOffset, records: endOffset - found.cut.fromOffset };
    return { path: seg.path, size, kept: { bytes: seg.base + found.kept.bytes, frames: frames + found.kept.frames, records: found.kept.records }, cut, dryRun: opts.dryRun || undefined };
  }
  const last = segs[segs.length - 1];
  const records = last ? (await ChangelogFile.repair(last.path, { dryRun: true })).kept.records : 0;
  return { path: last?.path ?? '', size, kept: { bytes: size, frames, records } };
}
