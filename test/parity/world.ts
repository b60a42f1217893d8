/**
 * The servers the parity suite talks to, and each adapter's form of lookups,
 * recorded decisions, audits and vector searches (writes, the changelog and
 * the rest are in forms.ts), with what each answers turned into one
 * comparable shape.
 *
 * A primary (REST through inject, gRPC asof.v1 and Feast bound to a port)
 * and, when Redis answers, a read replica sharing the primary's Redis prefix.
 * Fixture: pk table `users` (id string, score float64, name string) with rows
 * a = {1.5, "ann"} and b = {null, "bob"}; view `u` (score, name) over it;
 * service `svc` = [u:name]; log table `events` (id string, at timestamp), empty, and view `ev`
 * over it: `n1h`, a count of the last hour. The guarded server also records one decision.
 */
import { ERROR_CATALOGUE, GrpcStatus, type ErrorCode } from '../../src/errors.js';
import { asofError, call, clientsFor, grpc, grpcAsof, type GrpcAsof } from '../integration/grpc-helpers.js';
import { asofJson, feastJson } from '../integration/wire-values.js';
import { deletePrefix, SHARED_REDIS_URL, sharedRedisOrSkip, uniquePrefix } from '../redis-helpers.js';

/**
 * primary, replica, or the guarded server (scoped API keys, one write, one
 * lookup and one vector search at a time, no queue) as a client presenting
 * `key` (none when undefined), with its slots all taken when `busy`.
 */
export type Target = 'primary' | 'replica' | { key?: string; busy?: boolean };

/** The guarded server's keys: one per scope the suite needs (`pu` reads and audits); `pa` sets the fixture up. */
export const GUARDED_KEYS = 'pr:read,pw:write,pu:read+audit,pa:admin+write+read+decide';

/** A decision the guarded server's fixture records (a lookup of user a in view u), read from the decision log by the suite. */
export const GUARDED_DECISION = 'parity-guarded';

export interface World {
  primary: GrpcAsof;
  /** Undefined when Redis does not answer (locally only; CI requires Redis). */
  replica?: GrpcAsof;
  /** The server an operation targets; `release` frees what a busy target holds. */
  target(t: Target | undefined): { asof?: GrpcAsof; release?: () => void };
  /** Defines a view like `u` under a new name on the primary: a view the replica has not loaded yet. */
  newView(): Promise<string>;
  close(): Promise<void>;
}

export const USERS = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'string', nullable: false },
    { name: 'score', type: 'float64' },
    { name: 'name', type: 'string' },
  ],
};
/** Vector search: keys a, b, c (a and b are also users, so hits carry u's features). */
export const ITEMS = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'string', nullable: false },
    { name: 'cat', type: 'string' },
    { name: 'emb', type: 'vector<3>', metric: 'l2' },
  ],
};
/** A log table with a timestamp column, for writes of times. */
export const EVENTS = { kind: 'log', eventTime: 'at', columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'at', type: 'timestamp', nullable: false }] };
const VIEW_U = { source: 'users', entity: 'id', features: [{ name: 'score', column: 'score' }, { name: 'name', column: 'name' }] };

