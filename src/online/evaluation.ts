/**
 * What a lookup produces: each entity's evaluation by each view of the plan
 * (shared with the lookup cache), gathered into flat per-feature arrays only
 * when a consumer asks for them.
 */
import type { Token } from '../engine/engine.js';
import { formatTimestamp } from '../engine/schema.js';
import type { Evaluated, FeatureStatus } from '../features/evaluator.js';
import type { Plan } from './plan.js';

/** One entity's answer as objects: the shape of the REST answer (`EntityFeatures` in the OpenAPI document). */
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

/**
 * Values of a request: entity e's feature f (plan order) is at e * features + f.
 * Values are canonical (timestamps epoch ms); renderers give their wire form.
 */
export interface Evaluation {
  plan: Plan;
  /** Epoch ms the values were evaluated at. */
  at: number;
  values: unknown[];
  statuses: FeatureStatus[];
  /** Epoch ms, or null. */
  eventTimes: (number | null)[];
  /** The changelog positions the values reflect: every entity's, unless `tokens` is set. */
  token: Token;
  /**
   * Set when the entities' values reflect different positions (a repeated recorded lookup
   * answers what it answered the first time: audit/answers-before.ts): entity e's token is `tokens[e]`,
   * and `token` holds each table's newest position among them.
   */
  tokens?: Token[];
  /** Entity e's evaluation by the plan's view group g is at e * groups + g. */
  entries: EntityEval[];
}

/** Built by one literal so that every EntityEval shares one hidden class. */
export function entityEval(r: Evaluated, from: number, until: number): EntityEval {
  return { values: r.values, statuses: r.statuses, eventTimes: r.eventTimes, uniform: r.uniform, from, until, kept: false, used: false, json: undefined };
}

/**
 * An Evaluation whose flat arrays are gathered from the entries when first
 * asked for: a renderer that finds an entry's text already made never needs them.
 */
export class PlanEvaluation implements Evaluation {
  readonly token: Token = {};
  tokens?: Token[];
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

/**
 * An evaluation as objects per entity (values in their JSON form), for
 * services that embed lookups in answers of their own (vector search hits).
 * The lookup routes write their JSON with http/features-json.ts, which tests
 * hold to exactly what JSON.stringify gives for these objects.
 */
export function toObjects(entities: unknown[], e: Evaluation): EntityFeatures[] {
  const nf = e.plan.features.length;
  return entities.map((entity, i) => {
    const out: EntityFeatures = { entity, features: {}, statuses: {}, eventTimes: {}, token: { ...(e.tokens?.[i] ?? e.token) } };
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
