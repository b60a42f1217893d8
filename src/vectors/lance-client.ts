/**
 * A vector column's Lance dataset as the main thread sees it: every call runs
 * in the process's LanceDB thread (engine/lance-host.ts; lance-ops.ts answers
 * there), which the cold tier shares: LanceDB loaded on the main thread as
 * well crashes the process (lance-host.ts says why). A store opened under a
 * thread that has died since opens again (never fresh) before its next call.
 */
import { Vector, type Data, type FixedSizeList } from 'apache-arrow';
import { decodeColumn, decodeIpc } from '../engine/arrow-codec.js';
import type { CompiledColumn } from '../engine/schema.js';
import { hostModule, lanceHost } from '../engine/lance-host.js';
import type { Metric } from './distance.js';
import type { StoreMethod, VectorConn } from './lance-ops.js';
import { filterColumns, VECTOR, type Candidate, type IndexParams, type StoredRow, type StoreColumn } from './lance-store.js';

const OPS = hostModule('./lance-ops', import.meta.url);

/** A column as it crosses to the LanceDB thread: its name and type kind only. */
const plain = (columns: CompiledColumn[]): StoreColumn[] => columns.map((c) => ({ name: c.name, type: { kind: c.type.kind } }));

/** The table columns a dataset opened or extended with `columns` holds (the filterable ones, lance-store.ts). */
const heldOf = (columns: StoreColumn[]): ReadonlySet<string> => new Set(filterColumns(columns).map((c) => c.name));

/** Rows as they cross: each vector copied, so a view does not carry its whole buffer along. */
const sendable = (rows: StoredRow[]): StoredRow[] => rows.map((r) => ({ ...r, vector: r.vector.slice() }));

/**
 * The candidates in the Arrow IPC streams a search answered (lance-store.ts,
 * CANDIDATE_COLUMNS), in Lance's order. Each vector is a view into its
 * stream's buffer, which the LanceDB thread transferred.
 */
export function readCandidates(batches: Uint8Array[]): Candidate[] {
  const out: Candidate[] = [];
  for (const bytes of batches) {
    const b = decodeIpc(bytes);
    const column = (name: string): Data => {
      const d = b.column(name);
      if (!d) throw new Error(`a vector search answered no ${name} column`);
      return d;
    };
    const keys = decodeColumn({ kind: 'string' }, new Vector([column('_asof_key')])) as string[];
    const offsets = decodeColumn({ kind: 'int64' }, new Vector([column('_asof_offset')])) as number[];
    const rows = decodeColumn({ kind: 'string' }, new Vector([column('_asof_row')])) as string[];
    const vectors = column(VECTOR) as Data<FixedSizeList>;
    const dim = vectors.type.listSize;
    const values = vectors.children[0].values as Float32Array;
    const first = vectors.children[0].offset + vectors.offset * dim;
    for (let i = 0; i < b.numRows; i++) {
      out.push({ key: keys[i], offset: offsets[i], rowJson: rows[i], vector: values.subarray(first + i * dim, first + (i + 1) * dim) });
    }
  }
  return out;
}

/** The dataset names at `conn`. */
export function lanceTableNames(conn: VectorConn): Promise<string[]> {
  return lanceHost().call<string[]>(OPS, 'tableNames', [conn]);
}

/** Closes the connection `conn` in the LanceDB thread (if it runs). */
export async function lanceDisconnect(conn: VectorConn): Promise<void> {
  if (lanceHost().threadId !== undefined) await lanceHost().call(OPS, 'disconnect', [conn]);
}

/** A read-only handle on an older version of a store (asOf searches). */
export interface VersionHandle {
  id: number;
  generation: number;
  /** The dataset's columns at that version: columns added to the table since are not among them. */
  columns: ReadonlySet<string>;
}

/**
 * A search's where clause for a dataset that holds the columns `held`
 * (filter.ts: a condition on a column it lacks is a constant, the column
 * being null on every row there).
 */
export type WhereFor = (held: ReadonlySet<string>) => string;

export class VectorStore {
  /**
   * The table columns the dataset's latest version is known to hold: those it was last opened or extended with
   * (addMissingColumns). A column added to the table joins them once it is added to the dataset, before any row
   * holding a value of it is written there; until then every row the dataset has is null in it.
   */
  private held: ReadonlySet<string>;

  private constructor(
    private readonly conn: VectorConn,
    readonly name: string,
    private readonly dim: number,
    private columns: StoreColumn[],
    private handle: number,
    private generation: number,
  ) {
    this.held = heldOf(columns);
  }

