/**
 * The background tiering task: copies each table's records older than
 * ASOF_TIER_AFTER into the cold tier, then deletes sealed hot segments whose
 * records are all tiered and older than ASOF_HOT_RETENTION.
 *
 * One writer per table: a single loop visits the tables one after another,
 * so no two steps of one table ever overlap. Where the cold tier ends is read
 * from the cold tier itself, so a crash at any point resumes without loss or
 * duplicate. A failing step is logged and retried on the next round.
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
  logger: Logger;
}

/** Most frame bytes one tiering step commits to the cold tier. */
const STEP_BYTES = 32 << 20;
/** Between rounds when a round found nothing to do, ms. */
const IDLE_MS = 200;

export interface TieringStats {
  /** Records copied to the cold tier by this process. */
  records: number;
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
  readonly stats: TieringStats = { records: 0, ms: 0, segmentsDeleted: 0, failures: 0 };

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
        try {
          busy = (await this.tierTable(t)) || busy;
        } catch (e) {
          this.stats.failures++;
          this.opts.logger.warn({ table: t.name, err: String(e) }, 'tiering step failed; retrying on the next round');
        }
      }
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
    const n = await t.tierStep(now - this.opts.tierAfterMs, STEP_BYTES);
    if (n > 0) {
      this.stats.records += n;
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
