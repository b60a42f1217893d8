/**
 * The table engine: the catalog of table definitions and the open tables.
 *
 * Layout under the data dir:
 *   catalog.json                  table definitions (atomic rewrite on change)
 *   tables/<name>/changelog-<position>.log   the table's changelog segments (see segments.ts, log.ts)
 *   tables/<name>/state.snapshot  pk tables: latest state at some offset
 *   LOCK                          the PID of the one process that has the folder open (lock.ts)
 */
import { join, relative } from 'node:path';
import { requireScope, UNRESTRICTED, type Caller } from '../access.js';
import { AsofError } from '../errors.js';
import type { Logger } from '../logger.js';
import { mkdirDurable, Mutex, readJson, writeJsonAtomic } from '../util/fs.js';
import { isReservedName, isValidName, NAME_PATTERN, RESERVED_PREFIX, TableSchema, type ColumnDef, type TableDef, type TableKind } from './schema.js';
import { defineTable } from './table-def.js';
import { ChangelogDamaged } from './log.js';
import type { KeyedAnswer } from './idempotency.js';
import { Table } from './table.js';
import { DataDirLock } from './lock.js';
import type { ColdTier } from './cold-tier.js';
import { Tiering } from './tiering.js';

/** 64 MiB: a segment is the unit the hot log is deleted in once tiered, so it is small against a day of ingest and large against a frame. */
export const DEFAULT_SEGMENT_BYTES = 64 << 20;

export interface EngineOptions {
  dataDir: string;
  logger: Logger;
  /** Clock, epoch ms. */
  now?: () => number;
  /** pk tables snapshot their state after this many new records. */
  snapshotEvery?: number;
  /** A replica refuses every change (default primary). */
  role?: Role;
  /** How long (ms after the commit) and how many per table Idempotency-Keys are remembered; default 24 h and 100,000. */
  idempotency?: { ttlMs: number; capacity: number };
  /** Changelog segment size, bytes (segments.ts). */
  segmentBytes?: number;
  /** The cold tier and when to move records there; undefined keeps every record in the hot log. */
  tiering?: { cold: ColdTier; tierAfterMs: number; hotRetentionMs: number; stepRecords?: number };
}

export const DEFAULT_IDEMPOTENCY = { ttlMs: 24 * 3600_000, capacity: 100_000 };

/** `primary`: owns its tables and definitions; `replica`: serves what primaries share over Redis, read-only. */
export type Role = 'primary' | 'replica';

const REPLICA_REFUSAL = 'this asof is a read replica (ASOF_ROLE=replica): define tables and write rows on the primary';

/** `{table: offset}`: the changelog positions a write produced or a read reflects. */
export type Token = Record<string, number>;

export interface TableInfo {
  name: string;
  kind: TableKind;
  columns: ColumnDef[];
  primaryKey: string[];
  eventTime: string | null;
  schemaVersion: number;
  schemaVersions: TableDef['schemaVersions'];
  rowCount: number;
  /** Offset of the newest record, or -1 when the changelog is empty. */
  latestOffset: number;
  /** Highest offset moved to the cold tier; -1 while nothing is tiered. */
  tieredOffset: number;
  createdAt: number;
}

export class Engine {
  private readonly tables = new Map<string, Table>();
  /** Tables that did not open (a damaged changelog, say): each answers ASOF_TABLE_UNAVAILABLE; the others serve. */
  private readonly unavailable = new Map<string, { def: TableDef; error: AsofError }>();
  private readonly mutex = new Mutex();
  private readonly defineListeners = new Set<(table: string) => void>();
  private readonly now: () => number;
  readonly role: Role;
  private lock?: DataDirLock;
  /** The background tiering task, when a cold tier is configured. */
  readonly tiering?: Tiering;
  /**
   * Set by the composition root when table names are owned in a shared store (a primary on Redis): asked before a
   * table is created, it rejects (ASOF_CONFLICT) a name another primary holds, and nothing is written.
   */
  claimName?: (table: string) => Promise<void>;

  private constructor(private readonly opts: EngineOptions) {
    this.now = opts.now ?? Date.now;
    this.role = opts.role ?? 'primary';
    if (opts.tiering) this.tiering = new Tiering(() => [...this.tables.values()], { ...opts.tiering, now: this.now, logger: opts.logger });
  }

  /**
   * Opens the data folder, exclusively: a second process (or a second open in
   * this one) gets DataDirLockedError naming the holder's PID until `close`.
   */
  static async open(opts: EngineOptions): Promise<Engine> {
    const e = new Engine(opts);
    // Made durable (parents fsync'd) before anything in it is: a table's files are acknowledged data.
    await mkdirDurable(join(opts.dataDir, 'tables'));
    e.lock = await DataDirLock.acquire(opts.dataDir);
    try {
      const { tables } = await readJson<{ tables: TableDef[] }>(e.catalogPath, { tables: [] });
      // Tables recover independently; open them side by side. One that fails stays closed and the rest serve.
      await Promise.all(
        tables.map(async (def) => {
          try {
            e.tables.set(def.name, await e.openTable(def));
          } catch (err) {
            e.unavailable.set(def.name, { def, error: e.unavailableError(def.name, err as Error) });
            opts.logger.error({ table: def.name, err: (err as Error).message, damage: err instanceof ChangelogDamaged ? err.damage : undefined }, `table "${def.name}" did not open and answers ASOF_TABLE_UNAVAILABLE: ${(err as Error).message}`);
          }
        }),
      );
    } catch (err) {
      await e.close().catch(() => undefined);
      throw err;
    }
    e.tiering?.start();
    return e;
  }

