/**
 * The parity suite's forms of recorded decisions and audits (world.ts has the
 * servers, lookups and vector searches): a lookup recorded as a decision in
 * each lookup adapter's form, repeated or changed under its id, and a
 * decision's or an entity's audit over REST and gRPC AuditService, each turned
 * into one comparable shape.
 */
import { call, grpc, type GrpcAsof } from '../integration/grpc-helpers.js';
import { asofJson, feastJson } from '../integration/wire-values.js';
import { grpcError, restError, type Cell, type Form, type Outcome } from './world.js';

let decisions = 0;
/** A fresh decision id per form call, so every adapter records its own decision. */
export const nextDecisionId = (form: string): string => `parity-${++decisions}-${form.replace(/[^A-Za-z0-9]+/g, '-')}`;

/**
 * A lookup of entity `a` recorded as a decision, in each lookup adapter's
 * form; the answer is that decision's replay as REST gives it: [match,
 * recordedBy, reconstructed cells], so every adapter must record the same.
 */
export function recordedLookupForms(features: string[]): Record<string, Form> {
  const replay = async (asof: GrpcAsof, id: string): Promise<Outcome> => {
    const r = await asof.req('GET', `/audit/decisions/${id}`);
    if (r.status !== 200) return restError(r.status, r.body);
    return { answer: [r.body.match, r.body.decision.recordedBy, features.map((f) => [r.body.reconstructed.features[f], r.body.reconstructed.statuses[f]])] };
  };
  const md = (id: string) => {
    const m = new grpc.Metadata();
    m.set('asof-decision-id', id);
    return m;
  };
  return {
    async 'REST GET /features/{entity}?decision='(asof) {
      const id = nextDecisionId('rest-get');
      const r = await asof.req('GET', `/features/a?features=${features.join(',')}&decision=${id}`);
      return r.status === 200 ? replay(asof, id) : restError(r.status, r.body);
    },
    async 'REST POST /features decisions'(asof) {
      const id = nextDecisionId('rest-post');
      const r = await asof.req('POST', '/features', { entities: ['a'], features, decisions: [id] });
      return r.status === 200 ? replay(asof, id) : restError(r.status, r.body);
    },
    async 'gRPC asof.v1 GetOnlineFeatures decision_ids'(asof) {
      const id = nextDecisionId('grpc');
      const { err } = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: 'a' }], features: { refs: features }, decision_ids: [id] });
      return err ? grpcError(err) : replay(asof, id);
    },
    async 'Feast REST asof-decision-id header'(asof) {
      const id = nextDecisionId('feast-rest');
      const r = await asof.req('POST', '/get-online-features', { features, entities: { id: ['a'] } }, { 'asof-decision-id': id });
      return r.status === 200 ? replay(asof, id) : restError(r.status, r.body);
    },
    async 'Feast gRPC asof-decision-id metadata'(asof) {
      const id = nextDecisionId('feast-grpc');
      const { err } = await call(asof.feast, 'GetOnlineFeatures', { features: { val: features }, entities: { id: { val: [{ string_val: 'a' }] } } }, md(id));
      return err ? grpcError(err) : replay(asof, id);
    },
  };
}

/** One lookup of `entity` recorded as decision `id`: its cells and the token it answered (as JSON text), or the error. */
type RecordedLookup = (asof: GrpcAsof, entity: string, features: string[], id: string) => Promise<{ cells: Cell[]; token: string } | Outcome>;

const decisionMd = (id: string) => {
  const m = new grpc.Metadata();
  m.set('asof-decision-id', id);
  return m;
};

