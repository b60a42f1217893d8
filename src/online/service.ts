/**
 * Online serving: the latest feature values of entities, read from the online
 * store and evaluated at t = now with the one evaluator ("known" semantics).
 * REST, gRPC and the Feast-compatible routes all call `get`.
 */
import { AsofError } from '../errors.js';
import type { Token } from '../engine/engine.js';
import { formatTimestamp, fromText } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { FeatureStatus, EntityState } from '../features/evaluator.js';
import type { FeatureRegistry, ResolvedFeature } from '../features/registry.js';
import { namespaceOf, type Materializer } from './materializer.js';
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
  /** `view:feature` → JSON value (null unless PRESENT). */
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

export class OnlineService {
  constructor(
    private readonly registry: FeatureRegistry,
    private readonly store: OnlineStore,
    private readonly materializer: Materializer,
    private readonly now: () => number,
  ) {}

  /** Resolves a selection into features with their types (404/400 on unknown names). */
  resolve(sel: FeatureSelection): ServedFeature[] {
    return this.registry.resolve(sel).map((r) => ({ ...r, type: this.registry.evaluator(r.view).features[r.index].type }));
  }

  /**
   * Latest values for each entity. Entities are single-column keys given as
   * JSON values or strings (URL path segments), converted to each view's entity
   * column type; a value that cannot be is a 400.
   */
  async get(entities: unknown[], sel: FeatureSelection): Promise<OnlineAnswer> {
    const features = this.resolve(sel);
    const at = this.now();
    const results: EntityFeatures[] = entities.map((entity) => ({ entity, features: {}, statuses: {}, eventTimes: {}, token: {} }));
    const byView = new Map<string, ServedFeature[]>();
    for (const f of features) {
      let list = byView.get(f.view);
      if (!list) byView.set(f.view, (list = []));
      list.push(f);
    }
    for (const [viewName, wanted] of byView) {
      const def = this.registry.view(viewName);
      const ev = this.registry.evaluator(def);
      const runner = this.materializer.runner(def);
      if (runner?.failure) {
        throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (${this.store.kind}) is unavailable: ${runner.failure.message}`, { store: this.store.kind, view: viewName });
      }
      const keys = entities.map((e, i) => this.entityKey(ev.schema.byName.get(def.entity)!, e, i));
      let packed: (string | undefined)[];
      try {
        packed = await this.store.get(namespaceOf(def), keys);
      } catch (e) {
        throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (${this.store.kind}) is unavailable: ${(e as Error).message}`, { store: this.store.kind });
      }
      const applied = runner?.applied ?? -1;
      for (let i = 0; i < entities.length; i++) {
        const state = packed[i] === undefined ? undefined : (JSON.parse(packed[i]!) as EntityState);
        const r = ev.evaluate(state, at);
        const out = results[i];
        out.token[def.source] = Math.max(out.token[def.source] ?? -1, applied);
        for (const f of wanted) {
          out.features[f.ref] = ev.toJson(f.index, r.values[f.index]);
          out.statuses[f.ref] = r.statuses[f.index];
          const et = r.eventTimes[f.index];
          out.eventTimes[f.ref] = et === null ? null : formatTimestamp(et);
        }
      }
    }
    return { features, results, at };
  }

  private entityKey(col: { name: string; type: ColumnType; coerce: (v: unknown) => unknown }, entity: unknown, i: number): string {
    const v = typeof entity === 'string' || typeof entity === 'number' ? fromText(col.type, entity) : entity;
    try {
      const c = col.coerce(v);
      return typeof c === 'bigint' ? c.toString() : String(c);
    } catch (e) {
      const reason = (e as { reason?: string }).reason ?? String(e);
      throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${i} (${JSON.stringify(entity)}) is not a valid ${col.name}: ${reason}`, [{ row: i, field: 'entity', reason }]);
    }
  }
}