  private get catalogPath(): string {
    return join(this.opts.dataDir, 'catalog.json');
  }

  /** The API's error for a table that did not open: paths relative to the data folder (no server paths in answers). */
  private unavailableError(name: string, err: Error): AsofError {
    const hint = `; with the server stopped, \`asof repair --data-dir <data dir> --table ${name}\` cuts the changelog there (reporting what is lost)`;
    if (err instanceof ChangelogDamaged) {
      const d = { ...err.damage, path: relative(this.opts.dataDir, err.damage.path) };
      return new AsofError('ASOF_TABLE_UNAVAILABLE', `table "${name}" did not open: ${new ChangelogDamaged(d).message}${hint}`, { table: name, ...d });
    }
    return new AsofError('ASOF_TABLE_UNAVAILABLE', `table "${name}" did not open: ${err.message.split(this.opts.dataDir).join('<data dir>')}`, { table: name });
  }

  /** `defined`: the table is being defined now (not opened from the catalog). */
  private async openTable(def: TableDef, defined = false): Promise<Table> {
    const dir = join(this.opts.dataDir, 'tables', def.name);
    // Whether the table's folder was made now; `tables/` is fsync'd then, so the folder outlives a crash with the segment made in it.
    const made = await mkdirDurable(dir);
    // A table defined now into a folder made now has no record: its cold data is looked up when first used (cold-thread.ts).
    const cold = await this.opts.tiering?.cold.open(def.name, def.primaryKey, { created: defined && made });
    return Table.open(new TableSchema(def), dir, { snapshotEvery: this.opts.snapshotEvery ?? 200_000, now: this.now, idempotency: this.opts.idempotency ?? DEFAULT_IDEMPOTENCY, segmentBytes: this.opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES }, this.opts.logger, cold);
  }

  /**
   * Creates a table or evolves its schema. Evolution is instant: old records
   * are not rewritten, they read the new columns as null.
   */
  defineTable(
    name: string,
    body: { kind: TableKind; columns: ColumnDef[]; primaryKey?: string[]; eventTime?: string },
    opts: { internal?: boolean } = {},
  ): Promise<{ info: TableInfo; created: boolean; changed: boolean }> {
    if (isReservedName(name) && !opts.internal) {
      return Promise.reject(new AsofError('ASOF_INVALID_ARGUMENT', `table names starting with "${RESERVED_PREFIX}" are reserved for asof's internal tables`, [{ field: 'table', reason: `reserved prefix "${RESERVED_PREFIX}"` }]));
    }
    return this.mutex.run(async () => {
      this.refuseOnReplica();
      const broken = this.unavailable.get(name);
      if (broken) throw broken.error;
      const existing = this.tables.get(name);
      const { def, changed } = defineTable(name, body, existing?.schema.def, this.now());
      if (changed) {
        if (!existing && !isReservedName(name)) await this.claimName?.(name);
        // Tables that did not open stay in the catalog as they are.
        const defs = [...[...this.tables.values()].map((t) => (t.name === name ? def : t.schema.def)), ...[...this.unavailable.values()].map((u) => u.def)];
        if (!existing) defs.push(def);
        await writeJsonAtomic(this.catalogPath, { tables: defs });
        if (existing) existing.schema = new TableSchema(def);
        else this.tables.set(name, await this.openTable(def, true));
        for (const l of this.defineListeners) l(name);
      }
      return { info: this.describe(name, UNRESTRICTED), created: !existing, changed };
    });
  }

  /**
   * The table to write rows to. A replica refuses before looking the table
   * up (it holds none): every adapter answers the same 409, not a 404.
   */
  writable(name: string): Table {
    this.refuseOnReplica();
    return this.table(name);
  }

  private refuseOnReplica(): void {
    if (this.role === 'replica') throw new AsofError('ASOF_CONFLICT', REPLICA_REFUSAL, { role: 'replica' });
  }

  /** Calls `listener` after a table is created or its schema changes (derived state such as vector search follows new columns). */
  onDefine(listener: (table: string) => void): () => void {
    this.defineListeners.add(listener);
    return () => this.defineListeners.delete(listener);
  }

  /** Whether the table exists and is open (false for one that did not open: `table` says why). */
  has(name: string): boolean {
    return this.tables.has(name);
  }