export async function openWorld(): Promise<World> {
  const redis = await sharedRedisOrSkip();
  const prefix = uniquePrefix('parity');
  const shared = redis ? { redisUrl: SHARED_REDIS_URL, redisPrefix: prefix } : {};
  const primary = await grpcAsof(shared);
  const must = (r: { status: number; body: unknown }) => {
    if (r.status >= 300) throw new Error(JSON.stringify(r.body));
  };
  must(await primary.req('PUT', '/tables/users', USERS));
  must(await primary.req('POST', '/tables/users/rows', { rows: [{ id: 'a', score: 1.5, name: 'ann' }, { id: 'b', name: 'bob' }] }));
  must(await primary.req('PUT', '/feature-views/u', VIEW_U));
  must(await primary.req('PUT', '/feature-services/svc', { features: ['u:name'] }));
  must(await primary.req('PUT', '/tables/items', ITEMS));
  must(await primary.req('PUT', '/tables/events', EVENTS));
  must(await primary.req('PUT', '/feature-views/ev', { source: 'events', entity: 'id', features: [{ name: 'n1h', agg: { fn: 'count', window: '1h' } }] }));
  must(await primary.req('POST', '/tables/items/rows', { rows: [{ id: 'a', cat: 'x', emb: [1, 0, 0] }, { id: 'b', cat: 'y', emb: [0, 1, 0] }, { id: 'c', cat: 'x', emb: [0, 0, 2] }] }));
  const replica = redis ? await grpcAsof({ ...shared, role: 'replica' }) : undefined;
  const guarded = await grpcAsof({ apiKeys: GUARDED_KEYS, maxInFlightWrites: 1, maxQueuedWrites: 0, maxInFlightLookups: 1, maxQueuedLookups: 0, maxInFlightSearches: 1, maxQueuedSearches: 0 } as never);
  const admin = { authorization: 'Bearer pa' };
  must(await guarded.req('PUT', '/tables/users', USERS, admin));
  must(await guarded.req('POST', '/tables/users/rows', { rows: [{ id: 'a', score: 1.5, name: 'ann' }, { id: 'b', name: 'bob' }] }, admin));
  must(await guarded.req('PUT', '/feature-views/u', VIEW_U, admin));
  must(await guarded.req('PUT', '/feature-services/svc', { features: ['u:name'] }, admin));
  must(await guarded.req('GET', `/features/a?view=u&decision=${GUARDED_DECISION}`, undefined, admin));
  const callers = new Map<string, GrpcAsof>();
  const as = (key: string | undefined): GrpcAsof => {
    const name = key ?? '';
    if (!callers.has(name)) {
      // Every gRPC call of these clients carries the key, as a configured client would.
      const interceptor: grpc.Interceptor = (options, next) =>
        new grpc.InterceptingCall(next(options), {
          start(metadata, listener, nxt) {
            if (key) metadata.set('authorization', `Bearer ${key}`);
            nxt(metadata, listener);
          },
        });
      const clients = clientsFor(guarded.address, { interceptors: [interceptor] });
      const req: GrpcAsof['req'] = (method, url, body, headers = {}) => guarded.req(method, url, body, { ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers });
      callers.set(name, Object.assign(Object.create(guarded) as GrpcAsof, clients, { req }));
    }
    return callers.get(name)!;
  };
  let views = 0;
  return {
    primary,
    replica,
    target(t) {
      if (t === undefined || t === 'primary') return { asof: primary };
      if (t === 'replica') return { asof: replica };
      if (!t.busy) return { asof: as(t.key) };
      // Take every slot of the kinds the suite sends (the guarded server admits one of each, queues none).
      const held = (['writes', 'lookups', 'searches'] as const).map((k) => guarded.admission.gates[k].enter() as () => void);
      return { asof: as(t.key), release: () => held.forEach((r) => r()) };
    },
    async newView() {
      const name = `late${++views}`;
      must(await primary.req('PUT', `/feature-views/${name}`, VIEW_U));
      return name;
    },
    async close() {
      for (const c of callers.values()) for (const k of ['online', 'ingest', 'changelog', 'feast', 'audit', 'vectors'] as const) c[k].close();
      await guarded.destroy();
      await replica?.destroy();
      await primary.destroy();
      if (redis) await deletePrefix(SHARED_REDIS_URL, prefix);
    },
  };
}

/**
 * What one adapter answered: a catalogue error (with the transport status it
 * came with, checked against the catalogue), or a success in a shape common to
 * every adapter of the operation.
 */
export type Outcome = { error: string; transportOk: boolean; message: string } | { answer: unknown };

export const restError = (status: number, body: any): Outcome => {
  const code = body?.error?.code as string;
  return { error: code, transportOk: ERROR_CATALOGUE[code as ErrorCode]?.http === status, message: body?.error?.message };
};

export const grpcError = (err: import('@grpc/grpc-js').ServiceError): Outcome => {
  const e = asofError(err);
  return { error: e.code, transportOk: GrpcStatus[ERROR_CATALOGUE[e.code as ErrorCode]?.grpc] === err.code, message: e.message };
};

/** A feature's answer in the common shape: [value as JSON, status]. */
type Cell = [unknown, string];

/** A lookup request: entities of one key column, and what to look up. */
export interface Lookup {
  key: string;
  entities: string[];
  features?: string[];
  view?: string;
  service?: string;
}

export type Form = (asof: GrpcAsof) => Promise<Outcome>;

