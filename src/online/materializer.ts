/**
 * The online materializer: keeps every feature view's per-entity state in the
 * online store, record by record, as the source changelog grows.
 *
 * Each view version has one runner with a watermark (the newest source offset
 * applied). A commit is applied straight from memory when it is the next one;
 * otherwise (start-up, backfill, after a store outage) the runner catches up by
 * scanning the changelog from its watermark. The engine awaits the runner
 * before acknowledging a write, so a write is visible to the next read.
 */
import type { Engine } from '../engine/engine.js';
import type { Commit } from '../engine/table.js';
import type { FeatureViewDef } from '../features/definitions.js';
import type { EntityState, ViewEvaluator } from '../features/evaluator.js';
import type { FeatureRegistry } from '../features/registry.js';
import type { Logger } from '../logger.js';
import type { OnlineStore } from './store.js';

export const namespaceOf = (def: FeatureViewDef): string => `${def.name}@${def.version}`;

/** How often a runner that fell behind (store down) retries, ms. */
const RETRY_MS = 500;

class ViewRunner {
  applied = -1;
  private chain: Promise<void> = Promise.resolve();
  private unsubscribe?: () => void;
  private retry?: NodeJS.Timeout;
  stopped = false;
  /** The last failure, while the runner is behind because of it. */
  failure?: Error;

  constructor(
    readonly def: FeatureViewDef,
    readonly ns: string,
    private readonly ev: ViewEvaluator,
    private readonly engine: Engine,
    private readonly store: OnlineStore,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  async start(): Promise<void> {
    this.applied = await this.store.watermark(this.ns);
    this.unsubscribe = this.engine.table(this.def.source).subscribe((c) => this.onCommit(c));
    await this.enqueue(() => this.catchUp());
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.stopped) return;
      try {
        await step();
        if (this.failure) this.logger.info({ view: this.ns }, 'online store reachable again; view caught up');
        this.failure = undefined;
      } catch (e) {
        if (!this.failure) this.logger.warn({ view: this.ns, err: String(e) }, 'materializing failed; retrying from the watermark');
        this.failure = e as Error;
        this.scheduleRetry();
        throw e;
      }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private scheduleRetry(): void {
    if (this.retry || this.stopped) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.enqueue(() => this.catchUp()).catch(() => undefined);
    }, RETRY_MS);
    this.retry.unref();
  }

  private onCommit(c: Commit): Promise<void> {
    return this.enqueue(() => (c.firstOffset === this.applied + 1 ? this.applyCommit(c) : this.catchUp()));
  }

  /** Applies everything between the watermark and the table's end. */
  private async catchUp(): Promise<void> {
    const table = this.engine.table(this.def.source);
    for await (const batch of table.scanBatches({ fromOffset: this.applied + 1 })) await this.applyCommit(batch);
  }

  private async applyCommit(c: Commit): Promise<void> {
    const n = c.rows.length;
    if (n === 0) return;
    const now = this.now();
    const byKey = new Map<string, number[]>();
    for (let i = 0; i < n; i++) {
      const key = this.ev.entityOf(c.rows[i]);
      if (key === null) continue;
      let list = byKey.get(key);
      if (!list) byKey.set(key, (list = []));
      list.push(i);
    }
    const keys = [...byKey.keys()];
    const packed = keys.length ? await this.store.get(this.ns, keys) : [];
    const entries: [string, string | null][] = [];
    keys.forEach((key, k) => {
      let state: EntityState | undefined = packed[k] === undefined ? undefined : (JSON.parse(packed[k]!) as EntityState);
      for (const i of byKey.get(key)!) state = this.ev.apply(state, { offset: c.firstOffset + i, change: c.changes[i], commitTime: c.commitTime, row: c.rows[i] }, now);
      entries.push([key, state === undefined ? null : JSON.stringify(state)]);
    });
    await this.store.write(this.ns, entries, c.firstOffset + n - 1);
    this.applied = c.firstOffset + n - 1;
  }

  /** Resolves once everything queued so far is applied (or has failed). */
  settled(): Promise<void> {
    return this.chain;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.retry) clearTimeout(this.retry);
    await this.chain;
  }
}

export class Materializer {
  private readonly runners = new Map<string, ViewRunner>();

  constructor(
    private readonly engine: Engine,
    private readonly registry: FeatureRegistry,
    private readonly store: OnlineStore,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    registry.onActivate({ activate: (def) => this.activate(def), retire: (def) => this.retire(def) });
  }

  /** Starts a runner for every defined view and catches each up with its changelog. */
  async start(): Promise<void> {
    for (const def of this.registry.listViews()) await this.activate(def);
  }

  private async activate(def: FeatureViewDef): Promise<void> {
    const ns = namespaceOf(def);
    if (this.runners.has(ns)) return;
    const runner = new ViewRunner(def, ns, this.registry.evaluator(def), this.engine, this.store, this.logger, this.now);
    this.runners.set(ns, runner);
    const started = performance.now();
    try {
      await runner.start();
    } catch (e) {
      this.runners.delete(ns);
      await runner.stop();
      throw e;
    }
    this.logger.info({ view: ns, applied: runner.applied, ms: Math.round(performance.now() - started) }, 'feature view materialized');
  }

  private async retire(def: FeatureViewDef): Promise<void> {
    const ns = namespaceOf(def);
    const runner = this.runners.get(ns);
    this.runners.delete(ns);
    await runner?.stop();
    await this.store.clear(ns);
  }

  /** The runner of a view's current definition. */
  runner(def: FeatureViewDef): { applied: number; failure?: Error } | undefined {
    return this.runners.get(namespaceOf(def));
  }

  async close(): Promise<void> {
    await Promise.all([...this.runners.values()].map((r) => r.stop()));
    this.runners.clear();
  }
}
