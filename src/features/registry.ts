/**
 * The feature registry: feature views and services, persisted in
 * `<dataDir>/features.json`, each view checked against its source table and
 * compiled into its evaluator once.
 */
import { join } from 'node:path';
import { AsofError } from '../errors.js';
import type { Engine } from '../engine/engine.js';
import { Mutex, readJson, writeJsonAtomic } from '../util/fs.js';
import { checkFeatureView, parseRef, type FeatureDef, type FeatureServiceDef, type FeatureViewDef } from './definitions.js';
import { ViewEvaluator } from './evaluator.js';

export interface ViewBody {
  source: string;
  entity: string;
  features: FeatureDef[];
  ttl?: string;
}

/** One requested feature, resolved. */
export interface ResolvedFeature {
  /** `view:feature` as requested. */
  ref: string;
  view: string;
  feature: string;
  /** Index of the feature in its view's evaluator. */
  index: number;
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

export class FeatureRegistry {
  private views = new Map<string, FeatureViewDef>();
  private services = new Map<string, FeatureServiceDef>();
  private readonly evaluators = new Map<string, ViewEvaluator>();
  private readonly mutex = new Mutex();
  private activator?: ViewActivator;

  private constructor(
    private readonly path: string,
    private readonly engine: Engine,
    private readonly now: () => number,
  ) {}

  static async open(dataDir: string, engine: Engine, now: () => number): Promise<FeatureRegistry> {
    const r = new FeatureRegistry(join(dataDir, 'features.json'), engine, now);
    const saved = await readJson<{ views: FeatureViewDef[]; services: FeatureServiceDef[] }>(r.path, { views: [], services: [] });
    for (const v of saved.views) r.views.set(v.name, v);
    for (const s of saved.services) r.services.set(s.name, s);
    return r;
  }

  /** Sets the hook that materializes a view before its definition takes effect. */
  onActivate(activator: ViewActivator): void {
    this.activator = activator;
  }

  /**
   * Creates or redefines a view. A new or changed definition is materialized
   * from the existing changelog before it answers; an identical one is a no-op.
   */
  defineView(name: string, body: ViewBody): Promise<{ view: FeatureViewDef; created: boolean; changed: boolean }> {
    return this.mutex.run(async () => {
      const source = this.engine.has(body.source) ? this.engine.table(body.source).schema : undefined;
      checkFeatureView(name, body, source);
      const previous = this.views.get(name);
      const same = previous && JSON.stringify([previous.source, previous.entity, previous.features, previous.ttl ?? null]) === JSON.stringify([body.source, body.entity, body.features, body.ttl ?? null]);
      if (previous && same) return { view: previous, created: false, changed: false };
      const now = this.now();
      const def: FeatureViewDef = {
        name,
        source: body.source,
        entity: body.entity,
        features: body.features.map((f) => ('column' in f ? { name: f.name, column: f.column } : { name: f.name, agg: { fn: f.agg.fn, window: f.agg.window, ...(f.agg.column === undefined ? {} : { column: f.agg.column }) } })),
        ...(body.ttl === undefined ? {} : { ttl: body.ttl }),
        version: (previous?.version ?? 0) + 1,
        createdAt: previous?.createdAt ?? now,
        updatedAt: now,
      };
      await this.activator?.activate(def);
      this.views.set(name, def);
      await this.save();
      if (previous) await this.activator?.retire(previous);
      return { view: def, created: !previous, changed: true };
    });
  }

  defineService(name: string, body: { features: string[] }): Promise<{ service: FeatureServiceDef; created: boolean }> {
    return this.mutex.run(async () => {
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) throw new AsofError('ASOF_INVALID_ARGUMENT', `feature service name "${name}" is not valid`, [{ field: 'name', reason: 'bad name' }]);
      if (body.features.length === 0) throw new AsofError('ASOF_INVALID_DEFINITION', 'a feature service needs at least one feature', [{ field: 'features', reason: 'empty' }]);
      this.resolveRefs(body.features, 'ASOF_INVALID_DEFINITION');
      const previous = this.services.get(name);
      const service: FeatureServiceDef = { name, features: [...body.features], createdAt: previous?.createdAt ?? this.now() };
      this.services.set(name, service);
      await this.save();
      return { service, created: !previous };
    });
  }

  private save(): Promise<void> {
    return writeJsonAtomic(this.path, { views: [...this.views.values()], services: [...this.services.values()] });
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

  /** The compiled evaluator of a view (of the given definition, default the current one). */
  evaluator(view: string | FeatureViewDef): ViewEvaluator {
    const def = typeof view === 'string' ? this.view(view) : view;
    const key = `${def.name}@${def.version}`;
    let ev = this.evaluators.get(key);
    if (!ev || ev.schema !== this.engine.table(def.source).schema) {
      ev = new ViewEvaluator(def, this.engine.table(def.source).schema);
      this.evaluators.set(key, ev);
    }
    return ev;
  }

  /**
   * Resolves a selection (explicit `view:feature` refs, a whole view, or a
   * service) into features, in request order. Unknown names are 404; a
   * malformed reference is 400.
   */
  resolve(sel: { features?: string[]; view?: string; service?: string }): ResolvedFeature[] {
    const given = [sel.features?.length ? 1 : 0, sel.view ? 1 : 0, sel.service ? 1 : 0].reduce((a, b) => a + b, 0);
    if (given !== 1) {
      throw new AsofError('ASOF_INVALID_ARGUMENT', 'name exactly one of features, view or service', [{ field: 'features', reason: 'give exactly one of features, view, service' }]);
    }
    if (sel.view) {
      const v = this.view(sel.view);
      return v.features.map((f, index) => ({ ref: `${v.name}:${f.name}`, view: v.name, feature: f.name, index }));
    }
    return this.resolveRefs(sel.service ? this.service(sel.service).features : sel.features!, 'ASOF_INVALID_ARGUMENT');
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
        throw new AsofError(code === 'ASOF_INVALID_DEFINITION' ? code : 'ASOF_INVALID_ARGUMENT', `feature view "${view}" has no feature "${feature}"`, [{ field: 'features', reason: `unknown feature "${ref}"` }]);
      }
      return { ref, view, feature, index };
    });
  }
}
