/**
 * The audit service: records decisions (from a lookup, or posted), explains
 * them by reconstruction, shows an entity's state at any time, and verifies
 * hash chains. REST, gRPC and the Feast routes all call it; nothing here knows
 * about HTTP or gRPC.
 */
import { requireScope, type Caller } from '../access.js';
import { AsofError } from '../errors.js';
import type { Engine, Token } from '../engine/engine.js';
import { bentNumberReason, bentNumbers } from '../engine/json-safety.js';
import { checkedTime, formatTimestamp, isReservedName } from '../engine/schema.js';
import type { FeatureViewDef } from '../features/definitions.js';
import { entityKeyText } from '../features/entity-key.js';
import type { PointInTime } from '../features/evaluator.js';
import type { FeatureRegistry, ResolvedFeature } from '../features/registry.js';
import { toObjects, type Evaluation } from '../online/service.js';
import { withAnswersBefore, type AnswerBefore } from './answers-before.js';
import { checkRange, headMessage, HeadSigner, storedHeadAt, verifyChain, type VerifyResult } from './chain.js';
import { canonicalJson, conflict, DecisionLog, type ChainHead, type Decision, type FeatureSelection, type ServedValues } from './decisions.js';
import { replay, type Replay, type TrailRecord } from './replay.js';
import { canonicalEntity, checkId, checkPage, checkServedKeys, otherLookup, plainSelection, sameEntity } from './decision-checks.js';
import { comparedFeatures, diffServed, storedServed, type Difference, type ServedInput } from './served.js';

export type { Difference };

/** A decision as posted (POST /decisions, gRPC); times as RFC 3339 or epoch ms. */
export interface DecisionInput extends FeatureSelection {
  id: string;
  entity: string | number;
  outcome: string;
  model?: string;
  decidedAt?: string | number;
  token?: Token;
  served?: ServedInput;
  attributes?: Record<string, unknown>;
}

export interface TrailPage {
  trail: TrailRecord[];
  /** Index of the first trail record shown, how many there are, and where the next page starts (null: none). */
  trailPage: { from: number; total: number; next: number | null };
}

export interface HistoryCheck {
  /** Every table's chain hash at the recorded head is still the recorded one (and, with verify, its chain walks clean). */
  ok: boolean;
  tables: Record<string, { offset: number; recorded: string; current: string | null; ok: boolean; verify?: VerifyResult }>;
}

export interface DecisionAudit extends TrailPage {
  decision: PublicDecision;
  served: ServedValues | null;
  reconstructed: ServedValues & { token: Token; at: string; pointInTime: PointInTime };
  /** null when nothing was served to compare with. */
  match: boolean | null;
  /** The features whose served value, status or event time was reported, and so compared (decision order). */
  compared: string[];
  differences: Difference[];
  history: HistoryCheck;
  /** Whether the decision's signature checks with this server's key; null when unsigned or no key is set. */
  signatureValid: boolean | null;
}

/** A decision as answers carry it: the stored record without its views and posted body, times as RFC 3339 UTC with milliseconds. */
export type PublicDecision = Omit<Decision, 'views' | 'request' | 'decidedAt' | 'servedAt'> & { decidedAt: string; servedAt: string | null };

export class AuditService {
  private constructor(
    private readonly engine: Engine,
    private readonly registry: FeatureRegistry,
    private readonly decisions: DecisionLog,
    private readonly now: () => number,
    readonly signer?: HeadSigner,
  ) {}

  static async open(engine: Engine, registry: FeatureRegistry, now: () => number, signingKey?: string): Promise<AuditService> {
    return new AuditService(engine, registry, await DecisionLog.open(engine), now, signingKey ? HeadSigner.fromText(signingKey) : undefined);
  }

