/**
 * The background tiering task: copies each table's records older than
 * ASOF_TIER_AFTER into the cold tier, then deletes sealed hot segments whose
 * records are all tiered and older than ASOF_HOT_RETENTION.
 *
 * Records are copied in steps of several MiB where the load allows (a step
 * waits up to STEP_WAIT_MS past ASOF_TIER_AFTER to fill), because each Lance
 * commit has a fixed cost.
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
/**
 * Fewest frame bytes a step commits while none of them is overdue (below).
 * A Lance commit costs about 10 CPU-ms whatever its size (a new fragment, a
 * manifest, index upkeep): appending bench:ingest's 5-column records one
 * 1,000-record frame per commit cost 11-15 CPU-ms per 1,000 records, 64
 * frames (~2.5 MiB) per commit 1.2-1.6 (process CPU, Lance's threads
 * included, session 12). Under a steady load, steps that take whatever
 * became old enough since the last one commit a frame or two each.
 */
const MIN_STEP_BYTES = 4 << 20;
/** How long (ms) past ASOF_TIER_AFTER a record may wait for a step to fill up to MIN_STEP_BYTES; at most a fifth of ASOF_TIER_AFTER (so 0s tiers at once). */
const STEP_WAIT_MS = 2000;
/** Between rounds when a round found nothing to do, ms. */
const IDLE_MS = 200;

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
        try {
          busy = (await this.tierTable(t)) || busy;
        } catch (e) {
          this.stats.failures++;
          this.opts.logger.warn({ table: t.name, err: String(e) }, 'tiering step failed; retrying on the next round');
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
    const n = await t.tierStep({ olderThan, maxBytes: STEP_BYTES, minBytes: MIN_STEP_BYTES, due: olderThan - Math.min(STEP_WAIT_MS, this.opts.tierAfterMs / 5) });
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
