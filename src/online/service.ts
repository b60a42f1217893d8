/**
 * Online serving: the latest feature values of entities, evaluated at t = now
 * with the one evaluator ("known" semantics). REST, gRPC, the Feast-compatible
 * routes and the services built on lookups all call it. Its parts:
 * - plan.ts: a selection resolved into view groups, cached per selection;
 * - state-source.ts: each view's states, from the online store or straight
 *   from its pk table, behind one `StateRead`;
 * - lookup-cache.ts: recent evaluations by encoded state or row version;
 * - evaluation.ts: the answer, per entity and view.
 *
 * A request is `plan`, then `evaluate`, which reads each view's states once
 * and fills every entity in one loop, from the cache or afresh: synchronously
 * when the states are in-process, or at the end of the event-loop turn with
 * the turn's other lookups (`evaluateSoon`, for `GET /features/{entity}`).
 */
import { AsofError } from '../errors.js';
import type { FeatureRegistry, FeatureSelection } from '../features/registry.js';
import { PlanEvaluation, entityEval, type EntityEval, type Evaluation } from './evaluation.js';
import { LookupCache } from './lookup-cache.js';
import type { Materializer } from './materializer.js';
import { Planner, keysOf, type Plan, type ViewGroup } from './plan.js';
import { StoreRead, TableRead, type StateRead } from './state-source.js';
import type { OnlineStore } from './store.js';

export type { FeatureSelection };
export type { Plan } from './plan.js';
export type { EntityEval, Evaluation } from './evaluation.js';
export { entityEval, PlanEvaluation, toObjects } from './evaluation.js';

/** Entities one lookup may ask for: every adapter's request is held to it here, not in its own schema. */
export const MAX_LOOKUP_ENTITIES = 10_000;

export class OnlineService {
  /** Recent evaluations by encoded state or row version (lookup-cache.ts). */
  readonly cache: LookupCache;
  private readonly planner: Planner;
  /** Lookups waiting for the end of the turn (evaluateSoon). */
  private soon: { entities: unknown[]; plan: Plan; resolve(e: Evaluation | Promise<Evaluation>): void; reject(e: unknown): void }[] = [];

  constructor(
    private readonly registry: FeatureRegistry,
    private readonly store: OnlineStore,
    private readonly materializer: Materializer,
    private readonly now: () => number,
    /** Memory for recent evaluations (LookupCache); 0 turns it off. */
    cacheBytes: number,
  ) {
    this.cache = new LookupCache(cacheBytes);
    // Redefinitions use new namespaces, so cached evaluations could not be hit anyway; drop them rather than let them age out.
    this.planner = new Planner(registry, () => this.cache.clear());
  }

  /**
   * The plan of a selection (404 for unknown views, services or features), cached until the
   * registry changes. On a replica a name not known yet is looked for again after reloading the
   * definitions (a primary may just have defined it). Synchronous whenever the names are known.
   */
  plan(sel: FeatureSelection): Plan | Promise<Plan> {
    try {
      return this.planner.plan(sel);
    } catch (e) {
      if (this.registry.role !== 'replica') throw e;
      return this.registry.withRefresh(() => this.planner.plan(sel));
    }
  }

  /**
   * `evaluate`, with lookups of in-process state gathered per event-loop turn: each waits until
   * the turn's I/O is read (setImmediate), then the turn's lookups are evaluated one after another
   * and their answers go out together. Answering each GET as its request was read cost 70 µs of
   * server CPU against 39 µs this way, and 46 µs for the bare route (bench/RESULTS.md, session 12):
   * the same code and sockets are worked in runs, not interleaved request by request.
   */
  evaluateSoon(entities: unknown[], plan: Plan): Promise<Evaluation> {
    // Lookups that await a store are not held (`read` says which are in-process); their promise is the store's read's, not a wrapper of it.
    if (!this.store.readEncodedSync && plan.groups.some((g) => !this.materializer.runner(g.ns)?.direct)) {
      try {
        return Promise.resolve(this.evaluate(entities, plan));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      if (this.soon.push({ entities, plan, resolve, reject }) === 1) setImmediate(this.flushSoon);
    });
  }

  private readonly flushSoon = (): void => {
    const batch = this.soon;
    this.soon = [];
    for (const q of batch) {
      try {
        q.resolve(this.evaluate(q.entities, q.plan));
      } catch (e) {
        q.reject(e);
      }
    }
  };

