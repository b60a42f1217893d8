/**
 * Online serving: the latest feature values of entities, read from the online
 * store and evaluated at t = now with the one evaluator ("known" semantics).
 * REST, gRPC and the Feast-compatible routes all call it.
 *
 * A request is answered in two steps: `plan` resolves the selection (cached
 * per selection until the registry changes), `evaluate` reads the store once
 * per view and evaluates every entity. The embedded store answers
 * synchronously (`evaluateSync`), which the REST fast path uses.
 *
 * Serving reads states encoded, as the store holds them, and keeps recent
 * evaluations by their encoding, or for a view read straight from its pk
 * table by the row's version (`LookupCache`): an entity not written since
 * its last lookup skips decoding and evaluating, for as long as the
 * evaluator says the answer holds (`stableUntil`: ttl expiry, a future
 * version becoming visible; never across a millisecond for windows). A write
 * changes the encoding (or the version), so nothing needs invalidating.
 */
import { AsofError } from '../errors.js';
import type { Token } from '../engine/engine.js';
import type { CompiledColumn } from '../engine/schema.js';
import { formatTimestamp, fromText } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { FeatureViewDef } from '../features/definitions.js';
import type { EntityState, Evaluated, FeatureStatus, ViewEvaluator } from '../features/evaluator.js';
import type { FeatureRegistry, ResolvedFeature } from '../features/registry.js';
import { ChangeType } from '../engine/arrow-codec.js';
import { namespaceOf, type DirectSource, type Materializer, type RunnerState } from './materializer.js';
import type { OnlineStore } from './store.js';

export interface FeatureSelection {
  features?: string[];
  view?: string;
  service?: string;
}

/** One feature of a request, with the type of its values (for typed wire formats such as Feast's). */
export interface ServedFeature extends ResolvedFeature {
  type: ColumnType;
}

export interface EntityFeatures {
  /** The entity key as given. */
  entity: unknown;
  /** `view:feature` → JSON value (null unless PRESENT; count aggregates are 0 when nothing is in the window). */
  features: Record<string, unknown>;
  statuses: Record<string, FeatureStatus>;
  /** `view:feature` → RFC 3339 event time of the value, or null. */
  eventTimes: Record<string, string | null>;
  token: Token;
}

/**
 * One view's evaluation of one entity, shared between requests for as long as
 * it holds: never change its values.
 */
export interface EntityEval extends Evaluated {
  /** The evaluation answers reads at times (epoch ms) in [from, until]. */
  readonly from: number;
  readonly until: number;
  /** Whether the lookup cache keeps it: adapters keep what they derive from it (below) only then. */
  kept: boolean;
  /** Set by each cache hit; the cache's eviction clears it (second chance). */
  used: boolean;
  /**
   * The REST renderer's encoded JSON of it, kept here rather than in a side
   * table: one lookup less per entity on the hot path. Lives and dies with it.
   */
  json?: unknown;
}

/** The features of one view within a plan. */
interface ViewGroup {
  def: FeatureViewDef;
  ev: ViewEvaluator;
  ns: string;
  entityColumn: CompiledColumn;
  /** Positions in the plan's feature list, and the matching feature indexes in the view. */
  positions: number[];
  indexes: number[];
  /** The evaluation of an entity the view has no state for (the same at every time). */
  absent: EntityEval;
}

/** A resolved selection, reusable across requests while the registry does not change. */
export interface Plan {
  readonly selection: FeatureSelection;
  readonly features: ServedFeature[];
  readonly groups: ViewGroup[];
  /** The evaluator of each feature, in plan order. */
  readonly evaluators: ViewEvaluator[];
  readonly revision: number;
}

/**
 * Values of a request: entity e's feature f (plan order) is at e * features + f.
 * Values are canonical (timestamps epoch ms); `render` gives their JSON form.
 */
export interface Evaluation {
  plan: Plan;
  /** Epoch ms the values were evaluated at. */
  at: number;
  values: unknown[];
  statuses: FeatureStatus[];
  /** Epoch ms, or null. */
  eventTimes: (number | null)[];
  /** The changelog positions the values reflect (the same for every entity of a request). */
  token: Token;
  /** Entity e's evaluation by the plan's view group g is at e * groups + g. */
  entries: EntityEval[];
}

const PLAN_CACHE_MAX = 1000;

/**
 * What an evaluation is cached by within its namespace: the encoded state
 * (stored views), or the version of the source row (direct views).
 */
type CacheKey = string | number;

/** One admitted evaluation, in the cache's eviction order. */
interface CacheSlot {
  map: Map<CacheKey, EntityEval>;
  key: CacheKey;
  ev: EntityEval;
  bytes: number;
}

