/**
 * Lookup plans: a selection (`features`, `view` or `service`) resolved
 * against the registry into view groups, kept per selection until the
 * registry changes, and the conversion of entity keys to each view's entity
 * column.
 */
import { AsofError } from '../errors.js';
import { shownJson } from '../engine/coerce.js';
import type { CompiledColumn } from '../engine/schema.js';
import type { ColumnType } from '../engine/types.js';
import type { FeatureViewDef } from '../features/definitions.js';
import { entityKeyText } from '../features/entity-key.js';
import type { ViewEvaluator } from '../features/evaluator.js';
import type { FeatureRegistry } from '../features/registry.js';
import { formsGiven, type FeatureSelection, type ResolvedFeature } from '../features/selection.js';
import { entityEval, type EntityEval } from './evaluation.js';
import { namespaceOf } from './materializer.js';

/** One feature of a request, with the type of its values (for typed wire formats such as Feast's). */
export interface ServedFeature extends ResolvedFeature {
  type: ColumnType;
}

/** The features of one view within a plan. */
export interface ViewGroup {
  def: FeatureViewDef;
  ev: ViewEvaluator;
  /** The view version's online namespace (`view@version`). */
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

/** Plans kept, and features in all of them: a plan's size follows its selection's, which callers choose. */
const PLAN_CACHE_MAX = 1000;
const PLAN_CACHE_FEATURES = 50_000;

/** Plans by selection, built afresh when the registry's revision moves. */
export class Planner {
  private readonly plans = new Map<string, Plan>();
  private planFeatures = 0;
  private readonly bySelection = new WeakMap<FeatureSelection, Plan>();
  private revision = -1;

  constructor(
    private readonly registry: FeatureRegistry,
    /** Called once per new registry revision, before the first plan of it is built. */
    private readonly onRevision: () => void,
  ) {}

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
    if (hit && hit.revision === this.registry.revision && formsGiven(sel) === 1) {
      this.bySelection.set(sel, hit);
      return hit;
    }
    const plan = this.build(sel);
    if (hit) this.planFeatures -= hit.features.length;
    if (this.plans.size >= PLAN_CACHE_MAX || this.planFeatures + plan.features.length > PLAN_CACHE_FEATURES) {
      this.plans.clear();
      this.planFeatures = 0;
    }
    this.plans.set(key, plan);
    this.planFeatures += plan.features.length;
    this.bySelection.set(sel, plan);
    return plan;
  }

  private build(sel: FeatureSelection): Plan {
    const revision = this.registry.revision;
    if (revision !== this.revision) {
      this.onRevision();
      this.revision = revision;
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
}

/**
 * Entities as given (JSON values, or text from a URL) → the canonical key
 * strings of the group's entity column (features/entity-key.ts, the one
 * conversion every reader uses); a key that does not convert, a string with a
 * lone surrogate included, is a 400 naming its position.
 */
export function keysOf(g: ViewGroup, entities: unknown[]): string[] {
  const keys = new Array<string>(entities.length);
  const col = g.entityColumn;
  for (let i = 0; i < entities.length; i++) {
    try {
      keys[i] = entityKeyText(col, entities[i]);
    } catch (e) {
      const reason = (e as { reason?: string }).reason ?? String(e);
      throw new AsofError('ASOF_INVALID_ARGUMENT', `entity ${i} (${shownJson(entities[i])}) is not a valid ${col.name}: ${reason}`, [{ row: i, field: 'entity', reason }]);
    }
  }
  return keys;
}