  /**
   * Latest values of each entity at t = now: at once when every view's states are in-process
   * (embedded store, or read from the table), else a promise of them. Entities are single-column
   * keys given as JSON values or strings (URL path segments), converted to each view's entity
   * column type; a value that cannot be is a 400, as are no entities or more than
   * MAX_LOOKUP_ENTITIES. A store that is down, or a view being rebuilt, is a 503.
   */
  evaluate(entities: unknown[], plan: Plan, retried = false): Evaluation | Promise<Evaluation> {
    // Checked before any read: a million keys would otherwise hold a lookup slot for as long as they take.
    if (entities.length === 0 || entities.length > MAX_LOOKUP_ENTITIES) {
      throw new AsofError('ASOF_INVALID_ARGUMENT', `a lookup takes 1 to ${MAX_LOOKUP_ENTITIES} entities, got ${entities.length}`, [{ field: 'entities', reason: `${entities.length} entities (1 to ${MAX_LOOKUP_ENTITIES})` }]);
    }
    if (plan.revision !== this.registry.revision) plan = this.planner.plan(plan.selection);
    const at = this.now();
    const reads = new Array<StateRead | Promise<StateRead>>(plan.groups.length);
    let pending = false;
    for (let gi = 0; gi < reads.length; gi++) {
      reads[gi] = this.read(plan.groups[gi], entities);
      pending ||= reads[gi] instanceof Promise;
    }
    if (!pending) return this.fill(plan, at, entities.length, reads as StateRead[]);
    const finish = (done: StateRead[]): Evaluation | Promise<Evaluation> => {
      // A replica found no namespace: the primary may have redefined the view. Try once with fresh definitions.
      const missing = plan.groups.some((g, gi) => done[gi].position === null && !this.materializer.runner(g.ns));
      if (missing && !retried) return this.registry.refresh().then((fresh) => (fresh ? this.evaluate(entities, plan, true) : this.fill(plan, at, entities.length, done)), () => this.fill(plan, at, entities.length, done));
      return this.fill(plan, at, entities.length, done);
    };
    // One view (the usual lookup) waits on its read alone, not through Promise.all: each promise between the store's reply and the answer is a microtask.
    return reads.length === 1 ? (reads[0] as Promise<StateRead>).then((r) => finish([r])) : Promise.all(reads).then(finish);
  }

  /**
   * A view's states: at once when they are in-process (read from its table, or an in-process
   * store), else a read of the store. 503 while the view's runner is failing or rebuilding.
   */
  private read(g: ViewGroup, entities: unknown[]): StateRead | Promise<StateRead> {
    const runner = this.materializer.runner(g.ns);
    if (runner?.failure) throw this.unavailable(g, `feature view "${g.def.name}" is not available from the online store (${this.store.kind}): ${runner.failure.message}`);
    // Bad entity keys are the caller's 400, not a store failure: converted before any read.
    if (runner?.direct) return new TableRead(runner.direct, keysOf(g, entities));
    if (runner && this.store.readEncodedSync) return new StoreRead(this.store.readEncodedSync(g.ns, keysOf(g, entities)));
    return this.store.readEncoded(g.ns, keysOf(g, entities)).then(
      (r) => new StoreRead(r),
      (e: Error) => Promise.reject(this.unavailable(g, `the online store (${this.store.kind}) is unavailable: ${e.message}`)),
    );
  }

  private unavailable(g: ViewGroup, message: string): AsofError {
    return new AsofError('ASOF_BACKEND_UNAVAILABLE', message, { store: this.store.kind, view: g.def.name });
  }

  /**
   * Evaluates every entity of each view's read, reusing cached evaluations. A view's position is
   * checked and its rows read in one synchronous step (a table-served read's position moves with commits).
   */
  private fill(plan: Plan, at: number, entities: number, reads: StateRead[]): Evaluation {
    const out = new PlanEvaluation(plan, at, entities);
    const ng = plan.groups.length;
    for (let gi = 0; gi < ng; gi++) {
      const g = plan.groups[gi];
      const read = reads[gi];
      const position = this.checkRead(g, read.position);
      // Several views over one table may read it at different positions: the token names the oldest.
      const seen = out.token[g.def.source];
      out.token[g.def.source] = seen === undefined ? position : Math.min(seen, position);
      for (let e = 0, i = gi; i < out.entries.length; e++, i += ng) {
        const key = read.cacheKey(e);
        let r: EntityEval | undefined = g.absent;
        if (key !== undefined && (r = this.cache.get(g.ns, key, at)) === undefined) {
          const state = read.state(e, g.ev, at);
          const until = g.ev.stableUntil(state, at);
          r = entityEval(g.ev.evaluate(state, at), at, until);
          // An answer that changes the next millisecond (windows) is not worth keeping; NaN keys never are.
          if (until > at && key === key) r.kept = this.cache.offer(g.ns, key, r);
        }
        out.entries[i] = r;
      }
    }
    return out;
  }

  /** A read whose position is behind what this process wrote means the store lost data: 503, and the runner rebuilds. */
  private checkRead(g: ViewGroup, position: number | null): number {
    const runner = this.materializer.runner(g.ns);
    if (runner && (position === null || position < runner.applied)) {
      runner.check();
      throw this.unavailable(g, `the online store (${this.store.kind}) lost the state of feature view "${g.def.name}"; it is being rebuilt from the changelog`);
    }
    if (position === null) throw this.unavailable(g, `the online store (${this.store.kind}) holds no state for feature view "${g.def.name}" (not materialized yet, or being rebuilt by the primary)`);
    return position;
  }
}