/** The lookup adapters that record decisions, each as a RecordedLookup. */
const RECORDED_LOOKUPS: Record<string, RecordedLookup> = {
  async 'REST GET /features/{entity}?decision='(asof, entity, features, id) {
    const r = await asof.req('GET', `/features/${entity}?features=${features.join(',')}&decision=${id}`);
    if (r.status !== 200) return restError(r.status, r.body);
    return { cells: features.map((f) => [r.body.features[f], r.body.statuses[f]]), token: JSON.stringify(r.body.token) };
  },
  async 'REST POST /features decisions'(asof, entity, features, id) {
    const r = await asof.req('POST', '/features', { entities: [entity], features, decisions: [id] });
    if (r.status !== 200) return restError(r.status, r.body);
    const x = r.body.results[0];
    return { cells: features.map((f) => [x.features[f], x.statuses[f]]), token: JSON.stringify(x.token) };
  },
  async 'gRPC asof.v1 GetOnlineFeatures decision_ids'(asof, entity, features, id) {
    const { res, err } = await call(asof.online, 'GetOnlineFeatures', { entities: [{ string_value: entity }], features: { refs: features }, decision_ids: [id] });
    if (err) return grpcError(err);
    const x = res.results[0];
    return { cells: x.features.map((f: any) => [asofJson(f.value ?? {}), f.status]), token: JSON.stringify(Object.fromEntries(Object.entries(x.token).map(([t, o]) => [t, Number(o)]))) };
  },
  async 'Feast REST asof-decision-id header'(asof, entity, features, id) {
    const r = await asof.req('POST', '/get-online-features', { features, entities: { id: [entity] } }, { 'asof-decision-id': id });
    if (r.status !== 200) return restError(r.status, r.body);
    return { cells: r.body.results.slice(1).map((c: any) => [c.values[0], c.statuses[0]]), token: String(r.headers['asof-token']) };
  },
  async 'Feast gRPC asof-decision-id metadata'(asof, entity, features, id) {
    const { res, err, headers } = await call(asof.feast, 'GetOnlineFeatures', { features: { val: features }, entities: { id: { val: [{ string_val: entity }] } } }, decisionMd(id));
    if (err) return grpcError(err);
    return { cells: res.results.slice(1).map((c: any) => [feastJson(c.values[0]), c.statuses[0]]), token: String(headers?.get('asof-token')[0]) };
  },
};

let repeated = 0;
/**
 * A lookup recorded as a decision, the entity's row then updated, and the
 * same lookup (same id) sent again, in each lookup adapter's form: answers
 * [first cells, repeated cells, whether the repeat answered the first token].
 * Each form uses an entity of its own, written as {score 1, name "x"} and then
 * {score 2, name "y"}.
 */
export function repeatedLookupForms(features: string[]): Record<string, Form> {
  return Object.fromEntries(
    Object.entries(RECORDED_LOOKUPS).map(([name, lookup]) => [
      name,
      async (asof: GrpcAsof): Promise<Outcome> => {
        const entity = `rep${++repeated}`;
        const id = nextDecisionId(`repeat-${name}`);
        await asof.req('POST', '/tables/users/rows', { rows: [{ id: entity, score: 1, name: 'x' }] });
        const first = await lookup(asof, entity, features, id);
        if (!('cells' in first)) return first;
        await asof.req('POST', '/tables/users/rows', { rows: [{ id: entity, score: 2, name: 'y' }] });
        const again = await lookup(asof, entity, features, id);
        if (!('cells' in again)) return again;
        return { answer: [first.cells, again.cells, again.token === first.token] };
      },
    ]),
  );
}

/** Decision `id` recorded by a REST lookup of `a`, then that lookup, changed by `change`, sent with the same id in each lookup adapter's form: its cells or its error. */
export function conflictingLookupForms(change: { entity?: string; features?: string[] }): Record<string, Form> {
  const features = ['u:score', 'u:name'];
  return Object.fromEntries(
    Object.entries(RECORDED_LOOKUPS).map(([name, lookup]) => [
      name,
      async (asof: GrpcAsof): Promise<Outcome> => {
        const id = nextDecisionId(`conflict-${name}`);
        await asof.req('GET', `/features/a?features=${features.join(',')}&decision=${id}`);
        const r = await lookup(asof, change.entity ?? 'a', change.features ?? features, id);
        return 'cells' in r ? { answer: r.cells } : r;
      },
    ]),
  );
}

/**
 * Decision `id` recorded by a REST lookup of int64 entity "01001" (view `nv`,
 * made on first use), then sent with the same id as "1001" in each lookup
 * adapter's form: the same entity (its canonical key), so its first answer.
 */
