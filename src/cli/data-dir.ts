/**
 * The data folder of a CLI command that only reads it, or writes to a table
 * it must already hold (`asof export --data-dir`, `asof ingest --data-dir`
 * without `--create`): it must be one a server made. Opening the engine on any other
 * path would make a new, empty store there (catalog.json, tables/,
 * training-sets/) before the command failed on what is not in it.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Throws an error naming `path` unless it is a folder holding asof's catalog (written by every server start). */
export async function readableDataDir(path: string): Promise<void> {
  const isFolder = await stat(path).then(
    (s) => s.isDirectory(),
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw new Error(`--data-dir ${path}: ${e.message}`);
    },
  );
  if (isFolder === undefined) throw new Error(`--data-dir ${path}: no such folder (a command that reads a data folder does not create one)`);
  if (!isFolder) throw new Error(`--data-dir ${path}: not a folder`);
  const catalog = await stat(join(path, 'catalog.json')).then(
    () => true,
    () => false,
  );
  if (!catalog) throw new Error(`--data-dir ${path}: the folder holds no asof data (no catalog.json): give the data folder a server ran on (its ASOF_DATA_DIR)`);
}