/** A lookup in each adapter's form; answers become Cell[entity][feature]. */
export function lookupForms(q: Lookup): Record<string, Form> {
  const restSel = q.features ? { features: q.features } : q.view ? { view: q.view } : { service: q.service };
  const forms: Record<string, Form> = {
    async 'REST GET /features/{entity}'(asof) {
      const answers: Cell[][] = [];
      for (const e of q.entities) {
        const qs = new URLSearchParams(q.features ? { features: q.features.join(',') } : q.view ? { view: q.view } : { service: q.service! });
        const r = await asof.req('GET', `/features/${encodeURIComponent(e)}?${qs}`);
        if (r.status !== 200) return restError(r.status, r.body);
        answers.push(Object.keys(r.body.features).map((ref) => [r.body.features[ref], r.body.statuses[ref]]));
      }
      return { answer: answers };
    },
    async 'REST POST /features'(asof) {
      const r = await asof.req('POST', '/features', { entities: q.entities, ...restSel });
      if (r.status !== 200) return restError(r.status, r.body);
      return { answer: r.body.results.map((x: any) => Object.keys(x.features).map((ref) => [x.features[ref], x.statuses[ref]])) };
    },
    async 'gRPC asof.v1 GetOnlineFeatures'(asof) {
      const sel = q.features ? { features: { refs: q.features } } : q.view ? { view: q.view } : { service: q.service };
      const { res, err } = await call(asof.online, 'GetOnlineFeatures', { entities: q.entities.map((e) => ({ string_value: e })), ...sel });
      if (err) return grpcError(err);
      return { answer: res.results.map((x: any) => x.features.map((f: any) => [asofJson(f.value ?? {}), f.status])) };
    },
  };
  // Feast selects by feature list or feature service only.
  if (q.view) return forms;
  const transpose = (columns: { values: unknown[]; statuses: string[] }[], json: (v: any) => unknown): Cell[][] =>
    q.entities.map((_, i) => columns.slice(1).map((c) => [json(c.values[i]), c.statuses[i]]));
  forms['Feast REST POST /get-online-features'] = async (asof) => {
    const r = await asof.req('POST', '/get-online-features', { ...(q.features ? { features: q.features } : { feature_service: q.service }), entities: { [q.key]: q.entities } });
    if (r.status !== 200) return restError(r.status, r.body);
    return { answer: transpose(r.body.results, (v) => v) };
  };
  forms['Feast gRPC GetOnlineFeatures'] = async (asof) => {
    const sel = q.features ? { features: { val: q.features } } : { feature_service: q.service };
    const { res, err } = await call(asof.feast, 'GetOnlineFeatures', { ...sel, entities: { [q.key]: { val: q.entities.map((e) => ({ string_val: e })) } } });
    if (err) return grpcError(err);
    return { answer: transpose(res.results, feastJson) };
  };
  return forms;
}

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

/** A REST-only request (an operation no other adapter has yet): answers its body. */
export function restForm(method: string, url: string, body?: unknown): Record<string, Form> {
  return {
    async [`REST ${method} ${url}`](asof) {
      const r = await asof.req(method, url, body);
      return r.status < 300 ? { answer: r.body } : restError(r.status, r.body);
    },
  };
}

/** A vector search request (REST body shape). */
export interface VectorQuery {
  table: string;
  column?: string;
  vector: number[];
  k: number;
  filter?: Record<string, unknown>;
  metric?: 'cosine' | 'l2' | 'dot';
  features?: string[];
  /** Epoch ms. */
  asOf?: number;
}

/** JSON → google.protobuf.Value (protobufjs's bundled struct.proto has camelCase field names). */
const jsonToStructValue = (v: unknown): object => {
  if (v === null) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(jsonToStructValue) } };
  return { structValue: { fields: Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, jsonToStructValue(x)])) } };
};

/** A vector search in each adapter's form; answers become [key, distance, cat, [feature value, status]...] per hit. */
export function vectorForms(q: VectorQuery): Record<string, Form> {
  return {
    async 'REST POST /vectors/search'(asof) {
      const r = await asof.req('POST', '/vectors/search', q);
      if (r.status !== 200) return restError(r.status, r.body);
      return { answer: r.body.results.map((h: any) => [h.key, h.distance, h.row.cat, ...(q.features ?? []).map((f) => [h.features.features[f], h.features.statuses[f]])]) };
    },
    async 'gRPC asof.v1 VectorService/Search'(asof) {
      const asOf = q.asOf === undefined ? undefined : { seconds: String(Math.floor(q.asOf / 1000)), nanos: (((q.asOf % 1000) + 1000) % 1000) * 1e6 };
      const req = { table: q.table, column: q.column ?? '', vector: q.vector, k: q.k, as_of: asOf, filter: q.filter && { fields: Object.fromEntries(Object.entries(q.filter).map(([k, v]) => [k, jsonToStructValue(v)])) }, metric: q.metric?.toUpperCase(), features: q.features ?? [] };
      const { res, err } = await call(asof.vectors, 'Search', req);
      if (err) return grpcError(err);
      return {
        answer: res.results.map((h: any) => [
          h.key,
          h.distance,
          asofJson(h.row.columns.cat),
          ...(q.features ?? []).map((_f, i) => [asofJson(h.features.features[i].value), h.features.features[i].status]),
        ]),
      };
    },
  };
}