/**
 * Recent evaluations by (namespace, CacheKey), within a memory budget,
 * evicted by CLOCK (second chance): a hit only marks its evaluation used;
 * when the cache is over budget, the oldest admitted evaluations go unless
 * marked, and marked ones lose the mark and go to the back of the line.
 * A hit costs one map lookup and no moves, and a working set up to the whole
 * budget stays put. (Two generations, the scheme before, held a working set
 * of half the budget at best, and moved every other hit between maps.)
 *
 * An evaluation is admitted on the second miss of its state only (a
 * "doorkeeper" remembers states seen once, in two generations of its own):
 * traffic that touches every entity once in turn, more entities than the
 * budget holds, would otherwise fill the cache with evaluations that are
 * evicted before anyone asks again, and pay for keeping them.
 */
export class LookupCache {
  private spaces = new Map<string, Map<CacheKey, EntityEval>>();
  /** Admitted evaluations, oldest first from `head`; slots whose evaluation was replaced are dropped when reached. */
  private queue: (CacheSlot | undefined)[] = [];
  private head = 0;
  private bytes = 0;
  private seen = new Set<CacheKey>();
  private seenBefore = new Set<CacheKey>();
  /** States the doorkeeper remembers per generation: about as many as the cache holds. */
  private readonly seenMax: number;
  /** Lookups answered from the cache, and evaluated afresh; for /metrics. */
  hits = 0;
  misses = 0;

  /** `budgetBytes` 0 disables the cache. */
  constructor(private readonly budgetBytes: number) {
    this.seenMax = Math.max(1000, Math.floor(budgetBytes / 4096));
  }

  get(ns: string, key: CacheKey, at: number): EntityEval | undefined {
    const hit = this.spaces.get(ns)?.get(key);
    if (hit !== undefined && at >= hit.from && at <= hit.until) {
      hit.used = true;
      this.hits++;
      return hit;
    }
    this.misses++;
    return undefined;
  }

  /** Offers a fresh evaluation of a state that missed; true when the cache keeps it. */
  offer(ns: string, key: CacheKey, ev: EntityEval): boolean {
    if (this.budgetBytes <= 0) return false;
    // Versions of different views over one table are the same numbers; sharing a doorkeeper entry only admits one of them a miss early.
    if (!this.seen.has(key) && !this.seenBefore.has(key)) {
      this.seen.add(key);
      if (this.seen.size >= this.seenMax) {
        this.seenBefore = this.seen;
        this.seen = new Set();
      }
      return false;
    }
    let map = this.spaces.get(ns);
    if (!map) this.spaces.set(ns, (map = new Map()));
    map.set(key, ev);
    // An estimate: the key (an encoding, or a number), the decoded values and (the usual adapter use) their rendered text.
    const bytes = (typeof key === 'string' ? 2 * key.length : 16) + 200 + 160 * ev.values.length;
    this.queue.push({ map, key, ev, bytes });
    this.bytes += bytes;
    if (this.bytes > this.budgetBytes) this.evict();
    return true;
  }

  clear(): void {
    this.spaces = new Map();
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
    this.seen = new Set();
    this.seenBefore = new Set();
  }

  /** Evaluations held (for tests). */
  get size(): number {
    let n = 0;
    for (const m of this.spaces.values()) n += m.size;
    return n;
  }

  /** Brings the cache to 7/8 of its budget, so that eviction runs once per many admissions. */
  private evict(): void {
    const target = (this.budgetBytes * 7) / 8;
    const q = this.queue;
    while (this.bytes > target && this.head < q.length) {
      const slot = q[this.head]!;
      q[this.head++] = undefined;
      if (slot.map.get(slot.key) !== slot.ev) this.bytes -= slot.bytes;
      else if (slot.ev.used) {
        slot.ev.used = false;
        q.push(slot);
      } else {
        slot.map.delete(slot.key);
        this.bytes -= slot.bytes;
      }
    }
    if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head);
      this.head = 0;
    }
  }
}

export class OnlineService {
  private readonly plans = new Map<string, Plan>();
  private readonly bySelection = new WeakMap<FeatureSelection, Plan>();
  /** Recent evaluations by encoded state or row version (see the file comment). */
  readonly cache: LookupCache;
  private cacheRevision = -1;

  constructor(
    private readonly registry: FeatureRegistry,
    private readonly store: OnlineStore,
    private readonly materializer: Materializer,
    private readonly now: () => number,
    /** Memory for recent evaluations (LookupCache); 0 turns it off. */
    cacheBytes = 64 * 1024 * 1024,
  ) {
    this.cache = new LookupCache(cacheBytes);
  }

