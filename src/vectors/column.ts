/**
 * The search state of one vector column: a Lance dataset (lance-store.ts)
 * plus the records not yet written to it (hot.ts), kept from the table's
 * changelog by this one piece of code.
 *
 * Progress is its own: `position.json` records the newest offset in Lance and
 * the Lance version each flush produced (offset and commit time → version, for
 * asOf searches; Lance versions are not tagged). At start the column checks
 * the dataset against that file (missing or from another table: rebuilt from
 * the changelog from offset 0), then reads the changelog after the position
 * into memory before it answers. The subscription starts first and buffers, so
 * nothing committed meanwhile is missed or applied twice.
 *
 * A column whose start fails (its dataset does not open: unreadable, damaged)
 * answers 503 and is started again, whole, by a search or flush that comes
 * once a backoff has passed (REOPEN_MS: 1 s, doubling to 30 s while it keeps
 * failing). Nothing is lost meanwhile: the changelog after the position file's
 * offset is read into memory when it does start, as at a restart, and flushed.
 *
 * Lance writes, index builds and compaction run one at a time on a background
 * chain, never on a request's path. A record from a crash between a Lance
 * commit and the position file is written again: merge-insert and delete are
 * idempotent for pk tables; log tables first drop rows beyond the position.
 */
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { AsofError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Commit, Table } from '../engine/table.js';
import { readJson, writeJsonAtomic } from '../util/fs.js';
import type { Metric } from './distance.js';
import { HotApplier, Segment, type HotEntry, vectorOf } from './hot.js';
import { lanceTableNames, VectorStore, type VersionHandle } from './lance-client.js';
import type { VectorConn } from './lance-ops.js';
import { filterColumns, type IndexParams, type StoredRow } from './lance-store.js';

export interface ColumnOptions {
  /** How often records are moved from memory into Lance, ms. */
  flushMs: number;
  /** Rows in Lance before the ANN index is trained. */
  indexMinRows: number;
  index: IndexParams;
  /** Lance versions older than this are removed by compaction (asOf beyond it scans the changelog), ms. */
  keepVersionsMs: number;
  now: () => number;
}

/** A Lance version and the changelog position it holds: every record with offset <= `offset`, the newest committed at `commitTime`. */
export interface VersionMark {
  version: number;
  offset: number;
  commitTime: number;
}

interface Position {
  lineage: string;
  offset: number;
  versions: VersionMark[];
  /** Rows when the vector index was last trained (0: none). */
  trainedRows: number;
}

const MAX_MARKS = 4096;

/** Waits before a column that did not start is started again: the first, and the longest (doubling in between). */
export const REOPEN_MS = { first: 1000, max: 30_000 };

/** `v` and a new version mark; beyond MAX_MARKS, every other older mark goes (asOf then uses an earlier version plus more changelog). */
function withMark(v: VersionMark[], m: VersionMark): VersionMark[] {
  const out = [...v, m];
  return out.length > MAX_MARKS ? [...out.slice(0, MAX_MARKS / 2).filter((_, i) => i % 2 === 0), ...out.slice(MAX_MARKS / 2)] : out;
}

export class VectorColumn {
  /** Newest first: [active, ...sealed being flushed]. */
  private active = new Segment();
  private sealed: Segment[] = [];
  readonly applier: HotApplier;
  /** Read-only handles on older Lance versions (asOf), a few kept open. */
  private readonly versionHandles = new Map<number, Promise<VersionHandle>>();
  private position!: Position;
  private chain: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private closed = false;
  private flushes = 0;
  /** A Lance write began and did not finish: it may have landed (see write). */
  private unsure = false;
  /** Rows in the Lance dataset, and of them in the vector index, as of the last upkeep (metrics). */
  coverage = { lance: 0, indexed: 0 };
  /** The metric the current index was trained for, undefined without an index. */
  indexMetric?: Metric;
  lance!: VectorStore;
  /** Highest offset applied to memory. */
  applied = -1;
  /** The latest start: under way, done, or failed. */
  private opening: Promise<void>;
  /** After a failed start: when it failed and how long to wait before the next (REOPEN_MS). */
  private failure?: { at: number; wait: number };