export function canonicalEntityLookupForms(): Record<string, Form> {
  return Object.fromEntries(
    Object.entries(RECORDED_LOOKUPS).map(([name, lookup]) => [
      name,
      async (asof: GrpcAsof): Promise<Outcome> => {
        if ((await asof.req('GET', '/feature-views/nv')).status !== 200) {
          await asof.req('PUT', '/tables/nums', { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'int64', nullable: false }, { name: 'x', type: 'float64' }] });
          await asof.req('PUT', '/feature-views/nv', { source: 'nums', entity: 'id', features: [{ name: 'x', column: 'x' }] });
          await asof.req('POST', '/tables/nums/rows', { rows: [{ id: 1001, x: 2.5 }] });
        }
        const id = nextDecisionId(`canonical-${name}`);
        const first = await asof.req('GET', `/features/01001?features=nv:x&decision=${id}`);
        if (first.status !== 200) return restError(first.status, first.body);
        const r = await lookup(asof, '1001', ['nv:x'], id);
        return 'cells' in r ? { answer: r.cells } : r;
      },
    ]),
  );
}

/** A page of an audit trail as asked for (unset: the defaults). */
export type TrailPageAsk = { trailFrom?: number; trailLimit?: number };

/** `?a=1&b=2` of the parameters that are set ('' when none is). */
const query = (q: { [k: string]: string | number | undefined }): string => {
  const set = Object.entries(q).filter(([, v]) => v !== undefined);
  return set.length ? `?${new URLSearchParams(set.map(([k, v]) => [k, String(v)]))}` : '';
};

/** A decision's audit over REST and gRPC AuditService, as [match, reconstructed cells, trail change types]; `id` may be made per call. */
export function decisionAuditForms(id: (asof: GrpcAsof) => Promise<string>, features: string[], page: TrailPageAsk = {}): Record<string, Form> {
  return {
    async 'REST GET /audit/decisions/{id}'(asof) {
      const r = await asof.req('GET', `/audit/decisions/${encodeURIComponent(await id(asof))}${query(page)}`);
      if (r.status !== 200) return restError(r.status, r.body);
      return { answer: [r.body.match, features.map((f) => [r.body.reconstructed.features[f], r.body.reconstructed.statuses[f]]), r.body.trail.map((t: any) => t.changeType)] };
    },
    async 'gRPC asof.v1 AuditService.GetDecision'(asof) {
      const { res, err } = await call(asof.audit, 'GetDecision', { id: await id(asof), trail_from: page.trailFrom, trail_limit: page.trailLimit });
      if (err) return grpcError(err);
      const by = new Map(res.reconstructed.map((f: any) => [f.ref, f]));
      return { answer: [res.match ?? null, features.map((f) => [JSON.parse((by.get(f) as any).value_json), (by.get(f) as any).status]), res.trail.map((t: any) => t.change_type)] };
    },
  };
}

/**
 * A decision posted with `decidedAt` (RFC 3339 or epoch ms), in each answer
 * that carries a decision: [decidedAt, servedAt] as the answer gives them.
 */
export function decisionTimesForms(id: string, decidedAt: string | number): Record<string, Form> {
  const post = (asof: GrpcAsof) => asof.req('POST', '/decisions', { id, entity: 'a', view: 'u', outcome: 'ok', decidedAt });
  const times = (d: any) => ({ answer: [d.decidedAt, d.servedAt] });
  return {
    async 'REST POST /decisions'(asof) {
      const r = await post(asof);
      return r.status < 300 ? times(r.body) : restError(r.status, r.body);
    },
    async 'REST GET /audit/decisions/{id}'(asof) {
      await post(asof);
      const r = await asof.req('GET', `/audit/decisions/${id}`);
      return r.status === 200 ? times(r.body.decision) : restError(r.status, r.body);
    },
    async 'REST GET /audit/decisions'(asof) {
      await post(asof);
      const r = await asof.req('GET', '/audit/decisions?entity=a&limit=10000');
      return r.status === 200 ? times(r.body.decisions.find((d: any) => d.id === id)) : restError(r.status, r.body);
    },
    async 'gRPC asof.v1 AuditService.GetDecision decision_json'(asof) {
      await post(asof);
      const { res, err } = await call(asof.audit, 'GetDecision', { id });
      return err ? grpcError(err) : times(JSON.parse(res.decision_json));
    },
  };
}