  /**
   * The plan of a selection, from the cache while the registry is unchanged.
   * Callers that keep their selection objects (the REST route memoizes them
   * per query string) hit the identity cache and skip building the key.
   */
  plan(sel: FeatureSelection): Plan {
    const same = this.bySelection.get(sel);
    if (same && same.revision === this.registry.revision) return same;
    const key = sel.view !== undefined ? `v\0${sel.view}` : sel.service !== undefined ? `s\0${sel.service}` : `f\0${(sel.features ?? []).join('\0')}`;
    const hit = this.plans.get(key);
    if (hit && hit.revision === this.registry.revision && countGiven(sel) === 1) {
      this.bySelection.set(sel, hit);
      return hit;
    }
    const plan = this.buildPlan(sel);
    if (this.plans.size >= PLAN_CACHE_MAX) this.plans.clear();
    this.plans.set(key, plan);
    this.bySelection.set(sel, plan);
    return plan;
  }

  /**
   * `plan`, for every adapter: on a replica a name not known yet is looked
   * for again after reloading the definitions (a primary may just have
   * defined it). Synchronous whenever `plan` succeeds.
   */
  planFresh(sel: FeatureSelection): Plan | Promise<Plan> {
    try {
      return this.plan(sel);
    } catch (e) {
      if (this.registry.role !== 'replica') throw e;
      return this.registry.withRefresh(() => this.plan(sel));
    }
  }

  private buildPlan(sel: FeatureSelection): Plan {
    const revision = this.registry.revision;
    // Redefinitions use new namespaces, so cached evaluations could not be hit anyway; drop them rather than let them age out.
    if (revision !== this.cacheRevision) {
      this.cache.clear();
      this.cacheRevision = revision;
    }
    const resolved = this.registry.resolve(sel);
    const groups = new Map<string, ViewGroup>();
    const features = resolved.map((r, pos): ServedFeature => {
      let g = groups.get(r.view);
      if (!g) {
        const def = this.registry.view(r.view);
        const ev = this.registry.evaluator(def);
        const absent = entityEval(ev.evaluate(undefined, 0), -Infinity, Infinity);
        absent.kept = true;
        groups.set(r.view, (g = { def, ev, ns: namespaceOf(def), entityColumn: ev.schema.byName.get(def.entity)!, positions: [], indexes: [], absent }));
      }
      g.positions.push(pos);
      g.indexes.push(r.index);
      return { ...r, type: g.ev.features[r.index].type };
    });
    return { selection: sel, features, groups: [...groups.values()], evaluators: features.map((f) => groups.get(f.view)!.ev), revision };
  }

  /** Plans again when the registry has changed since `plan` was made (replicas refresh definitions). */
  private current(plan: Plan): Plan {
    return plan.revision === this.registry.revision ? plan : this.plan(plan.selection);
  }

  /**
   * Evaluates without waiting when the store answers synchronously (embedded);
   * undefined when it cannot (then call `evaluate`).
   */
  evaluateSync(entities: unknown[], plan: Plan): Evaluation | undefined {
    if (plan.revision !== this.registry.revision) return undefined;
    const at = this.now();
    const out = newEvaluation(plan, at, entities.length);
    for (let gi = 0; gi < plan.groups.length; gi++) {
      const g = plan.groups[gi];
      const runner = this.checkRunner(g);
      if (!runner) return undefined;
      if (runner.direct) {
        this.fillDirect(out, gi, this.keysOf(g, entities), runner.direct);
        continue;
      }
      if (!this.store.readEncodedSync) return undefined;
      const read = this.store.readEncodedSync(g.ns, this.keysOf(g, entities));
      this.checkRead(g, read.watermark, runner);
      this.fill(out, gi, read.encoded, read.watermark);
    }
    return out;
  }