  /**
   * Records lookups as decisions, durably, before the caller answers: `ids[i]`
   * (undefined: not recorded) names entity i's decision. Needs the `decide`
   * scope. Checked first, so a request with a bad, repeated or conflicting id
   * writes nothing.
   *
   * Answers the evaluation to render: `e`, except that an entity whose id a
   * lookup already recorded (the same entity and selection, its features
   * defined the same) answers what that lookup answered, its values,
   * statuses, event times and token, as a retried request is answered its
   * first answer; nothing is written for it. An id recorded otherwise is 409.
   */
  async recordLookups(caller: Caller, ids: (string | undefined)[], entities: unknown[], e: Evaluation, field: (i: number) => string = (i) => `decisions[${i}]`, list = 'decisions'): Promise<Evaluation> {
    if (ids.every((id) => id === undefined)) return e;
    requireScope(caller, 'decide');
    if (ids.length !== entities.length) throw new AsofError('ASOF_INVALID_ARGUMENT', `${ids.length} decision ids for ${entities.length} entities: give one (or null) per entity`, [{ field: list, reason: 'length differs from entities' }]);
    const seen = new Set<string>();
    const wanted: number[] = [];
    ids.forEach((id, i) => {
      if (id === undefined) return;
      checkId(id, field(i));
      if (seen.has(id)) throw new AsofError('ASOF_INVALID_ARGUMENT', `decision id "${id}" is given twice in one request`, [{ row: i, field: field(i), reason: 'repeated decision id' }]);
      seen.add(id);
      wanted.push(i);
    });
    if (wanted.length === 0) return e;
    const served = toObjects(wanted.map((i) => entities[i]), e);
    const selection = plainSelection(e.plan.selection);
    const views: Record<string, FeatureViewDef> = {};
    for (const g of e.plan.groups) views[g.def.name] = g.def;
    const heads = this.heads(Object.keys(e.token));
    const cols = e.plan.groups.map((g) => g.entityColumn);
    const made = wanted.map((i, k): Decision => {
      const s = served[k];
      return {
        id: ids[i]!,
        entity: canonicalEntity(cols, entities[i], `entities[${i}]`),
        selection,
        features: e.plan.features.map((f) => f.ref),
        outcome: null,
        model: null,
        decidedAt: e.at,
        servedAt: e.at,
        token: s.token,
        served: { features: s.features, statuses: s.statuses, eventTimes: s.eventTimes },
        heads,
        attributes: null,
        recordedBy: 'lookup',
        views,
        signature: null,
        request: null,
      };
    });
    for (const d of made) {
      const x = this.decisions.get(d.id);
      const why = x && otherLookup(d, x, cols);
      if (why) throw conflict(d.id, why);
    }
    // One write for every id, after every id's check under its lock: a request answered 409 records none of its decisions.
    const recorded = await this.decisions.updateAll(
      made.map((d) => ({
        id: d.id,
        decide: (x: Decision | undefined) => {
          if (!x) return this.signed(d);
          const why = otherLookup(d, x, cols);
          if (why) throw conflict(d.id, why);
          return null;
        },
      })),
    );
    // Recorded before (by an earlier request, or one running alongside that wrote first): its answer is the answer.
    let before: (AnswerBefore | undefined)[] | undefined;
    recorded.forEach(({ decision: x, written }, k) => {
      if (written) return;
      before ??= new Array<AnswerBefore | undefined>(entities.length);
      before[wanted[k]] = { ...x.served!, token: x.token! };
    });
    return before ? withAnswersBefore(e, before) : e;
  }