  constructor(
    readonly table: Table,
    readonly column: string,
    readonly metric: Metric,
    private readonly conn: VectorConn,
    private readonly stateDir: string,
    private readonly opts: ColumnOptions,
    private readonly logger: Logger,
  ) {
    this.applier = new HotApplier(() => table.schema, column);
    this.opening = this.open();
  }

  /**
   * Resolves once the column has started; rejects (503 ASOF_TABLE_UNAVAILABLE, naming it and why) while it has not.
   * Asked after a failed start once its backoff has passed, it starts the column again and answers that attempt.
   */
  get ready(): Promise<void> {
    if (this.failure && !this.closed && this.opts.now() - this.failure.at >= this.failure.wait) this.opening = this.open();
    return this.opening;
  }

  /** One start; a failure is logged and answered as 503 until a later `ready` starts the column again. */
  private open(): Promise<void> {
    const waited = this.failure?.wait;
    this.failure = undefined;
    const attempt = this.start().then(
      () => {
        if (waited !== undefined) this.logger.info({ table: this.table.name, column: this.column }, 'vector column started after failing to');
      },
      (e: unknown) => {
        const why = e instanceof Error ? e.message : String(e);
        const wait = waited === undefined ? REOPEN_MS.first : Math.min(2 * waited, REOPEN_MS.max);
        this.failure = { at: this.opts.now(), wait };
        this.logger.error({ table: this.table.name, column: this.column, err: why, retryInMs: wait }, 'vector column failed to start');
        // The table's rows and changelog are served as usual; only this column's searches fail.
        throw new AsofError('ASOF_TABLE_UNAVAILABLE', `vector column "${this.name}" did not open: ${why}; a search or flush ${wait / 1000} s or more after this failure tries to open it again`, { table: this.table.name, column: this.column });
      },
    );
    attempt.catch(() => undefined);
    return attempt;
  }

  get name(): string {
    return `${this.table.name}.${this.column}`;
  }
  get dim(): number {
    const t = this.table.schema.byName.get(this.column)!.type;
    return t.kind === 'vector' ? t.dim : 0;
  }
  get pk(): boolean {
    return this.table.schema.kind === 'pk';
  }
  private get positionPath(): string {
    return join(this.stateDir, `${this.name}.json`);
  }
  private get lineage(): string {
    return `${this.table.name}@${this.table.schema.def.createdAt}/${this.column}/${this.dim}`;
  }
  /** The marks of versions an asOf search may use. */
  get marks(): readonly VersionMark[] {
    return this.position.versions;
  }
  /** Rows held in memory, not yet in Lance. */
  get hotRows(): number {
    return this.active.size + this.sealed.reduce((n, s) => n + s.size, 0);
  }

  /** Opens the dataset and reads the changelog after the position into memory; a failure leaves nothing behind (open runs it again). */
  private async start(): Promise<void> {
    const saved = await readJson<Position | null>(this.positionPath, null);
    const names = await lanceTableNames(this.conn);
    const fresh = !saved || saved.lineage !== this.lineage || !names.includes(this.name);
    if (fresh && saved) this.logger.warn({ column: this.name }, 'vector state does not match its table; rebuilding it from the changelog');
    this.position = fresh ? { lineage: this.lineage, offset: -1, versions: [], trainedRows: 0 } : saved;
    this.lance = await VectorStore.open(this.conn, this.name, this.dim, this.table.schema.columns, fresh);
    try {
      if (!this.pk && !fresh) await this.lance.deleteAfter(this.position.offset);
      const stats = await this.lance.indexStats().catch(() => undefined);
      this.indexMetric = stats?.metric as Metric | undefined;
      if (fresh) await this.savePosition();

      const buffered: Commit[] = [];
      let live = false;
      this.unsubscribe = this.table.subscribe((c) => {
        if (live) this.onCommit(c);
        else buffered.push(c);
      });
      this.applied = this.position.offset;
      for await (const b of this.table.scanBatches({ fromOffset: this.applied + 1 })) this.onCommit(b);
      for (const c of buffered) this.onCommit(c);
      live = true;
    } catch (e) {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
      this.active = new Segment();
      this.applied = -1;
      await this.lance.close().catch(() => undefined);
      throw e;
    }
    if (this.closed) return; // close() came during the start: it unsubscribes and closes the dataset once this ends
    this.timer = setInterval(() => this.schedule(), this.opts.flushMs);
    this.timer.unref();
  }

