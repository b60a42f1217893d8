/**
 * The feature registry: feature views and services, persisted in
 * `<dataDir>/features.json`, each view checked against its source table and
 * compiled into its evaluator once.
 *
 * With a shared online store (Redis) the registry is also mirrored there, so
 * read replicas can serve views whose source tables they do not hold. A
 * primary owns its definitions and publishes them; a replica only loads
 * what primaries published, and refreshes when the mirror's revision moves.
 */
import { join } from 'node:path';
import { UNRESTRICTED, type Caller } from '../access.js';
import { AsofError } from '../errors.js';
import type { Engine, Role } from '../engine/engine.js';
import { TableSchema, type TableDef } from '../engine/schema.js';
import type { Logger } from '../logger.js';
import { Mutex, readJson, writeJsonAtomic } from '../util/fs.js';
import { checkFeatureView, parseRef, type FeatureDef, type FeatureServiceDef, type FeatureViewDef } from './definitions.js';
import { firstRepeat, formsGiven, type FeatureSelection, type ResolvedFeature } from './selection.js';

export type { FeatureSelection, ResolvedFeature } from './selection.js';
import { ViewEvaluator } from './evaluator.js';

export interface ViewBody {
  source: string;
  entity: string;
  features: FeatureDef[];
  ttl?: string;
}

/**
 * Hooks around a view (re)definition: `activate` runs before the new
 * definition becomes visible (the materializer backfills it), `retire` after,
 * for the definition it replaced.
 */
export interface ViewActivator {
  activate(def: FeatureViewDef): Promise<void>;
  retire(def: FeatureViewDef): Promise<void>;
}

/** Definitions as mirrored for other processes: views, services and the source tables the views read. */
export interface MirroredDefinitions {
  views: FeatureViewDef[];
  services: FeatureServiceDef[];
  tables: TableDef[];
}

/** Where a primary publishes its definitions and replicas read them (implemented over Redis). */
export interface DefinitionMirror {
  /** Adds or replaces the given definitions and moves the revision. */
  publish(defs: MirroredDefinitions): Promise<void>;
  /** A number that changes whenever anything was published; null when the mirror holds nothing (never published, or flushed). */
  revision(): Promise<number | null>;
  load(): Promise<MirroredDefinitions & { revision: number }>;
}

export type { Role };

export interface RegistryOptions {
  /** Default: the engine's role. */
  role?: Role;
  mirror?: DefinitionMirror;
  logger?: Logger;
}

/** Evaluators kept beyond one per view: old versions, and a new one being activated. */
export const OTHER_EVALUATORS = 16;

const REPLICA_REFUSAL = 'this asof is a read replica (ASOF_ROLE=replica); define feature views and services on the primary';

export class FeatureRegistry {
  private views = new Map<string, FeatureViewDef>();
  private services = new Map<string, FeatureServiceDef>();
  /** Source table definitions mirrored by primaries (replicas only). */
  private remoteTables = new Map<string, TableSchema>();
  /** Compiled evaluators by `name@version`, least recently asked for first (see `evaluator`). */
  private readonly evaluators = new Map<string, ViewEvaluator>();
  private readonly mutex = new Mutex();
  private activator?: ViewActivator;
  private mirrorRevision = -1;
  /** A primary whose last publish failed retries on the next `syncMirror`. */
  private mirrorDirty = false;
  private refreshing?: Promise<boolean>;
  private timer?: NodeJS.Timeout;
  /** Moves on every change of what the registry holds; callers cache resolutions against it. */
  revision = 0;
  readonly role: Role;

  private constructor(
    private readonly path: string,
    private readonly engine: Engine,
    private readonly now: () => number,
    private readonly opts: RegistryOptions,
  ) {
    this.role = opts.role ?? engine.role;
  }

  static async open(dataDir: string, engine: Engine, now: () => number, opts: RegistryOptions = {}): Promise<FeatureRegistry> {
    const r = new FeatureRegistry(join(dataDir, 'features.json'), engine, now, opts);
    if (r.role === 'replica') {
      if (!opts.mirror) throw new Error('a read replica needs a shared online store: set REDIS_URL');
      await r.refresh().catch((e) => opts.logger?.warn({ err: String(e) }, 'could not load feature definitions from the shared store yet; retrying'));
      return r;
    }
    const saved = await readJson<{ views: FeatureViewDef[]; services: FeatureServiceDef[] }>(r.path, { views: [], services: [] });
    for (const v of saved.views) r.views.set(v.name, v);
    for (const s of saved.services) r.services.set(s.name, s);
    r.mirrorDirty = !!opts.mirror;
    return r;
  }