  /**
   * POST /decisions: records a decision, or completes one its lookup recorded. Identical re-sends change nothing.
   * `text`: the JSON text `input` was parsed from, when there was one: an attribute number a float64 would
   * bend (12345678901234567890) is refused, as in a json column, not stored altered.
   */
  async recordDecision(input: DecisionInput, text?: string): Promise<{ decision: PublicDecision; created: boolean }> {
    checkId(input.id, 'id');
    if (text !== undefined && input.attributes !== undefined) {
      const bent = bentNumbers(text).filter((b) => b.path[0] === 'attributes');
      if (bent.length > 0) {
        throw new AsofError('ASOF_INVALID_ARGUMENT', `attributes hold a number a float64 does not keep: ${bentNumberReason(bent[0], bent[0].path.slice(1))}`, bent.map((b) => ({ field: b.path.join('.'), reason: bentNumberReason(b, b.path.slice(1)) })));
      }
    }
    // Resolved as given (every form the input names), so more than one form is the 400 every selection gets, not one kept.
    const resolved = this.registry.resolve({ features: input.features, view: input.view, service: input.service });
    const selection = plainSelection(input);
    if (input.served) checkServedKeys(input.served, resolved.map((f) => f.ref));
    const served: ServedValues | null = input.served ? storedServed(input.served, text) : null;
    const views: Record<string, FeatureViewDef> = {};
    for (const f of resolved) views[f.view] ??= this.registry.view(f.view);
    const cols = Object.values(views).map((v) => this.registry.evaluator(v).schema.byName.get(v.entity)!);
    const entity = canonicalEntity(cols, input.entity, 'entity');
    const now = this.now();
    let decidedAt = now;
    if (input.decidedAt !== undefined) {
      decidedAt = checkedTime('decidedAt', input.decidedAt);
      // Replayed as what the store knew at decidedAt: a time still to come would take in writes made after the post, so its audit would change over time.
      if (decidedAt > now) {
        throw new AsofError('ASOF_INVALID_ARGUMENT', `decidedAt ${formatTimestamp(decidedAt)} is later than the server's now (${formatTimestamp(now)}): a decision is recorded once it is made`, [{ field: 'decidedAt', reason: 'in the future' }]);
      }
    }
    // A token fixes the replay in time: an offset the table has not reached yet would take in writes made after the decision.
    for (const [t, off] of Object.entries(input.token ?? {})) {
      if (!this.engine.has(t)) throw new AsofError('ASOF_INVALID_ARGUMENT', `token names table "${t}", which does not exist`, [{ field: `token.${t}`, reason: `unknown table (offset ${off})` }]);
      const latest = this.engine.table(t).endOffset - 1;
      if (!Number.isInteger(off) || off < -1 || off > latest) throw new AsofError('ASOF_INVALID_ARGUMENT', `token.${t} is ${off}; an offset of table "${t}" is between -1 (before its first record) and ${latest} (its latest)`, [{ field: `token.${t}`, reason: `offset outside [-1, ${latest}]` }]);
    }
    // A source the token does not name would be replayed as of offset -1 (no records): every feature of it NOT_FOUND.
    if (input.token) {
      const uncovered = new Map<string, string[]>();
      for (const f of resolved) {
        const source = views[f.view].source;
        if (!Object.hasOwn(input.token, source)) uncovered.set(source, [...(uncovered.get(source) ?? []), f.ref]);
      }
      if (uncovered.size > 0) {
        const tables = [...uncovered.keys()];
        throw new AsofError(
          'ASOF_INVALID_ARGUMENT',
          `token names no offset for ${tables.map((t) => `"${t}"`).join(', ')}, the source table${tables.length > 1 ? 's' : ''} of features decided on: a replay would read none of ${tables.length > 1 ? 'their' : 'its'} records`,
          [...uncovered].map(([t, refs]) => ({ field: 'token', reason: `no offset for "${t}", the source table of ${refs.join(', ')}` })),
        );
      }
    }
    const request = canonicalJson({ ...input, entity, decidedAt: input.decidedAt === undefined ? undefined : decidedAt, served: input.served && { ...input.served, eventTimes: input.served.eventTimes && served!.eventTimes } });
    const sources = input.token ? Object.keys(input.token) : [...new Set(Object.values(views).map((v) => v.source))];
    const fresh: Decision = {
      id: input.id,
      entity,
      selection,
      features: resolved.map((f) => f.ref),
      outcome: input.outcome,
      model: input.model ?? null,
      decidedAt,
      servedAt: null,
      token: input.token ?? null,
      served,
      heads: this.heads(sources.filter((t) => this.engine.has(t))),
      attributes: input.attributes ?? null,
      recordedBy: 'api',
      views,
      signature: null,
      request,
    };
    let created = false;
    const { decision } = await this.decisions.update(input.id, (x) => {
      if (!x) return (created = true), this.signed(fresh);
      if (x.request !== null) {
        if (x.request === request) return null;
        throw conflict(input.id, 'another body was recorded under this id');
      }
      // Recorded by its lookup: the post completes it, and must agree with what the lookup recorded.
      if (!sameEntity(x.entity, entity, cols) || canonicalJson(x.selection) !== canonicalJson(selection)) throw conflict(input.id, 'its lookup was for another entity or selection');
      if (input.token && canonicalJson(input.token) !== canonicalJson(x.token)) throw conflict(input.id, 'the token differs from the one its lookup read');
      if (input.served && canonicalJson(input.served.features) !== canonicalJson(x.served?.features)) throw conflict(input.id, 'the served values differ from what its lookup served');
      return { ...x, outcome: input.outcome, model: input.model ?? null, attributes: input.attributes ?? null, decidedAt: input.decidedAt === undefined ? x.decidedAt : decidedAt, recordedBy: 'lookup+api', request };
    });
    return { decision: publicDecision(decision), created };
  }

