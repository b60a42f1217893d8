import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * Writes JSON so that a crash leaves the old file or the new one, never a mix:
 * write a temporary file, fsync it, rename over the target, fsync the folder.
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(value, null, 2));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

/** Test seam: told of each folder syncDir has fsync'd (tests check a new name is made durable before it is relied on). */
export const dirSyncs: { synced?: (path: string) => void } = {};

/** fsyncs a folder: a rename, creation or removal in it is durable only once the folder is. */
export async function syncDir(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
  dirSyncs.synced?.(path);
}

/**
 * `mkdir -p` that makes the new folders durable: a folder's entry is only
 * once its parent is fsync'd, so each parent of a folder it made is. Returns
 * whether it made any.
 */
export async function mkdirDurable(path: string): Promise<boolean> {
  const target = resolve(path);
  const first = await mkdir(target, { recursive: true });
  if (first === undefined) return false;
  for (let p = target; ; p = dirname(p)) {
    await syncDir(dirname(p));
    if (p === resolve(first) || dirname(p) === p) return true;
  }
}

/** Reads a JSON file, or returns `fallback` when it does not exist. */
export async function readJson<T>(path: string, fallback: T): Promise<T> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw e;
  }
}

/** Serialises async critical sections (catalog changes). */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
