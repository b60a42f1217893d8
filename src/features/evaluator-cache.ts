/**
 * The registry's compiled evaluators: one per view's current definition, kept
 * as long as the view is, and a few of other definitions (an old version a
 * plan resolved before a redefinition, the new version the materializer
 * builds before it becomes current) in a small LRU. Keyed by version alone, a
 * view redefined N times kept N evaluators for good; an old version's is
 * rebuilt when asked for after it fell out (decision replays build their own
 * from the decision's stored definitions: audit/replay.ts).
 */
import type { TableSchema } from '../engine/schema.js';
import type { FeatureViewDef } from './definitions.js';
import { ViewEvaluator } from './evaluator.js';

/** Evaluators of definitions that are not current kept at once (each a few KB of compiled code and closures). */
export const OTHER_EVALUATORS = 16;

const keyOf = (def: FeatureViewDef): string => `${def.name}@${def.version}`;

export class EvaluatorCache {
  /** By view name: the evaluator of the definition that was current when last asked for. */
  private readonly current = new Map<string, ViewEvaluator>();
  /** By `name@version`, least recently used first. */
  private readonly others = new Map<string, ViewEvaluator>();

  constructor(private readonly maxOthers = OTHER_EVALUATORS) {}

  /**
   * The evaluator of `def` over `schema`, built on a miss or when either
   * changed (a definition or a schema object replaced, as a replica's refresh
   * does). `isCurrent`: `def` is the view's definition now.
   */
  get(def: FeatureViewDef, schema: TableSchema, isCurrent: boolean): ViewEvaluator {
    const fits = (ev: ViewEvaluator | undefined): boolean => ev !== undefined && ev.view === def && ev.schema === schema;
    if (isCurrent) {
      const had = this.current.get(def.name);
      if (had && fits(had)) return had;
      // Built while the definition was being activated, before it became current: promoted, not rebuilt.
      const early = this.others.get(keyOf(def));
      this.others.delete(keyOf(def));
      const ev = early && fits(early) ? early : new ViewEvaluator(def, schema);
      this.current.set(def.name, ev);
      if (had && had.view !== def) this.keep(had);
      return ev;
    }
    const key = keyOf(def);
    const had = this.others.get(key);
    const ev = had && fits(had) ? had : new ViewEvaluator(def, schema);
    this.others.delete(key);
    this.keep(ev);
    return ev;
  }

  /** Moves the evaluators of views no longer defined among the others (a replica's refresh can drop views). */
  retain(defined: (name: string) => boolean): void {
    for (const [name, ev] of this.current) {
      if (defined(name)) continue;
      this.current.delete(name);
      this.keep(ev);
    }
  }

  /** Evaluators held, current and others (for tests and metrics). */
  get size(): number {
    return this.current.size + this.others.size;
  }

  private keep(ev: ViewEvaluator): void {
    const key = keyOf(ev.view);
    this.others.delete(key);
    this.others.set(key, ev);
    for (const oldest of this.others.keys()) {
      if (this.others.size <= this.maxOthers) break;
      this.others.delete(oldest);
    }
  }
}