  /** Applies a commit's records not applied yet (synchronous: runs before the write is acknowledged). */
  private onCommit(c: Pick<Commit, 'firstOffset' | 'commitTime' | 'changes' | 'rows'>): void {
    for (let i = 0; i < c.rows.length; i++) {
      const offset = c.firstOffset + i;
      if (offset <= this.applied) continue;
      this.applier.apply(this.active, offset, c.changes[i], c.commitTime, c.rows[i]);
      this.applied = offset;
    }
  }

  /** The segments a search reads, newest first. Read them before awaiting anything. */
  segments(): Segment[] {
    return [this.active, ...[...this.sealed].reverse()];
  }

  /** Runs `fn` after everything queued on the background chain. */
  private enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn);
    this.chain = next.catch((e) => {
      if (!this.closed) this.logger.warn({ column: this.name, err: String(e) }, 'vector maintenance failed; will retry');
    });
    return next;
  }

  private scheduled = false;
  /** Queues a flush (and index upkeep) unless one is queued already. */
  schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    void this.enqueue(async () => {
      this.scheduled = false;
      await this.flush();
      await this.upkeep();
    }).catch(() => undefined);
  }

  /** Moves everything in memory into Lance; resolves once it is there. */
  async flushNow(): Promise<void> {
    await this.ready;
    await this.enqueue(() => this.flush());
  }

  /** flushNow, then the index upkeep a flush triggers (training it once there are enough rows); for tests and benchmarks. */
  async settle(): Promise<void> {
    await this.ready;
    await this.enqueue(async () => {
      await this.flush();
      await this.upkeep();
    });
  }

  private async flush(): Promise<void> {
    if (this.active.lastOffset > this.position.offset || this.active.size > 0) {
      this.sealed.push(this.active);
      this.active = new Segment();
    }
    while (this.sealed.length > 0) {
      const seg = this.sealed[0];
      await this.write(seg);
      this.sealed.shift();
    }
  }

  private async write(seg: Segment): Promise<void> {
    // A write that failed may have landed in Lance before it failed (a commit whose call still failed, a failing
    // version() or position save, a LanceDB thread's death): the segment is written again. The handle first reads
    // Lance's latest version: after a commit whose call failed it may not have seen it, and a delete or merge-insert
    // through it would miss that commit's rows and leave them twice. Then a log table drops rows beyond the position,
    // as at start (pk tables: merge-insert and delete are idempotent). Only after a failure: no cost otherwise.
    if (this.unsure) {
      await this.lance.latest();
      if (!this.pk) await this.lance.deleteAfter(this.position.offset);
    }
    this.unsure = true;
    const schema = this.table.schema;
    await this.lance.addMissingColumns(schema.columns);
    const rows: StoredRow[] = [];
    const deletes: string[] = [];
    const filterCols = filterColumns(schema.columns);
    for (const e of seg.entries.values()) {
      if (e.row === null) deletes.push(e.key);
      else rows.push(this.stored(e, filterCols));
    }
    if (this.pk) {
      await this.lance.upsert(rows);
      await this.lance.deleteKeys(deletes);
    } else await this.lance.append(rows);
    if (seg.lastOffset > this.position.offset) {
      const version = await this.lance.version();
      // The position changes only once saved: until then a retry drops everything after the old one.
      const next: Position = { ...this.position, offset: seg.lastOffset, versions: withMark(this.position.versions, { version, offset: seg.lastOffset, commitTime: seg.lastCommit }) };
      await writeJsonAtomic(this.positionPath, next);
      this.position = next;
    }
    this.unsure = false;
  }

  private stored(e: HotEntry, cols: { name: string }[]): StoredRow {
    const schema = this.table.schema;
    const json = schema.rowToJson(e.row!);
    delete json[this.column];
    const values: Record<string, unknown> = {};
    for (const c of cols) values[c.name] = e.row![c.name] ?? null;
    return { key: e.key, offset: e.offset, commitTime: e.commitTime, rowJson: JSON.stringify(json), vector: vectorOf(e, this.column), values };
  }

  private savePosition(): Promise<void> {
    return writeJsonAtomic(this.positionPath, this.position);
  }

  /**
   * Trains the index once the dataset has enough rows and again when it has
   * doubled since; in between, compaction adds new rows to the index and
   * merges small fragments (every 10 flushes, or when many rows are not
   * indexed), and removes versions older than keepVersionsMs.
   */
  private async upkeep(): Promise<void> {
    this.flushes++;
    const rows = await this.lance.countRows();
    try {
      await this.maintainIndex(rows);
    } finally {
      this.coverage = { lance: rows, indexed: Math.min(rows, (await this.lance.indexStats().catch(() => undefined))?.indexed ?? 0) };
    }
  }

  private async maintainIndex(rows: number): Promise<void> {
    const p = this.position;
    if (rows >= this.opts.indexMinRows && (p.trainedRows === 0 || rows >= 2 * p.trainedRows || this.indexMetric !== this.metric)) {
      const started = performance.now();
      await this.lance.ensureKeyIndex().catch(() => undefined);
      await this.lance.buildIndex(this.metric, this.opts.index.kind, rows);
      this.indexMetric = this.metric;
      p.trainedRows = rows;
      await this.savePosition();
      this.logger.info({ column: this.name, rows, ms: Math.round(performance.now() - started) }, 'vector index trained');
      return;
    }
    const stats = p.trainedRows ? await this.lance.indexStats() : undefined;
    if (this.flushes % 10 === 0 || (stats && stats.unindexed > Math.max(5000, stats.indexed / 10))) {
      await this.lance.optimize(new Date(this.opts.now() - this.opts.keepVersionsMs));
      const kept = new Set(await this.lance.versions());
      const before = p.versions.length;
      p.versions = p.versions.filter((m) => kept.has(m.version));
      if (p.versions.length !== before) await this.savePosition();
    }
  }

  /** A handle on Lance version `version` (kept for the next asOf searches; the oldest of five goes). */
  tableAt(version: number): Promise<VersionHandle> {
    let h = this.versionHandles.get(version);
    if (!h) {
      h = this.lance.at(version);
      h.catch(() => this.versionHandles.delete(version));
      this.versionHandles.set(version, h);
      if (this.versionHandles.size > 4) {
        const [oldest, p] = this.versionHandles.entries().next().value!;
        this.versionHandles.delete(oldest);
        void p.then((t) => this.lance.closeVersion(t), () => undefined).catch(() => undefined);
      }
    }
    return h;
  }

  async close(): Promise<void> {
    this.closed = true;
    // A start under way finishes first: it may subscribe and open the dataset, which this then undoes.
    await this.opening.catch(() => undefined);
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    await this.chain.catch(() => undefined);
    for (const h of this.versionHandles.values()) await h.then((t) => this.lance.closeVersion(t), () => undefined).catch(() => undefined);
    await this.lance?.close().catch(() => undefined);
  }

  /** Forgets the state on disk (the next start rebuilds it). */
  async drop(): Promise<void> {
    await this.close();
    await rm(this.positionPath, { force: true });
  }
}
