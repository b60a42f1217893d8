/**
 * The online materializer: keeps every feature view's per-entity state in the
 * online store, record by record, as the source changelog grows.
 *
 * Each view version has one runner with a watermark (the newest source offset
 * applied). A commit is applied straight from memory when it is the next one;
 * otherwise (start-up, backfill, after a store outage) the runner catches up by
 * scanning the changelog from its watermark. The engine awaits the runner
 * before acknowledging a write, so a write is visible to the next read.
 *
 * The changelog is the truth; the store's state is disposable. A runner
 * trusts the store's watermark only when the namespace's lineage matches (same
 * view definition, same source changelog) and the watermark is neither beyond
 * the changelog's end nor behind what the runner itself wrote (the store lost
 * data: FLUSHALL, a restart without persistence). Otherwise it rebuilds the
 * namespace from offset 0; until it is caught up, reads answer 503.
 *
 * With the embedded store, a view over a pk table is not copied at all
 * ("direct"): an entity's state is a function of the table's latest row of
 * that key, which the engine holds (pk-state.ts), so serving evaluates the row.
 * The copy cost more memory than the rows themselves, and such views are ready
 * at once when defined. A shared store (Redis) still gets the copy: replicas read it.
 */
import { createHash } from 'node:crypto';
import { AsofError, isAsofError } from '../errors.js';
import type { Engine } from '../engine/engine.js';
import type { TableDef } from '../engine/schema.js';
import type { Commit, Table } from '../engine/table.js';
import type { FeatureViewDef } from '../features/definitions.js';
import type { EntityState, ViewEvaluator } from '../features/evaluator.js';
import type { FeatureRegistry } from '../features/registry.js';
import type { Logger } from '../logger.js';
import type { OnlineStore } from './store.js';
import { heldElsewhere, type Name, type NameLeases } from './ownership.js';

export const namespaceOf = (def: FeatureViewDef): string => `${def.name}@${def.version}`;

/** The names a primary holds in a shared store to materialize a view (ownership.ts): its source table and its own. */
const namesOf = (def: FeatureViewDef): Name[] => [{ kind: 'table', name: def.source }, { kind: 'view', name: def.name }];

/** Names what a namespace's values are built from: the source changelog (table and creation time) and the view definition. */
function lineageOf(def: FeatureViewDef, source: TableDef): string {
  const h = createHash('sha256').update(JSON.stringify([def.source, def.entity, def.features, def.ttl ?? null])).digest('base64url').slice(0, 16);
  return `${source.name}@${source.createdAt}/${namespaceOf(def)}/${h}`;
}

/**
 * A pk table read directly: the latest row of a key and the version (offset)
 * that wrote it, found once per key (`latestSlot`, valid until the next commit).
 */
export type DirectSource = Pick<Table, 'endOffset' | 'latestSlot' | 'versionAt' | 'recordAt'>;

export interface ViewOnlineStatus {
  store: OnlineStore['kind'];
  status: 'serving' | 'unavailable' | 'replica';
  watermark: number | null;
}

/** What serving needs to know of a view's runner. */
export interface RunnerState {
  /** The newest source offset the store's values reflect. */
  readonly applied: number;
  failure?: Error;
  /** Set for a view read straight from its pk source (nothing in the store). */
  readonly direct?: DirectSource;
  check(): void;
}

/** The runner of a direct view: always caught up, since it reads the table itself. */
class DirectRunner implements RunnerState {
  failure?: Error;
  constructor(readonly direct: DirectSource) {}
  get applied(): number {
    return this.direct.endOffset - 1;
  }
  check(): void {}
  async stop(): Promise<void> {}
}

/** How often each runner checks that the store still holds what it wrote, or retries when it fell behind (store down), ms. */
const CHECK_MS = 500;

class ViewRunner implements RunnerState {
  applied = -1;
  private chain: Promise<void> = Promise.resolve();
  private unsubscribe?: () => void;
  /** A `recover` is queued and has not started: another would only repeat it. */
  private recovering = false;
  private stopped = false;
  /** Set while the namespace is not serving the truth: the store failed, or lost its state and is being rebuilt. */
  failure?: Error;
  private readonly lineage: string;

  constructor(
    readonly def: FeatureViewDef,
    private readonly ns: string,
    private readonly ev: ViewEvaluator,
    private readonly table: Table,
    private readonly store: OnlineStore,
    private readonly logger: Logger,
    private readonly now: () => number,
    /** The store holds no namespace for the view: it may have lost everything (a flush), the definitions' mirror too. */
    private readonly onNoNamespace: () => void,
    /** Rejects while another primary holds the view's names (a failed runner asks before it serves again). */
    private readonly verify: () => Promise<void>,
  ) {
    this.lineage = lineageOf(def, table.schema.def);
  }