  decision(id: string): Decision {
    const d = this.decisions.get(id);
    if (!d) throw new AsofError('ASOF_NOT_FOUND', `no decision "${id}"`, { id });
    return d;
  }

  /** GET /audit/decisions/{id}: replays the decision and compares. */
  async explain(id: string, page: { trailFrom?: number; trailLimit?: number; verify?: boolean } = {}): Promise<DecisionAudit> {
    checkId(id, 'id');
    checkPage(page);
    const d = this.decision(id);
    const views = new Map(Object.entries(d.views));
    const at = d.servedAt ?? d.decidedAt;
    const r = await replay(this.engine, { entity: d.entity, features: resolveRefs(d.features, views), views, at, pointInTime: 'known', token: d.token, trailFrom: page.trailFrom, trailLimit: page.trailLimit });
    const compared = comparedFeatures(d.served, d.features);
    const differences = d.served ? diffServed(d.served, r, compared) : [];
    return {
      decision: publicDecision(d),
      served: d.served,
      reconstructed: { features: r.features, statuses: r.statuses, eventTimes: r.eventTimes, token: r.token, at: new Date(at).toISOString(), pointInTime: 'known' },
      match: d.served ? differences.length === 0 : null,
      compared,
      differences,
      history: await this.history(d.heads ?? {}, page.verify ?? false),
      signatureValid: d.signature && this.signer ? this.signer.check(decisionMessage(d), d.signature) : null,
      trail: r.trail,
      trailPage: r.trailPage,
    };
  }

  /** GET /audit/entities/{entity}: the entity's values at `at` (epoch ms) with the trail that led to them. */
  async entityState(entity: string, selection: FeatureSelection, at: number, pointInTime: PointInTime, page: { trailFrom?: number; trailLimit?: number } = {}): Promise<ServedValues & TrailPage & { entity: string; at: string; pointInTime: PointInTime; token: Token }> {
    checkPage(page);
    checkedTime('at', at);
    const resolved = this.registry.resolve(selection);
    const views = new Map<string, FeatureViewDef>();
    for (const f of resolved) if (!views.has(f.view)) views.set(f.view, this.registry.view(f.view));
    const r: Replay = await replay(this.engine, { entity, features: resolved, views, at, pointInTime, trailFrom: page.trailFrom, trailLimit: page.trailLimit });
    return { entity, at: new Date(at).toISOString(), pointInTime, features: r.features, statuses: r.statuses, eventTimes: r.eventTimes, token: r.token, trail: r.trail, trailPage: r.trailPage };
  }

  /** GET /audit/decisions: newest first. Times epoch ms, inclusive. */
  list(filter: { entity?: string; from?: number; to?: number; outcome?: string }, limit = 100): PublicDecision[] {
    checkRange(filter.from, filter.to);
    return this.decisions.list({ ...filter, entity: filter.entity === undefined ? undefined : this.entityMatcher(filter.entity) }, limit).map(publicDecision);
  }

  /**
   * `?entity=` as each decision's views key it: a decision matches when its
   * stored entity is the text given, or that text's canonical key under the
   * entity column of the decision's first view (so "01001" finds an int64
   * entity recorded as "1001", and an RFC 3339 time one recorded as epoch ms).
   * Text a column refuses matches only as given.
   */
  private entityMatcher(text: string): (stored: string, d: Decision) => boolean {
    const keys = new Map<string, string | undefined>();
    return (stored, d) => {
      if (stored === text) return true;
      const v = Object.values(d.views)[0];
      if (!v || !this.engine.has(v.source)) return false;
      const at = `${v.source}\0${v.entity}`;
      if (!keys.has(at)) {
        const col = this.engine.table(v.source).schema.byName.get(v.entity);
        let key: string | undefined;
        try {
          key = col && entityKeyText(col, text);
        } catch {
          key = undefined;
        }
        keys.set(at, key);
      }
      return keys.get(at) === stored;
    };
  }

