/**
 * `asof repair`: cuts a table's changelog at its first bad frame, and only
 * when asked. A table whose changelog is damaged before its end does not open
 * (log.ts); this is the one way to make it open again, losing every record
 * from the damage on, and it says exactly what that is. The snapshot is
 * removed with the cut (it may cover frames that are gone): the next start
 * replays the changelog from 0. Run it with no server on the data folder.
 */
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readJson } from '../util/fs.js';
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
  let report: RepairReport;
  try {
    report = await ChangelogFile.repair(join(dir, 'changelog.log'), opts);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    report = { path: join(dir, 'changelog.log'), size: 0, kept: { bytes: 0, frames: 0, records: 0 } };
  }
  const snapshotRemoved = Boolean(report.cut && !opts.dryRun);
  if (snapshotRemoved) {
    await rm(join(dir, 'state.snapshot'), { force: true });
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
  return { table, ...report, snapshotRemoved };
}