  /**
   * The table `caller` asked to read, by name: every adapter's read of a
   * table it was told the name of (rows, changelog, follows, describe, entity
   * rows, vector search, a feature view's source) goes through here or
   * `requireReadable`, and `list` shows only these.
   * asof's internal tables (names starting `_asof`: the decision log, which
   * holds served values, tokens and view definitions) are guarded as
   * `/audit/*` is: reading one needs the audit scope. The scope is checked
   * before the name is looked up, so a caller without it learns nothing, not
   * even whether the table exists. `table` (unchecked) is for asof's own reads.
   */
  readable(name: string, caller: Caller): Table {
    this.requireReadable(name, caller);
    return this.table(name);
  }

  /** Throws 403 unless `caller` may read a table of this name, whether or not one exists (see `readable`). */
  requireReadable(name: string, caller: Caller): void {
    if (!this.mayRead(name, caller)) requireScope(caller, INTERNAL_TABLE_SCOPE, `table "${name}" is internal to asof: it holds the decisions /audit/* answers from`);
  }

  table(name: string): Table {
    const t = this.tables.get(name);
    if (!t) throw this.unavailable.get(name)?.error ?? this.notFound(name);
    return t;
  }

  /** No table has this name: 404, or 400 when no table could (every adapter then answers what REST's schema does). */
  private notFound(name: string): AsofError {
    if (!isValidName(name)) return new AsofError('ASOF_INVALID_ARGUMENT', `invalid table name "${name}": must match ${NAME_PATTERN}`, [{ field: 'table', reason: 'not a table name' }]);
    return new AsofError('ASOF_TABLE_NOT_FOUND', `table "${name}" does not exist`, { table: name });
  }

  /**
   * The answer a keyed request got on whichever table it was written to, while
   * its key is remembered. Keys are one namespace across tables (a key reused on
   * another table is a conflict), so every open table is asked.
   */
  keyedAnswer(key: string): { table: string; answer: KeyedAnswer } | undefined {
    for (const [table, t] of this.tables) {
      const answer = t.keyedAnswer(key);
      if (answer) return { table, answer };
    }
    return undefined;
  }

  /** Whether `caller` may read a table of this name, if there is one (see `readable`). */
  mayRead(name: string, caller: Caller): boolean {
    return !isReservedName(name) || caller.scopes.has(INTERNAL_TABLE_SCOPE);
  }

  /** The tables `caller` may read (see `readable`), by name. */
  list(caller: Caller): TableInfo[] {
    return [...this.tables.keys()]
      .filter((n) => this.mayRead(n, caller))
      .sort()
      .map((n) => this.describe(n, caller));
  }

  /** A table's definition and positions, for `caller` (see `readable`). */
  describe(name: string, caller: Caller): TableInfo {
    const t = this.readable(name, caller);
    const d = t.schema.def;
    return {
      name: d.name,
      kind: d.kind,
      columns: d.columns,
      primaryKey: d.primaryKey,
      eventTime: d.eventTime ?? null,
      schemaVersion: t.schema.version,
      schemaVersions: d.schemaVersions,
      rowCount: t.rowCount,
      latestOffset: t.endOffset - 1,
      tieredOffset: t.tieredEnd - 1,
      createdAt: d.createdAt,
    };
  }

  /** The current token of the given tables (all when omitted): the newest committed offset of each. */
  token(names?: string[]): Token {
    const out: Token = {};
    for (const n of names ?? [...this.tables.keys()]) out[n] = this.table(n).endOffset - 1;
    return out;
  }

  /**
   * Tiering lag of a table: records not yet in the cold tier, and the age (ms)
   * of the oldest of them (0 when none). Undefined without a cold tier.
   */
  tieringLag(name: string): { records: number; ms: number } | undefined {
    if (!this.tiering) return undefined;
    const t = this.table(name);
    const records = t.endOffset - t.tieredEnd;
    return { records, ms: records > 0 ? Math.max(0, this.now() - t.commitTimeAt(t.tieredEnd)) : 0 };
  }

  /**
   * Stops everything that writes (tiering: cold-tier commits, segment
   * deletes, snapshots; then the tables: queued writes, the last snapshot;
   * then the cold tier), and only then gives the lock up: once it is gone
   * another process may open the folder, and nothing of this one may write
   * after that. Each step is tried even when one before it failed; the first
   * failure is thrown after the lock is released.
   */
  async close(): Promise<void> {
    let failed: { e: unknown } | undefined;
    const step = async (f: () => Promise<unknown> | undefined): Promise<void> => {
      try {
        await f();
      } catch (e) {
        failed ??= { e };
      }
    };
    await step(() => this.tiering?.stop());
    await step(() => Promise.all([...this.tables.values()].map((t) => t.close())));
    await step(() => this.opts.tiering?.cold.close());
    await this.lock?.release();
    if (failed) throw failed.e;
  }
}

/** The scope that guards what asof's internal tables hold (the decision log: what `/audit/*` answers from). */
const INTERNAL_TABLE_SCOPE = 'audit';