  /** Sets the hook that materializes a view before its definition takes effect. */
  onActivate(activator: ViewActivator): void {
    this.activator = activator;
  }

  private refuseOnReplica(): void {
    if (this.role === 'replica') throw new AsofError('ASOF_CONFLICT', REPLICA_REFUSAL, { role: 'replica' });
  }

  /**
   * Creates or redefines a view. A new or changed definition is materialized
   * from the existing changelog before it answers; an identical one is a no-op.
   * A view serves its source's values to every key with the read scope, so its
   * source must be a table `caller` may read (engine.readable: asof's internal
   * tables need the audit scope), else 403. In process (tests, benches) the
   * caller is UNRESTRICTED.
   */
  defineView(name: string, body: ViewBody, caller: Caller = UNRESTRICTED): Promise<{ view: FeatureViewDef; created: boolean; changed: boolean }> {
    return this.mutex.run(async () => {
      this.refuseOnReplica();
      this.engine.requireReadable(body.source, caller);
      const source = this.engine.has(body.source) ? this.engine.table(body.source).schema : undefined;
      checkFeatureView(name, body, source);
      const previous = this.views.get(name);
      const same = previous && JSON.stringify([previous.source, previous.entity, previous.features, previous.ttl ?? null]) === JSON.stringify([body.source, body.entity, canonicalFeatures(body.features), body.ttl ?? null]);
      if (previous && same) return { view: previous, created: false, changed: false };
      const now = this.now();
      const def: FeatureViewDef = {
        name,
        source: body.source,
        entity: body.entity,
        features: canonicalFeatures(body.features),
        ...(body.ttl === undefined ? {} : { ttl: body.ttl }),
        version: (previous?.version ?? 0) + 1,
        createdAt: previous?.createdAt ?? now,
        updatedAt: now,
      };
      await this.activator?.activate(def);
      this.views.set(name, def);
      this.revision++;
      await this.save();
      await this.publish({ views: [def], services: [], tables: [source!.def] });
      if (previous) await this.activator?.retire(previous);
      return { view: def, created: !previous, changed: true };
    });
  }