  /** Subscribes to the source and catches up. With `tolerant`, a store failure leaves the runner retrying instead of throwing. */
  async start(tolerant: boolean): Promise<void> {
    this.unsubscribe = this.table.subscribe((c) => this.onCommit(c));
    const first = this.enqueue(() => this.recover());
    await (tolerant ? first.catch(() => undefined) : first);
  }

  /** Runs steps one at a time. A failed step marks the runner failing until a `recover` (`check`, on the materializer's timer) succeeds. */
  private enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.stopped) return;
      try {
        await step();
      } catch (e) {
        if (!this.failure) this.logger.warn({ view: this.ns, err: String(e) }, 'materializing failed; retrying from the watermark');
        this.failure = e as Error;
        throw e;
      }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Called by the engine before it acknowledges a commit. Normally the commit
   * is applied before the write is acknowledged (read-your-writes). While the
   * store is failing, the write is acknowledged at once (the changelog is the
   * truth; reads answer 503 meanwhile) and `recover` applies it later.
   */
  private onCommit(c: Commit): Promise<void> {
    if (this.failure) {
      void this.enqueue(() => (this.failure ? Promise.resolve() : this.catchUp())).catch(() => undefined);
      return Promise.resolve();
    }
    return this.enqueue(() => (c.firstOffset === this.applied + 1 ? this.applyCommit(c) : this.catchUp()));
  }

  /** Checks the store still holds what this runner wrote (rebuilding if not) and catches up; retries a failing runner. */
  check(): void {
    if (this.recovering || this.stopped) return;
    this.recovering = true;
    void this.enqueue(() => this.recover()).catch(() => undefined);
  }

  /**
   * Re-reads the namespace's meta, decides whether its state can be trusted
   * (see the header), resets it when not, brings it up to the changelog's
   * end, then clears the failure mark in the same synchronous step as the
   * last check: a commit arriving after it takes the normal path, one before
   * it was caught up here.
   */
  private async recover(): Promise<void> {
    this.recovering = false;
    if (this.failure) await this.verify();
    const meta = await this.store.meta(this.ns);
    if (!meta) this.onNoNamespace();
    const end = this.table.endOffset - 1;
    let why: string | undefined;
    if (!meta) why = this.applied >= 0 ? 'the namespace is gone from the online store' : undefined;
    else if (meta.lineage !== this.lineage) why = `it was built from something else (${meta.lineage})`;
    else if (meta.watermark > end) why = `its watermark ${meta.watermark} is beyond the changelog's end ${end}`;
    else if (meta.watermark < this.applied) why = `its watermark ${meta.watermark} is behind what was written (${this.applied})`;
    if (!meta || why) {
      if (why) {
        this.logger.warn({ view: this.ns, reason: why }, 'online store state not trusted; rebuilding the view from the changelog');
        this.failure ??= new Error(`the online store lost the state of "${this.ns}"; rebuilding from the changelog`);
      }
      await this.store.reset(this.ns, this.lineage);
      this.applied = -1;
    } else {
      this.applied = meta.watermark;
    }
    do await this.catchUp();
    while (this.applied < this.table.endOffset - 1);
    // Whole again (also after a restart that found a build half done): other readers of the namespace may serve it.
    if (!meta || why || meta.building) await this.store.built?.(this.ns);
    if (this.failure) this.logger.info({ view: this.ns, applied: this.applied }, 'online store serving again; view caught up');
    this.failure = undefined;
  }

  /** Applies everything between the watermark and the table's end. */
  private async catchUp(): Promise<void> {
    for await (const batch of this.table.scanBatches({ fromOffset: this.applied + 1 })) await this.applyCommit(batch);
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
    const read = await this.store.readEncoded(this.ns, keys, true);
    const entries: [string, EntityState | undefined][] = new Array(keys.length);
    for (let k = 0; k < keys.length; k++) {
      // All of an entity's records of the commit at once: one sort and merge into its window, not one insertion per record.
      const recs = byKey.get(keys[k])!.map((i) => ({ offset: c.firstOffset + i, change: c.changes[i], commitTime: c.commitTime, row: c.rows[i] }));
      entries[k] = [keys[k], this.ev.applyAll(read.encoded[k] === undefined ? undefined : read.decode(k), recs, now)];
    }
    const to = c.firstOffset + n - 1;
    await this.store.write(this.ns, entries, this.applied, to);
    this.applied = to;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    await this.chain;
  }
}