  /** GET /audit/verify: walks the table's chain over offsets [from, to]. */
  async verify(table: string, from?: number, to?: number): Promise<VerifyResult & { table: string; signature?: { algorithm: 'Ed25519'; publicKey: string; message: string; value: string } }> {
    checkRange(from, to);
    const t = this.engine.table(table);
    // An offset past the table's latest has no frame: the walk would find none and answer a head at -1 (genesis), a false head a signature would vouch for.
    const latest = t.endOffset - 1;
    for (const [field, v] of [['from', from], ['to', to]] as const) {
      if (v === undefined || v <= latest) continue;
      const range = latest < 0 ? `table "${table}" has no records yet` : `table "${table}" holds offsets 0 to ${latest} (its latest)`;
      throw new AsofError('ASOF_INVALID_ARGUMENT', `${field} is ${v}; ${range}`, [{ field, reason: latest < 0 ? 'the table has no records' : `offset outside [0, ${latest}]` }]);
    }
    const r = await verifyChain(t, from, to);
    if (!this.signer) return { table, ...r };
    const message = headMessage(table, r.head);
    return { table, ...r, signature: { algorithm: 'Ed25519', publicKey: this.signer.publicKey, message, value: this.signer.sign(message) } };
  }

  private heads(tables: string[]): Record<string, ChainHead> {
    const out: Record<string, ChainHead> = {};
    for (const t of tables) if (this.engine.has(t) && !isReservedName(t)) out[t] = this.engine.table(t).chainHead;
    return out;
  }

  private signed(d: Decision): Decision {
    return this.signer ? { ...d, signature: this.signer.sign(decisionMessage(d)) } : d;
  }

  private async history(heads: Record<string, ChainHead>, deep: boolean): Promise<HistoryCheck> {
    const out: HistoryCheck = { ok: true, tables: {} };
    for (const [t, head] of Object.entries(heads)) {
      const table = this.engine.has(t) ? this.engine.table(t) : undefined;
      const current = table ? ((await storedHeadAt(table, head.offset)) ?? null) : null;
      const entry: HistoryCheck['tables'][string] = { offset: head.offset, recorded: head.hash, current, ok: current === head.hash };
      if (deep && table) {
        entry.verify = await verifyChain(table, 0, head.offset);
        entry.ok &&= entry.verify.ok;
      }
      out.tables[t] = entry;
      out.ok &&= entry.ok;
    }
    return out;
  }
}

/** What a decision's signature covers: its id, entity, time, token, heads and served values, as canonical JSON. */
export const decisionMessage = (d: Decision): string => `asof.decision.v1\n${canonicalJson({ id: d.id, entity: d.entity, decidedAt: d.decidedAt, servedAt: d.servedAt, token: d.token, heads: d.heads, served: d.served })}`;

/** Stored records keep epoch ms (the signature covers those); answers give RFC 3339, as every other time asof returns. */
function publicDecision(d: Decision): PublicDecision {
  const { views: _v, request: _r, ...rest } = d;
  return { ...rest, decidedAt: formatTimestamp(d.decidedAt), servedAt: d.servedAt === null ? null : formatTimestamp(d.servedAt) };
}

function resolveRefs(refs: string[], views: Map<string, FeatureViewDef>): ResolvedFeature[] {
  return refs.map((ref) => {
    const at = ref.lastIndexOf(':');
    const view = ref.slice(0, at);
    const feature = ref.slice(at + 1);
    const index = views.get(view)?.features.findIndex((f) => f.name === feature) ?? -1;
    if (index < 0) throw new AsofError('ASOF_INTERNAL', `decision names "${ref}", which its recorded view definition lacks`);
    return { ref, view, feature, index };
  });
}
