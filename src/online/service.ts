/**
 * Online serving: the latest feature values of entities, read from the online
 * store and evaluated at t = now with the one evaluator ("known" semantics).
 * REST, gRPC and the Feast-compatible routes all call it.
 *
 * A request is answered in two steps: `plan` resolves the selection (cached
 * per selection until the registry changes), `evaluate` reads the store once
 * per view and evaluates every entity. The embedded store answers
 * synchronously (`evaluateSync`), which the REST fast path uses.
 */
import { AsofError } from '../errors.js';
import type { Token } from '../engine/engine.js';
import type { CompiledColumn } from '../engine/schema.js';
import { formatTimestamp, fromText } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { FeatureViewDef } from '../features/definitions.js';
import type { FeatureStatus, ViewEvaluator } from '../features/evaluator.js';
import type { FeatureRegistry, ResolvedFeature } from '../features/registry.js';
import { namespaceOf, type Materializer } from './materializer.js';
import type { OnlineRead, OnlineStore } from './store.js';

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

export interface OnlineAnswer {
  features: ServedFeature[];
  results: EntityFeatures[];
  /** Epoch ms the values were evaluated at. */
  at: number;
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
}

const PLAN_CACHE_MAX = 1000;

export class OnlineService {
  private readonly plans = new Map<string, Plan>();
  private readonly bySelection = new WeakMap<FeatureSelection, Plan>();

  constructor(
    private readonly registry: FeatureRegistry,
    private readonly store: OnlineStore,
    private readonly materializer: Materializer,
    private readonly now: () => number,
  ) {}

  /** Resolves a selection into features with their types (404/400 on unknown names). */
  resolve(sel: FeatureSelection): ServedFeature[] {
    return this.plan(sel).features;
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

  private buildPlan(sel: FeatureSelection): Plan {
    const revision = this.registry.revision;
    const resolved = this.registry.resolve(sel);
    const groups = new Map<string, ViewGroup>();
    const features = resolved.map((r, pos): ServedFeature => {
      let g = groups.get(r.view);
      if (!g) {
        const def = this.registry.view(r.view);
        const ev = this.registry.evaluator(def);
        groups.set(r.view, (g = { def, ev, ns: namespaceOf(def), entityColumn: ev.schema.byName.get(def.entity)!, positions: [], indexes: [] }));
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

  /** Latest values, objects per entity (gRPC, Feast). Entities are single-column keys; see `evaluate`. */
  async get(entities: unknown[], sel: FeatureSelection): Promise<OnlineAnswer> {
    const e = await this.evaluate(entities, this.plan(sel));
    return { features: e.plan.features, results: toObjects(entities, e), at: e.at };
  }

  /**
   * Evaluates without waiting when the store answers synchronously (embedded);
   * undefined when it cannot (then call `evaluate`).
   */
  evaluateSync(entities: unknown[], plan: Plan): Evaluation | undefined {
    if (!this.store.readSync || plan.revision !== this.registry.revision) return undefined;
    const at = this.now();
    const out = newEvaluation(plan, at, entities.length);
    for (const g of plan.groups) {
      const runner = this.checkRunner(g);
      if (!runner) return undefined;
      const read = this.store.readSync(g.ns, this.keysOf(g, entities));
      this.checkRead(g, read, runner);
      fill(out, g, read, entities.length);
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
        this.checkRunner(g);
        // Bad entity keys are the caller's 400, not a store failure: convert them before the read.
        const keys = this.keysOf(g, entities);
        try {
          return await this.store.read(g.ns, keys);
        } catch (e) {
          throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (${this.store.kind}) is unavailable: ${(e as Error).message}`, { store: this.store.kind, view: g.def.name });
        }
      }),
    );
    for (let i = 0; i < plan.groups.length; i++) {
      const g = plan.groups[i];
      const runner = this.materializer.runner(g.ns);
      if (!runner && reads[i].watermark === null && !retried && (await this.registry.refresh().catch(() => false))) {
        // A replica found no namespace: the primary may have redefined the view. Try once with fresh definitions.
        return this.evaluate(entities, plan, true);
      }
      this.checkRead(g, reads[i], runner);
      fill(out, g, reads[i], entities.length);
    }
    return out;
  }

  /** 503 while the view's runner is failing or rebuilding. Returns the runner, or null for views this process does not materialize. */
  private checkRunner(g: ViewGroup): ReturnType<Materializer['runner']> | null {
    const runner = this.materializer.runner(g.ns);
    if (runner?.failure) {
      throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `feature view "${g.def.name}" is not available from the online store (${this.store.kind}): ${runner.failure.message}`, { store: this.store.kind, view: g.def.name });
    }
    return runner ?? null;
  }

  /** A read whose watermark is behind what this process wrote means the store lost data: 503, and the runner rebuilds. */
  private checkRead(g: ViewGroup, read: OnlineRead, runner: ReturnType<Materializer['runner']> | null): void {
    if (runner) {
      if (read.watermark === null || read.watermark < runner.applied) {
        runner.check();
        throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (${this.store.kind}) lost the state of feature view "${g.def.name}"; it is being rebuilt from the changelog`, { store: this.store.kind, view: g.def.name });
      }
    } else if (read.watermark === null) {
      throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (${this.store.kind}) holds no state for feature view "${g.def.name}" (not materialized yet, or being rebuilt by the primary)`, { store: this.store.kind, view: g.def.name });
    }
  }

  private keysOf(g: ViewGroup, entities: unknown[]): string[] {
    const keys = new Array<string>(entities.length);
    for (let i = 0; i < entities.length; i++) keys[i] = entityKey(g.entityColumn, entities[i], i);
    return keys;
  }
}

const countGiven = (sel: FeatureSelection): number => (sel.features?.length ? 1 : 0) + (sel.view ? 1 : 0) + (sel.service ? 1 : 0);

function newEvaluation(plan: Plan, at: number, entities: number): Evaluation {
  const n = entities * plan.features.length;
  return { plan, at, values: new Array(n), statuses: new Array(n), eventTimes: new Array(n), token: {} };
}

function fill(out: Evaluation, g: ViewGroup, read: OnlineRead, entities: number): void {
  const nf = out.plan.features.length;
  const source = g.def.source;
  // Several views over one table read it at possibly different positions; the token names the oldest.
  const w = read.watermark ?? -1;
  out.token[source] = out.token[source] === undefined ? w : Math.min(out.token[source], w);
  for (let e = 0; e < entities; e++) {
    const r = g.ev.evaluate(read.states[e], out.at);
    const base = e * nf;
    for (let k = 0; k < g.positions.length; k++) {
      const idx = g.indexes[k];
      const at = base + g.positions[k];
      out.values[at] = r.values[idx];
      out.statuses[at] = r.statuses[idx];
      out.eventTimes[at] = r.eventTimes[idx];
    }
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

/** An entity as given (JSON value, or text from a URL) → the canonical key string of the view's entity column. */
function entityKey(col: CompiledColumn, entity: unknown, i: number): string {
  const v = typeof entity === 'string' || typeof entity === 'number' ? fromText(col.type, entity) : entity;
  try {
    const c = col.coerce(v);
    return typeof c === 'bigint' ? c.toString() : String(c);
  } catch (e) {
    const reason = (e as { reason?: string }).reason ?? String(e);
    throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${i} (${JSON.stringify(entity)}) is not a valid ${col.name}: ${reason}`, [{ row: i, field: 'entity', reason }]);
  }
}