export class Materializer {
  private readonly runners = new Map<string, ViewRunner | DirectRunner>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly engine: Engine,
    private readonly registry: FeatureRegistry,
    private readonly store: OnlineStore,
    private readonly logger: Logger,
    private readonly now: () => number,
    /** A primary's names in a shared store (ownership.ts); undefined for the embedded store. */
    private readonly leases?: NameLeases,
  ) {
    registry.onActivate({ activate: (def) => this.activate(def, false), retire: (def) => this.retire(def) });
    leases?.onChange((n, holder) => this.leaseChanged(n, holder));
  }

  /**
   * Another primary took a name: the views it covers stop serving (their writes are refused already) until it is
   * free again; then the definitions are published again, over whatever the other primary mirrored.
   */
  private leaseChanged(n: Name, holder: string | undefined): void {
    if (!holder) return this.registry.mirrorMayBeLost();
    for (const r of this.runners.values()) if (r instanceof ViewRunner && (n.kind === 'view' ? r.def.name : r.def.source) === n.name) r.failure ??= heldElsewhere(n, holder);
  }

  /** The first name another primary took from this one, as lookups of its views answer it (readiness reports it). */
  lostName(): AsofError | undefined {
    return this.leases?.problem();
  }

  /**
   * Starts a runner for every view whose source table this process holds and
   * catches each up with its changelog. A store that is down does not stop
   * the start: those views answer 503 until it is back.
   */
  async start(): Promise<void> {
    for (const def of this.registry.listViews()) if (this.registry.isLocal(def)) await this.activate(def, true);
    this.timer = setInterval(() => {
      for (const r of this.runners.values()) r.check();
    }, CHECK_MS);
    this.timer.unref();
  }

  private async activate(def: FeatureViewDef, tolerant: boolean): Promise<void> {
    const ns = namespaceOf(def);
    if (this.runners.has(ns)) return;
    // A name another primary holds refuses the definition (409) before anything is written.
    await this.leases?.claim(namesOf(def));
    const table = this.engine.table(def.source);
    if (this.store.kind === 'embedded' && table.schema.kind === 'pk') {
      this.runners.set(ns, new DirectRunner(table));
      this.logger.info({ view: ns, applied: table.endOffset - 1 }, 'feature view served from its pk table');
      return;
    }
    const verify = async () => this.leases?.verify(namesOf(def));
    const runner = new ViewRunner(def, ns, this.registry.evaluator(def), table, this.store, this.logger, this.now, () => this.registry.mirrorMayBeLost(), verify);
    this.runners.set(ns, runner);
    const started = performance.now();
    try {
      await runner.start(tolerant);
    } catch (e) {
      this.runners.delete(ns);
      await runner.stop();
      if (isAsofError(e)) throw e;
      throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `could not materialize feature view "${def.name}": the online store (${this.store.kind}) failed: ${(e as Error).message}`, { store: this.store.kind, view: def.name });
    }
    this.logger.info({ view: ns, applied: runner.applied, ms: Math.round(performance.now() - started) }, 'feature view materialized');
  }

  private async retire(def: FeatureViewDef): Promise<void> {
    const ns = namespaceOf(def);
    const runner = this.runners.get(ns);
    this.runners.delete(ns);
    await runner?.stop();
    // Best effort: the new definition is live already; a namespace left behind only costs space.
    await this.store.clear(ns).catch((e) => this.logger.warn({ view: ns, err: String(e) }, 'could not remove the retired namespace from the online store'));
  }

  /** The runner of a view definition (or of a namespace); undefined for views this process does not materialize (replicas). */
  runner(def: FeatureViewDef | string): RunnerState | undefined {
    return this.runners.get(typeof def === 'string' ? def : namespaceOf(def));
  }

  /**
   * How a view is served online: `serving` or `unavailable` (materialized
   * here, its runner failed), `replica` (materialized by the primary that
   * holds the source); the watermark is the newest source offset the online
   * values reflect (a replica reads the primary's from the store), null when
   * unknown. REST, and any other adapter describing views, answer this.
   */
  async onlineStatus(def: FeatureViewDef): Promise<ViewOnlineStatus> {
    const runner = this.runner(def);
    if (runner) return { store: this.store.kind, status: runner.failure ? 'unavailable' : 'serving', watermark: runner.applied };
    const meta = await this.store.meta(namespaceOf(def)).catch(() => undefined);
    return { store: this.store.kind, status: 'replica', watermark: meta?.watermark ?? null };
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.runners.values()].map((r) => r.stop()));
    this.runners.clear();
  }
}