  /** Opens the dataset, or creates it empty; `fresh` drops what was there (a rebuild). */
  static async open(conn: VectorConn, name: string, dim: number, columns: CompiledColumn[], fresh: boolean): Promise<VectorStore> {
    const host = lanceHost();
    const generation = await host.ready();
    const cols = plain(columns);
    const handle = await host.call<number>(OPS, 'open', [conn, name, dim, cols, fresh]);
    return new VectorStore(conn, name, dim, cols, handle, generation);
  }

  /** The store's handle in the current LanceDB thread (opened again after a thread's death). */
  private async current(): Promise<number> {
    const host = lanceHost();
    const g = await host.ready();
    if (g !== this.generation) {
      const columns = this.columns;
      this.handle = await host.call<number>(OPS, 'open', [this.conn, this.name, this.dim, columns, false]);
      this.generation = g;
      this.held = heldOf(columns);
    }
    return this.handle;
  }

  private async call<T>(method: StoreMethod, ...args: unknown[]): Promise<T> {
    return lanceHost().call<T>(OPS, 'call', [await this.current(), method, args]);
  }

  /** Schema evolution: columns added to the table are added to the dataset as all-null (instant in Lance). */
  async addMissingColumns(columns: CompiledColumn[]): Promise<void> {
    const cols = plain(columns);
    this.columns = cols;
    await this.call('addMissingColumns', cols);
    this.held = heldOf(cols);
  }

  /** pk tables: the latest version of each key (insert or replace), one commit. */
  upsert(rows: StoredRow[]): Promise<void> {
    return rows.length === 0 ? Promise.resolve() : this.call('upsert', sendable(rows));
  }

  /** Log tables: appends record versions. */
  append(rows: StoredRow[]): Promise<void> {
    return rows.length === 0 ? Promise.resolve() : this.call('append', sendable(rows));
  }

  deleteKeys(keys: string[]): Promise<void> {
    return keys.length === 0 ? Promise.resolve() : this.call('deleteKeys', keys);
  }

  /** Drops versions written after `offset` (a crash between a Lance commit and the position file). */
  deleteAfter(offset: number): Promise<void> {
    return this.call('deleteAfter', offset);
  }

  version(): Promise<number> {
    return this.call('version');
  }

  /** Reads the dataset's latest version: a commit made through this handle whose call failed may be one it has not seen. */
  latest(): Promise<void> {
    return this.call('latest');
  }

  countRows(where?: string): Promise<number> {
    return this.call('countRows', where);
  }

  /** The vector index's statistics, undefined when there is none. */
  async indexStats(): Promise<{ indexed: number; unindexed: number; metric?: string; type: string } | undefined> {
    return (await this.call<{ indexed: number; unindexed: number; metric?: string; type: string } | null>('indexStats')) ?? undefined;
  }

  /** Trains the vector index over the current rows (replacing one there). Slow: run in the background. */
  buildIndex(metric: Metric, kind: IndexParams['kind'], rows: number): Promise<void> {
    return this.call('buildIndex', metric, kind, rows);
  }

  ensureKeyIndex(): Promise<void> {
    return this.call('ensureKeyIndex');
  }

  /** Compacts small fragments and adds new rows to the indexes; removes versions older than `cleanupOlderThan`. */
  optimize(cleanupOlderThan: Date): Promise<void> {
    return this.call('optimize', cleanupOlderThan);
  }

  versions(): Promise<number[]> {
    return this.call('versions');
  }

  /** A handle on version `version` (asOf searches); close it with closeVersion. */
  async at(version: number): Promise<VersionHandle> {
    const h = await this.current();
    const { id, columns } = await lanceHost().call<{ id: number; columns: string[] }>(OPS, 'at', [h, version]);
    return { id, generation: this.generation, columns: new Set(columns) };
  }

  async closeVersion(v: VersionHandle): Promise<void> {
    if (v.generation === lanceHost().generation && lanceHost().threadId !== undefined) await lanceHost().call(OPS, 'closeVersion', [v.id]);
  }

  /**
   * Nearest rows by `metric`, of the current version or of `version` (lance-store.ts's LanceVectors.search),
   * filtered by `where` written for the columns that version holds: a version handle from a thread that has
   * died since fails, and the caller scans the changelog instead.
   */
  async search(version: VersionHandle | undefined, q: { vector: Float32Array; limit: number; metric: Metric; where?: WhereFor; exact: boolean; params: IndexParams }): Promise<Candidate[]> {
    const h = await this.current();
    if (version && version.generation !== this.generation) throw new Error('the LanceDB thread that opened this version has stopped');
    const where = q.where?.(version ? version.columns : this.held);
    return readCandidates(await lanceHost().call<Uint8Array[]>(OPS, 'search', [h, version?.id, { ...q, where }]));
  }

  async close(): Promise<void> {
    if (this.generation === lanceHost().generation && lanceHost().threadId !== undefined) await lanceHost().call(OPS, 'close', [this.handle]);
  }
}
