/**
 * The background tiering task: copies each table's records older than
 * ASOF_TIER_AFTER into the cold tier, then deletes sealed hot segments whose
 * records are all tiered and older than ASOF_HOT_RETENTION.
 *
 * Records are copied in steps of a whole Lance fragment (STEP_RECORDS) where
 * the load allows (a step waits up to STEP_WAIT_MS past ASOF_TIER_AFTER to
 * fill), because each Lance commit has a fixed cost, and a smaller fragment is
 * written a second time by Lance's compaction.
 *
 * One writer per table: a single loop visits the tables one after another,
 * so no two steps of one table ever overlap. Where the cold tier ends is read
 * from the cold tier itself, so a crash at any point resumes without loss or
 * duplicate. A failing step is logged and retried after a backoff (RETRY_MS).
 */
import type { Logger } from '../logger.js';
import type { Table } from './table.js';

export interface TieringOptions {
  /** Records committed this long ago (ms) or longer are tiered. */
  tierAfterMs: number;
  /** Tiered records stay in the hot log this long (ms) after their commit. */
  hotRetentionMs: number;
  /** Clock, epoch ms (the one commit times come from). */
  now: () => number;
  /** Records that make a step full (STEP_RECORDS unless set: for tests). */
  stepRecords?: number;
  /** A failing table's first and longest wait before it is tried again, ms (RETRY_MS unless set: for tests). */
  retryMs?: { first: number; max: number };
  logger: Logger;
}

/**
 * A tiering step is full at this many records: Lance's fragment size
 * (`target_rows_per_fragment` of its compaction and `max_rows_per_file` of its
 * writes, both 1,048,576), so a full step's fragment is never rewritten by the
 * compaction `optimize` runs (lance-tier.ts). A fragment of fewer rows is, with
 * its small neighbours: LanceDB 0.31, 100k-row appends of bench:ingest's
 * 5-column records (tiered layout) plus the offset and key indexes, in
 * process: `add` 0.42 CPU-ms per 1,000 records, `optimize` every 32 appends
 * 1.00 (0.62 of it compaction, the same every 64); 800k-row appends, compaction
 * alone 0.91; 1.1M-row appends 0.001 (session 14, loaded machine).
 */
const STEP_RECORDS = 1 << 20;
/**
 * Most frame bytes one tiering step commits, whatever its records: it bounds
 * the step's memory (the frames, and the worker's record batch of about twice
 * their size). 1,048,576 records of bench:ingest's 8 columns are 55 MiB of
 * frames, of its 5 columns 42 MiB; wider records make smaller steps, and
 * compaction then rewrites them once.
 */
const STEP_BYTES = 64 << 20;
/**
 * How long (ms) past ASOF_TIER_AFTER a record may wait for its step to fill;
 * at most half of ASOF_TIER_AFTER (so 0s tiers at once). A Lance commit costs
 * about 10 CPU-ms whatever its size; 5 s lets a table taking 210k records/s
 * or more fill whole fragments (2 s needed 525k/s).
 */
const STEP_WAIT_MS = 5000;
/** Between rounds when a round found nothing to do, ms. */
const IDLE_MS = 200;
/**
 * A table whose step failed is skipped until this long has passed, doubling
 * with each failure in a row up to `max`, and tried every round again after
 * a success. Retried every round (10 ms apart at ASOF_TIER_AFTER=0s), a
 * failing table logged ~80 warnings a second.
 */
const RETRY_MS = { first: 1000, max: 30_000 };

export interface TieringStats {
  /** Records copied to the cold tier by this process. */
  records: number;
  /** Cold-tier commits (steps that copied anything). */
  steps: number;
  /** Rounds finished (each visits every table once). */
  rounds: number;
  /** Time spent in cold-tier commits, ms. */
  ms: number;
  /** Segments deleted. */
  segmentsDeleted: number;
  failures: number;
}

export class Tiering {
  private stopped = false;
  private running?: Promise<void>;
  private wake?: () => void;
  /** Tables whose last step failed: failures in a row, and when (performance.now()) to try again. */
  private readonly failing = new WeakMap<Table, { failures: number; retryAt: number }>();
  readonly stats: TieringStats = { records: 0, steps: 0, rounds: 0, ms: 0, segmentsDeleted: 0, failures: 0 };

  constructor(
    private readonly tables: () => Table[],
    private readonly opts: TieringOptions,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let busy = false;
      for (const t of this.tables()) {
        if (this.stopped) break;
        const failed = this.failing.get(t);
        if (failed && performance.now() < failed.retryAt) continue;
        try {
          busy = (await this.tierTable(t)) || busy;
          this.failing.delete(t);
        } catch (e) {
          this.stats.failures++;
          const failures = (failed?.failures ?? 0) + 1;
          const { first, max } = this.opts.retryMs ?? RETRY_MS;
          const waitMs = Math.min(max, first * 2 ** (failures - 1));
          this.failing.set(t, { failures, retryAt: performance.now() + waitMs });
          this.opts.logger.warn({ table: t.name, err: String(e), failures, retryInMs: waitMs }, 'tiering step failed; retrying later');
        }
      }
      this.stats.rounds++;
      if (!busy && !this.stopped) await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, Math.min(IDLE_MS, Math.max(10, this.opts.tierAfterMs / 4))).unref?.();
      });
    }
  }

  /** One round for one table; true when it did anything (then the next round comes at once). */
  private async tierTable(t: Table): Promise<boolean> {
    const now = this.opts.now();
    const started = performance.now();
    const olderThan = now - this.opts.tierAfterMs;
    const n = await t.tierStep({ olderThan, maxRecords: this.opts.stepRecords ?? STEP_RECORDS, maxBytes: STEP_BYTES, due: olderThan - Math.min(STEP_WAIT_MS, this.opts.tierAfterMs / 2) });
    if (n > 0) {
      this.stats.records += n;
      this.stats.steps++;
      this.stats.ms += performance.now() - started;
    }
    const deleted = await t.dropTieredSegments(now - this.opts.hotRetentionMs);
    this.stats.segmentsDeleted += deleted;
    return n > 0 || deleted > 0;
  }

  /** Stops after the step under way (a cold-tier commit is never cut short by a clean stop). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }
}