  defineService(name: string, body: { features: string[] }): Promise<{ service: FeatureServiceDef; created: boolean; changed: boolean }> {
    return this.mutex.run(async () => {
      this.refuseOnReplica();
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) throw new AsofError('ASOF_INVALID_ARGUMENT', `feature service name "${name}" is not valid`, [{ field: 'name', reason: 'must be letters, digits, _; not starting with a digit' }]);
      if (body.features.length === 0) throw new AsofError('ASOF_INVALID_DEFINITION', 'a feature service needs at least one feature', [{ field: 'features', reason: 'empty' }]);
      const dup = firstRepeat(body.features);
      if (dup !== undefined) throw new AsofError('ASOF_INVALID_DEFINITION', `feature "${dup}" is listed twice`, [{ field: 'features', reason: `duplicate "${dup}"` }]);
      this.resolveRefs(body.features, 'ASOF_INVALID_DEFINITION');
      const previous = this.services.get(name);
      if (previous && JSON.stringify(previous.features) === JSON.stringify(body.features)) return { service: previous, created: false, changed: false };
      const service: FeatureServiceDef = { name, features: [...body.features], createdAt: previous?.createdAt ?? this.now() };
      this.services.set(name, service);
      this.revision++;
      await this.save();
      await this.publish({ views: [], services: [service], tables: [] });
      return { service, created: !previous, changed: true };
    });
  }

  private save(): Promise<void> {
    return writeJsonAtomic(this.path, { views: [...this.views.values()], services: [...this.services.values()] });
  }

  /** Publishes to the mirror; a failure is logged and retried by `syncMirror` (the definition is saved locally already). */
  private async publish(defs: MirroredDefinitions): Promise<void> {
    if (!this.opts.mirror) return;
    try {
      await this.opts.mirror.publish(defs);
    } catch (e) {
      this.mirrorDirty = true;
      this.opts.logger?.warn({ err: String(e) }, 'could not mirror feature definitions to the shared store; retrying');
    }
  }

  /**
   * Primary: publishes everything after a failed publish (and once at start).
   * Replica: reloads when the mirror's revision moved. Errors propagate.
   */
  async syncMirror(): Promise<void> {
    if (!this.opts.mirror) return;
    if (this.role === 'replica') {
      await this.refresh();
      return;
    }
    if (!this.mirrorDirty) return;
    const views = [...this.views.values()];
    const tables = [...new Set(views.map((v) => v.source))].filter((t) => this.engine.has(t)).map((t) => this.engine.table(t).schema.def);
    await this.opts.mirror.publish({ views, services: [...this.services.values()], tables });
    this.mirrorDirty = false;
  }

  /**
   * Primary: the shared store may have lost the mirror with everything else (a flushed or replaced Redis, which the
   * materializer finds a view's namespace gone by): `syncMirror` publishes every definition again.
   */
  mirrorMayBeLost(): void {
    if (this.opts.mirror && this.role !== 'replica') this.mirrorDirty = true;
  }

  /** Runs `syncMirror` every `everyMs` until `close`. */
  startMirrorSync(everyMs: number): void {
    if (!this.opts.mirror || this.timer) return;
    const tick = (): void => {
      this.syncMirror()
        .catch(() => undefined)
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, everyMs).unref();
        });
    };
    this.timer = setTimeout(tick, 0).unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Replica: reloads definitions from the mirror when its revision moved
   * (callers use it on a miss: one small GET, concurrent callers share it).
   * Resolves true when something changed.
   */
  refresh(): Promise<boolean> {
    if (this.role !== 'replica' || !this.opts.mirror) return Promise.resolve(false);
    if (this.refreshing) return this.refreshing;
    const mirror = this.opts.mirror;
    this.refreshing = (async () => {
      // Nothing in the mirror (flushed, not yet published again): keep serving the definitions loaded before.
      const rev = await mirror.revision();
      if (rev === null || rev === this.mirrorRevision) return false;
      const loaded = await mirror.load();
      this.views = new Map(loaded.views.map((v) => [v.name, v]));
      this.services = new Map(loaded.services.map((s) => [s.name, s]));
      const tables = new Map<string, TableSchema>();
      for (const t of loaded.tables) {
        const had = this.remoteTables.get(t.name);
        tables.set(t.name, had && JSON.stringify(had.def) === JSON.stringify(t) ? had : new TableSchema(t));
      }
      this.remoteTables = tables;
      this.mirrorRevision = loaded.revision;
      this.revision++;
      return true;
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /**
   * Runs `fn`; on a replica, when it fails for a name not known (404), reloads
   * the definitions once and runs it again: the name may just have been
   * defined on the primary. Every adapter's lookups go through here.
   */
  async withRefresh<T>(fn: () => T): Promise<T> {
    try {
      return fn();
    } catch (e) {
      if (this.role === 'replica' && (e as AsofError).httpStatus === 404 && (await this.refresh().catch(() => false))) return fn();
      throw e;
    }
  }

  /** `view`, also finding a view a primary defined since the last refresh (replicas). */
  findView(name: string): Promise<FeatureViewDef> {
    return this.withRefresh(() => this.view(name));
  }

  /** `service`, also finding a service a primary defined since the last refresh (replicas). */
  findService(name: string): Promise<FeatureServiceDef> {
    return this.withRefresh(() => this.service(name));
  }

  view(name: string): FeatureViewDef {
    const v = this.views.get(name);
    if (!v) throw new AsofError('ASOF_FEATURE_VIEW_NOT_FOUND', `feature view "${name}" does not exist`, { view: name });
    return v;
  }

  listViews(): FeatureViewDef[] {
    return [...this.views.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  service(name: string): FeatureServiceDef {
    const s = this.services.get(name);
    if (!s) throw new AsofError('ASOF_FEATURE_SERVICE_NOT_FOUND', `feature service "${name}" does not exist`, { service: name });
    return s;
  }

  listServices(): FeatureServiceDef[] {
    return [...this.services.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Whether this process holds the view's source table (and so materializes it); false on replicas. */
  isLocal(def: FeatureViewDef): boolean {
    return this.role === 'primary' && this.engine.has(def.source);
  }

  /** The schema of a view's source: the local table's, else the one a primary mirrored. */
  sourceSchema(table: string): TableSchema {
    if (this.role === 'primary' && this.engine.has(table)) return this.engine.table(table).schema;
    const remote = this.remoteTables.get(table);
    // A local table that did not open (engine.ts) throws its own ASOF_TABLE_UNAVAILABLE here.
    if (!remote && this.role === 'primary') this.engine.table(table);
    if (!remote) throw new AsofError('ASOF_TABLE_NOT_FOUND', `table "${table}" does not exist`, { table });
    return remote;
  }

  /**
   * The compiled evaluator of a view (of the given definition, default the current one). Kept for as
   * many definitions as there are views, plus OTHER_EVALUATORS, the least recently asked for going
   * first: a view redefined N times kept N for good. One that went is built again when asked for.
   */
  evaluator(view: string | FeatureViewDef): ViewEvaluator {
    const def = typeof view === 'string' ? this.view(view) : view;
    const key = `${def.name}@${def.version}`;
    const schema = this.sourceSchema(def.source);
    let ev = this.evaluators.get(key);
    this.evaluators.delete(key);
    if (!ev || ev.schema !== schema || ev.view !== def) ev = new ViewEvaluator(def, schema);
    this.evaluators.set(key, ev);
    for (const oldest of this.evaluators.keys()) {
      if (this.evaluators.size <= this.views.size + OTHER_EVALUATORS) break;
      this.evaluators.delete(oldest);
    }
    return ev;
  }

  /** Evaluators the registry holds (tests: bounded however often views are redefined). */
  get cachedEvaluators(): number {
    return this.evaluators.size;
  }

  /**
   * Resolves a selection (explicit `view:feature` refs, a whole view, or a
   * service) into features, in request order. Unknown names are 404; a
   * malformed reference is 400.
   */
  resolve(sel: FeatureSelection): ResolvedFeature[] {
    if (formsGiven(sel) !== 1) {
      throw new AsofError('ASOF_INVALID_ARGUMENT', 'name exactly one of features, view or service', [{ field: 'features', reason: 'give exactly one of features, view, service' }]);
    }
    if (sel.view) {
      const v = this.view(sel.view);
      return v.features.map((f, index) => ({ ref: `${v.name}:${f.name}`, view: v.name, feature: f.name, index }));
    }
    if (sel.service) return this.resolveRefs(this.service(sel.service).features, 'ASOF_INVALID_ARGUMENT');
    // A feature asked for twice is refused, as Feast refuses it: a plan is as large as its list, so repeats would let
    // one request build (and cache) a plan of any size.
    const dup = firstRepeat(sel.features!);
    if (dup !== undefined) throw new AsofError('ASOF_INVALID_ARGUMENT', `feature "${dup}" is listed twice`, [{ field: 'features', reason: `duplicate "${dup}"` }]);
    return this.resolveRefs(sel.features!, 'ASOF_INVALID_ARGUMENT');
  }

  private resolveRefs(refs: string[], code: 'ASOF_INVALID_ARGUMENT' | 'ASOF_INVALID_DEFINITION'): ResolvedFeature[] {
    return refs.map((ref) => {
      const { view, feature } = parseRef(ref);
      const v = this.views.get(view);
      if (!v) {
        if (code === 'ASOF_INVALID_DEFINITION') throw new AsofError(code, `feature "${ref}": no feature view "${view}"`, [{ field: 'features', reason: `unknown view "${view}"` }]);
        throw new AsofError('ASOF_FEATURE_VIEW_NOT_FOUND', `feature view "${view}" does not exist (in "${ref}")`, { view });
      }
      const index = v.features.findIndex((f) => f.name === feature);
      if (index < 0) {
        // An unknown feature of a known view is a missing resource, like an unknown view.
        if (code === 'ASOF_INVALID_DEFINITION') throw new AsofError(code, `feature view "${view}" has no feature "${feature}"`, [{ field: 'features', reason: `unknown feature "${ref}"` }]);
        throw new AsofError('ASOF_NOT_FOUND', `feature view "${view}" has no feature "${feature}" (it has ${v.features.map((f) => f.name).join(', ')})`, { view, feature });
      }
      return { ref, view, feature, index };
    });
  }
}

/** Features in their stored form: only the fields that define them, in a fixed order. */
function canonicalFeatures(features: FeatureDef[]): FeatureDef[] {
  return features.map((f) => ('column' in f ? { name: f.name, column: f.column } : { name: f.name, agg: { fn: f.agg.fn, window: f.agg.window, ...(f.agg.column === undefined ? {} : { column: f.agg.column }) } }));
}
