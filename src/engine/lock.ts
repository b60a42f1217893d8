/**
 * The exclusive lock on a data folder: one process writes a folder's
 * changelogs at a time. `<dataDir>/LOCK` holds the holder's PID (and, on
 * Linux, its start time, so a PID reused after a kill -9 is not mistaken for
 * the holder). The file is created whole (written, then linked in: never
 * empty, see createHolding); a lock whose holder is gone
 * (killed, crashed) is stale and taken over, so no one has to delete it by
 * hand. Advisory: it keeps asof processes apart, not other programs.
 */
import { open, readdir, readFile, rename, unlink, link } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

interface Holder {
  pid: number;
  /** Clock ticks since boot when the holder started (/proc/<pid>/stat field 22); absent off Linux. */
  start?: string;
  /** When the lock was taken, RFC 3339. */
  since: string;
}

/** A second process opening a data folder that another live process holds. */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holderPid: number,
  ) {
    super(`the data folder ${dataDir} is in use by another asof process (PID ${holderPid}): stop that process, or use another data folder`);
    this.name = 'DataDirLockedError';
  }
}

/** The start time of a process, or undefined where /proc does not tell (not Linux, process gone). */
function startOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (the command) may hold spaces and parentheses: count fields after its closing parenthesis.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether a process with this PID runs (any process: a reused PID counts as alive). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: alive, owned by another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the recorded holder still runs: its PID is alive and, where known, started when the holder did. */
function holderAlive(h: Holder): boolean {
  if (!pidAlive(h.pid)) return false;
  const start = h.start === undefined ? undefined : startOf(h.pid);
  return start === undefined || start === h.start;
}

function parseHolder(text: string): Holder | undefined {
  try {
    const h = JSON.parse(text) as Holder;
    return Number.isSafeInteger(h.pid) && h.pid > 0 ? h : undefined;
  } catch {
    return undefined;
  }
}

export class DataDirLock {
  private released = false;

  private constructor(
    readonly path: string,
    private readonly content: string,
  ) {}

  /**
   * Takes the folder's lock, or throws DataDirLockedError naming the live
   * holder (this process too: a folder is opened once per process). A stale
   * lock (holder gone, or unreadable: a crash while writing it) is taken over.
   */
  static async acquire(dataDir: string): Promise<DataDirLock> {
    const path = join(dataDir, 'LOCK');
    const holder: Holder = { pid: process.pid, start: startOf(process.pid), since: new Date().toISOString() };
    const content = JSON.stringify(holder) + '\n';
    for (let attempt = 0; attempt < 5; attempt++) {
      if (await createHolding(path, content)) {
        await removeLeftovers(dataDir);
        return new DataDirLock(path, content);
      }
      const text = await readFile(path, 'utf8').catch(() => undefined);
      if (text === undefined) continue; // released meanwhile: try again
      const seen = parseHolder(text);
      if (seen && holderAlive(seen)) throw new DataDirLockedError(dataDir, seen.pid);
      await breakStale(path, text);
    }
    throw new Error(`could not take the lock of the data folder ${dataDir}: other processes keep taking it`);
  }

  /** Gives the lock up (once); leaves a lock that is no longer this one's alone. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const text = await readFile(this.path, 'utf8').catch(() => undefined);
    if (text === this.content) await unlink(this.path).catch(() => undefined);
  }
}

/** Test seam: called once a new LOCK exists, before `acquire` returns (a test acquires again there). */
export const lockSteps: { created?: (path: string) => Promise<void> } = {};

/**
 * Creates `path` holding `content`; false when it exists already. The content
 * is written and fsync'd in a temporary file first, then linked in (link
 * fails when the name exists, as O_EXCL does): LOCK never exists empty, so
 * no other process can read an empty lock, take it for a torn stale one and
 * break a live holder's lock (as it could between an open('wx') and its write).
 */
async function createHolding(path: string, content: string): Promise<boolean> {
  const tmp = `${path}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  await lockSteps.created?.(path);
  return true;
}

/** `LOCK.<pid>-<random>.tmp` (createHolding) or `LOCK.stale-<pid>` (breakStale): the PID is the writer's. */
const LEFTOVER = /^LOCK\.(?:(\d+)-[0-9a-f]+\.tmp|stale-(\d+))$/;

/**
 * Removes the temporary files of acquires that crashed before removing them
 * (kill -9 between creating and unlinking one), which nothing else would
 * ever remove. Only those of dead PIDs: a live process's may be in use by an
 * acquire under way (a PID reused since keeps its leftover: harmless, and a
 * later open removes it). Best effort: a failure here does not fail the open.
 */
async function removeLeftovers(dataDir: string): Promise<void> {
  const names = await readdir(dataDir).catch(() => [] as string[]);
  for (const name of names) {
    const m = LEFTOVER.exec(name);
    if (m && !pidAlive(Number(m[1] ?? m[2]))) await unlink(join(dataDir, name)).catch(() => undefined);
  }
}

/**
 * Removes a stale lock. Moved aside first (rename is atomic), then checked:
 * when two processes break the same stale lock at once, the second may have
 * moved the first's fresh lock; it puts that back (link fails if a lock is
 * there again) instead of deleting it.
 */
async function breakStale(path: string, staleText: string): Promise<void> {
  const aside = `${path}.stale-${process.pid}`;
  try {
    await rename(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const moved = await readFile(aside, 'utf8').catch(() => staleText);
  if (moved !== staleText) await link(aside, path).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}
