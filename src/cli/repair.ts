/**
 * `asof repair --data-dir D --table T`: cuts a table's changelog at its first
 * bad frame (engine/repair.ts) and reports what was cut. With no server on
 * the data folder.
 */
import { repairTable } from '../engine/repair.js';
import { parseArgs, UsageError } from './args.js';

export const REPAIR_USAGE = `usage: asof repair --data-dir D --table T [--dry-run]

A table whose changelog is damaged before its end does not open (it answers
ASOF_TABLE_UNAVAILABLE; the other tables serve). This cuts the changelog at its
first bad frame, losing every record from there on, removes the table's
snapshot (the next start replays the changelog; it is removed too when it
does not match the changelog, say covers more bytes than it holds), and prints what was lost:
offsets, records and bytes, as a line of JSON on stdout. Stop the server first.

options:
  --data-dir D   the data folder
  --table T      the table to repair
  --dry-run      only report what would be cut
`;

export async function repair(argv: string[]): Promise<void> {
  const a = parseArgs(argv, { values: ['data-dir', 'table'], bools: ['dry-run'] });
  const dataDir = a.flags.get('data-dir');
  const table = a.flags.get('table');
  if (!dataDir || !table || a.positionals.length > 0) throw new UsageError('give --data-dir and --table');
  const dryRun = a.bools.has('dry-run');
  const r = await repairTable(dataDir, table, { dryRun });
  const c = r.cut;
  const verb = dryRun ? 'would cut' : 'cut';
  const stale = r.snapshotMismatch ? `; the snapshot does not match the changelog (${r.snapshotMismatch}): ${dryRun ? 'would remove' : 'removed'} it, the next start replays the changelog` : '';
  if (!c) process.stderr.write(`${table}: every frame is whole (${r.kept.frames} frames, ${r.kept.records} records, ${r.kept.bytes} bytes); nothing to cut${stale}\n`);
  else if (c.tornTail) process.stderr.write(`${table}: ${verb} a torn tail at byte ${c.pos} (${c.reason}): ${c.bytes} bytes, no acknowledged record; kept ${r.kept.records} records\n`);
  else process.stderr.write(`${table}: ${verb} at byte ${c.pos} (${c.reason}): offsets ${c.fromOffset}..${c.endOffset - 1} (${c.records} records), ${c.bytes} bytes; kept offsets 0..${r.kept.records - 1} (${r.kept.bytes} bytes)${r.snapshotRemoved ? '; snapshot removed' : ''}\n`);
  process.stdout.write(JSON.stringify(r) + '\n');
}