  /**
   * Latest values of each entity at t = now. Entities are single-column keys
   * given as JSON values or strings (URL path segments), converted to each
   * view's entity column type; a value that cannot be is a 400. A store that
   * is down, or a view being rebuilt, is a 503.
   */
  async evaluate(entities: unknown[], plan: Plan, retried = false): Promise<Evaluation> {
    plan = this.current(plan);
    const at = this.now();
    const out = newEvaluation(plan, at, entities.length);
    const reads = await Promise.all(
      plan.groups.map(async (g) => {
        const runner = this.checkRunner(g);
        // Bad entity keys are the caller's 400, not a store failure: convert them before the read.
        const keys = this.keysOf(g, entities);
        if (runner?.direct) return { direct: runner.direct, keys };
        try {
          return await this.store.readEncoded(g.ns, keys);
        } catch (e) {
          throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (${this.store.kind}) is unavailable: ${(e as Error).message}`, { store: this.store.kind, view: g.def.name });
        }
      }),
    );
    for (let i = 0; i < plan.groups.length; i++) {
      const g = plan.groups[i];
      const runner = this.materializer.runner(g.ns);
      const read = reads[i];
      if ('direct' in read) {
        // Read straight from the pk table, as it is now.
        this.fillDirect(out, i, read.keys, read.direct);
        continue;
      }
      if (!runner && read.watermark === null && !retried && (await this.registry.refresh().catch(() => false))) {
        // A replica found no namespace: the primary may have redefined the view. Try once with fresh definitions.
        return this.evaluate(entities, plan, true);
      }
      this.checkRead(g, read.watermark, runner ?? null);
      this.fill(out, i, read.encoded, read.watermark);
    }
    return out;
  }

  /** Evaluates plan group `gi` for every entity from its encoded states, reusing cached evaluations. */
  private fill(out: Evaluation, gi: number, encoded: (string | undefined)[], watermark: number | null): void {
    const plan = out.plan;
    const g = plan.groups[gi];
    const ng = plan.groups.length;
    const at = out.at;
    noteToken(out, g.def.source, watermark ?? -1);
    for (let e = 0; e < encoded.length; e++) {
      const enc = encoded[e];
      let r: EntityEval | undefined = enc === undefined ? g.absent : this.cache.get(g.ns, enc, at);
      if (r === undefined) {
        const state: EntityState = this.store.decode(enc!);
        const until = g.ev.stableUntil(state, at);
        r = entityEval(g.ev.evaluate(state, at), at, until);
        // An answer that changes the next millisecond (windows) is not worth keeping.
        if (until > at) r.kept = this.cache.offer(g.ns, enc!, r);
      }
      out.entries[e * ng + gi] = r;
    }
  }

  /**
   * Evaluates plan group `gi` for every entity from its pk source's latest
   * rows (a direct view, see materializer.ts). A row's version (the offset
   * that wrote it) keys the cached evaluations, as the encoding does for
   * stored states. The state is built by the evaluator's own `apply`, from
   * the record that wrote the row: what the materializer would have stored.
   */
  private fillDirect(out: Evaluation, gi: number, keys: string[], src: DirectSource): void {
    const g = out.plan.groups[gi];
    const ng = out.plan.groups.length;
    const at = out.at;
    noteToken(out, g.def.source, src.endOffset - 1);
    for (let e = 0; e < keys.length; e++) {
      const version = src.versionOf(keys[e]);
      let r: EntityEval | undefined = version < 0 ? g.absent : this.cache.get(g.ns, version, at);
      if (r === undefined) {
        const rec = src.latestRecord(keys[e])!;
        const state = g.ev.apply(undefined, { offset: rec.offset, change: ChangeType.INSERT, commitTime: rec.commitTime, row: rec.row }, at)!;
        const until = g.ev.stableUntil(state, at);
        r = entityEval(g.ev.evaluate(state, at), at, until);
        // A row without a known version (NaN: not possible after a load, which sets them all) could not be told from others: never cached.
        if (until > at && version === version) r.kept = this.cache.offer(g.ns, version, r);
      }
      out.entries[e * ng + gi] = r;
    }
  }

  /** 503 while the view's runner is failing or rebuilding. Returns the runner, or null for views this process does not materialize. */
  private checkRunner(g: ViewGroup): RunnerState | null {
    const runner = this.materializer.runner(g.ns);
    if (runner?.failure) {
      throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `feature view "${g.def.name}" is not available from the online store (${this.store.kind}): ${runner.failure.message}`, { store: this.store.kind, view: g.def.name });
    }
    return runner ?? null;
  }

  /** A read whose watermark is behind what this process wrote means the store lost data: 503, and the runner rebuilds. */
  private checkRead(g: ViewGroup, watermark: number | null, runner: RunnerState | null): void {
    if (runner) {
      if (watermark === null || watermark < runner.applied) {
        runner.check();
        throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (${this.store.kind}) lost the state of feature view "${g.def.name}"; it is being rebuilt from the changelog`, { store: this.store.kind, view: g.def.name });
      }
    } else if (watermark === null) {
      throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (${this.store.kind}) holds no state for feature view "${g.def.name}" (not materialized yet, or being rebuilt by the primary)`, { store: this.store.kind, view: g.def.name });
    }
  }

  private keysOf(g: ViewGroup, entities: unknown[]): string[] {
    const keys = new Array<string>(entities.length);
    for (let i = 0; i < entities.length; i++) keys[i] = entityKey(g.entityColumn, entities[i], i);
    return keys;
  }
}

/** Several views over one table read it at possibly different positions; the token names the oldest. */
function noteToken(out: Evaluation, source: string, position: number): void {
  const seen = out.token[source];
  out.token[source] = seen === undefined ? position : Math.min(seen, position);
}

const countGiven = (sel: FeatureSelection): number => (sel.features?.length ? 1 : 0) + (sel.view ? 1 : 0) + (sel.service ? 1 : 0);

/** Built by one literal so that every EntityEval shares one hidden class. */
function entityEval(r: Evaluated, from: number, until: number): EntityEval {
  return { values: r.values, statuses: r.statuses, eventTimes: r.eventTimes, from, until, kept: false, used: false, json: undefined };
}

function newEvaluation(plan: Plan, at: number, entities: number): Evaluation {
  return new PlanEvaluation(plan, at, entities);
}

/**
 * An Evaluation whose flat arrays are gathered from the entries when first
 * asked for: a renderer that finds an entry's text already made never needs them.
 */
class PlanEvaluation implements Evaluation {
  readonly token: Token = {};
  readonly entries: EntityEval[];
  private flat?: { values: unknown[]; statuses: FeatureStatus[]; eventTimes: (number | null)[] };

  constructor(
    readonly plan: Plan,
    readonly at: number,
    private readonly entities: number,
  ) {
    this.entries = new Array(entities * plan.groups.length);
  }

  get values(): unknown[] {
    return (this.flat ??= this.gather()).values;
  }

  get statuses(): FeatureStatus[] {
    return (this.flat ??= this.gather()).statuses;
  }

  get eventTimes(): (number | null)[] {
    return (this.flat ??= this.gather()).eventTimes;
  }

  private gather(): NonNullable<PlanEvaluation['flat']> {
    const { groups, features } = this.plan;
    const nf = features.length;
    const n = this.entities * nf;
    const out = { values: new Array<unknown>(n), statuses: new Array<FeatureStatus>(n), eventTimes: new Array<number | null>(n) };
    for (let e = 0; e < this.entities; e++) {
      for (let gi = 0; gi < groups.length; gi++) {
        const r = this.entries[e * groups.length + gi];
        const g = groups[gi];
        for (let k = 0; k < g.positions.length; k++) {
          const idx = g.indexes[k];
          const pos = e * nf + g.positions[k];
          out.values[pos] = r.values[idx];
          out.statuses[pos] = r.statuses[idx];
          out.eventTimes[pos] = r.eventTimes[idx];
        }
      }
    }
    return out;
  }
}

/** An evaluation as objects per entity (values in their JSON form). */
export function toObjects(entities: unknown[], e: Evaluation): EntityFeatures[] {
  const nf = e.plan.features.length;
  return entities.map((entity, i) => {
    const out: EntityFeatures = { entity, features: {}, statuses: {}, eventTimes: {}, token: { ...e.token } };
    for (let f = 0; f < nf; f++) {
      const feat = e.plan.features[f];
      const at = i * nf + f;
      out.features[feat.ref] = e.plan.evaluators[f].toJson(feat.index, e.values[at]);
      out.statuses[feat.ref] = e.statuses[at];
      const et = e.eventTimes[at];
      out.eventTimes[feat.ref] = et === null || et === undefined ? null : formatTimestamp(et);
    }
    return out;
  });
}

/** Integer text that is already the canonical key (no sign, zeros or digits beyond what a double holds exactly). */
const CANONICAL_INT = /^(?:0|-?[1-9]\d{0,14})$/;

/** An entity as given (JSON value, or text from a URL) → the canonical key string of the view's entity column. */
function entityKey(col: CompiledColumn, entity: unknown, i: number): string {
  if (typeof entity === 'string') {
    const kind = col.type.kind;
    if (kind === 'string' || (kind === 'int64' && CANONICAL_INT.test(entity)) || (kind === 'int32' && entity.length <= 10 && CANONICAL_INT.test(entity) && Math.abs(Number(entity)) <= 2147483647)) return entity;
  }
  const v = typeof entity === 'string' || typeof entity === 'number' ? fromText(col.type, entity) : entity;
  try {
    const c = col.coerce(v);
    return typeof c === 'bigint' ? c.toString() : String(c);
  } catch (e) {
    const reason = (e as { reason?: string }).reason ?? String(e);
    throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${i} (${JSON.stringify(entity)}) is not a valid ${col.name}: ${reason}`, [{ row: i, field: 'entity', reason }]);
  }
}