/** An entity's state over REST and gRPC AuditService, as [cells, trail change types]. */
export function entityStateForms(entity: string, view: string, features: string[], ask: TrailPageAsk & { at?: number } = {}): Record<string, Form> {
  return {
    async 'REST GET /audit/entities/{entity}'(asof) {
      const r = await asof.req('GET', `/audit/entities/${entity}${query({ view, ...ask })}`);
      if (r.status !== 200) return restError(r.status, r.body);
      return { answer: [features.map((f) => [r.body.features[f], r.body.statuses[f]]), r.body.trail.map((t: any) => t.changeType)] };
    },
    async 'gRPC asof.v1 AuditService.GetEntityState'(asof) {
      const at = ask.at === undefined ? undefined : { seconds: Math.floor(ask.at / 1000), nanos: (ask.at % 1000) * 1e6 };
      const { res, err } = await call(asof.audit, 'GetEntityState', { entity, view, at, trail_from: ask.trailFrom, trail_limit: ask.trailLimit });
      if (err) return grpcError(err);
      const by = new Map(res.features.map((f: any) => [f.ref, f]));
      return { answer: [features.map((f) => [JSON.parse((by.get(f) as any).value_json), (by.get(f) as any).status]), res.trail.map((t: any) => t.change_type)] };
    },
  };
}


/**
 * A decision about entity `a` (view u) posted with a subset of what a lookup
 * served: `served` makes the posted served values from the lookup's answer.
 * Its audit over REST and gRPC AuditService, as [match, compared features,
 * differing features, whether each served event time is the lookup's instant].
 */
export function postedServedAuditForms(served: (lookup: { features: Record<string, unknown>; eventTimes: Record<string, string | null> }) => Record<string, unknown>): Record<string, Form> {
  const post = async (asof: GrpcAsof): Promise<{ id: string; lookup: any } | Outcome> => {
    const lookup = await asof.req('GET', '/features/a?view=u');
    if (lookup.status !== 200) return restError(lookup.status, lookup.body);
    const id = nextDecisionId('posted-served');
    const r = await asof.req('POST', '/decisions', { id, entity: 'a', view: 'u', outcome: 'ok', served: served(lookup.body) });
    return r.status === 201 ? { id, lookup: lookup.body } : restError(r.status, r.body);
  };
  const sameTimes = (lookup: any, times: [string, string | null][]) => times.every(([ref, t]) => (t === null ? null : Date.parse(t)) === (lookup.eventTimes[ref] === null ? null : Date.parse(lookup.eventTimes[ref])));
  return {
    async 'REST GET /audit/decisions/{id}'(asof) {
      const p = await post(asof);
      if (!('id' in p)) return p;
      const r = await asof.req('GET', `/audit/decisions/${p.id}`);
      if (r.status !== 200) return restError(r.status, r.body);
      return { answer: [r.body.match, r.body.compared, r.body.differences.map((d: any) => d.feature), sameTimes(p.lookup, Object.entries(r.body.served.eventTimes))] };
    },
    async 'gRPC asof.v1 AuditService.GetDecision'(asof) {
      const p = await post(asof);
      if (!('id' in p)) return p;
      const { res, err } = await call(asof.audit, 'GetDecision', { id: p.id });
      if (err) return grpcError(err);
      const times = (res.served ?? []).filter((f: any) => f.event_time).map((f: any) => [f.ref, new Date(Number(f.event_time.seconds) * 1000 + Math.floor(f.event_time.nanos / 1e6)).toISOString()]);
      return { answer: [res.match ?? null, res.compared ?? [], res.differences ?? [], sameTimes(p.lookup, times)] };
    },
  };
}
