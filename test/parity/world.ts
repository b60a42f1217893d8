/**
 * The servers the parity suite talks to, and each adapter's form of lookups
 * and vector searches (recorded decisions and audits are in decision-forms.ts;
 * writes, the changelog and the rest in forms.ts), with what each answers turned into one
 * comparable shape.
 *
 * A primary (REST through inject, gRPC asof.v1 and Feast bound to a port)
 * and, when Redis answers, a read replica sharing the primary's Redis prefix.
 * Fixture: pk table `users` (id string, score float64, name string) with rows
 * a = {1.5, "ann"} and b = {null, "bob"}; view `u` (score, name) over it, and view `uk` (id, the
 * entity key column itself, and score) over it;
 * service `svc` = [u:name]; log table `events` (id string, at timestamp), empty, and view `ev`
 * over it: `n1h`, a count of the last hour. The guarded server also records one decision. With
 * Redis, another owner holds the names in HELD under the primary's prefix (another primary, as far
 * as the primary can tell).
 */
import { ERROR_CATALOGUE, GrpcStatus, type ErrorCode } from '../../src/errors.js';
import { asofError, call, clientsFor, grpc, grpcAsof, type GrpcAsof } from '../integration/grpc-helpers.js';
import { asofJson, feastJson } from '../integration/wire-values.js';
import { Redis } from 'ioredis';
import { deletePrefix, SHARED_REDIS_URL, sharedRedisOrSkip, uniquePrefix } from '../redis-helpers.js';

/**
 * primary, replica, the primary only when it shares a Redis (`shared`), or
 * the guarded server (scoped API keys, one write, one lookup and one vector
 * search at a time, no queue) as a client presenting `key` (none when
 * undefined), with its slots all taken when `busy`.
 */
export type Target = 'primary' | 'replica' | 'shared' | { key?: string; busy?: boolean };

/** A table and a view name leased to another owner in the primary's Redis prefix (FORMAT.md, "Ownership"). */
export const HELD = { table: 'theirs', view: 'theirview' };

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
/** A json column, for values only JSON text carries exactly (numbers beyond a float64's digits). */
export const DOCS = { kind: 'pk', primaryKey: ['id'], columns: [{ name: 'id', type: 'string', nullable: false }, { name: 'j', type: 'json' }] };
const VIEW_U = { source: 'users', entity: 'id', features: [{ name: 'score', column: 'score' }, { name: 'name', column: 'name' }] };

export async function openWorld(): Promise<World> {
  const redis = await sharedRedisOrSkip();
  const prefix = uniquePrefix('parity');
  const shared = redis ? { redisUrl: SHARED_REDIS_URL, redisPrefix: prefix } : {};
  const primary = await grpcAsof(shared);
  if (redis) await holdElsewhere(prefix);
  const must = (r: { status: number; body: unknown }) => {
    if (r.status >= 300) throw new Error(JSON.stringify(r.body));
  };
  must(await primary.req('PUT', '/tables/users', USERS));
  must(await primary.req('POST', '/tables/users/rows', { rows: [{ id: 'a', score: 1.5, name: 'ann' }, { id: 'b', name: 'bob' }] }));
  must(await primary.req('PUT', '/feature-views/u', VIEW_U));
  must(await primary.req('PUT', '/feature-views/uk', { source: 'users', entity: 'id', features: [{ name: 'id', column: 'id' }, { name: 'score', column: 'score' }] }));
  must(await primary.req('PUT', '/feature-services/svc', { features: ['u:name'] }));
  must(await primary.req('PUT', '/tables/items', ITEMS));
  must(await primary.req('PUT', '/tables/events', EVENTS));
  must(await primary.req('PUT', '/tables/docs', DOCS));
  must(await primary.req('PUT', '/feature-views/ev', { source: 'events', entity: 'id', features: [{ name: 'n1h', agg: { fn: 'count', window: '1h' } }] }));
  must(await primary.req('POST', '/tables/items/rows', { rows: [{ id: 'a', cat: 'x', emb: [1, 0, 0] }, { id: 'b', cat: 'y', emb: [0, 1, 0] }, { id: 'c', cat: 'x', emb: [0, 0, 2] }] }));
  // A view keyed by an int64: the items' string keys are no entities of it.
  must(await primary.req('PUT', '/tables/counters', { kind: 'pk', primaryKey: ['n'], columns: [{ name: 'n', type: 'int64', nullable: false }, { name: 'c', type: 'int64' }] }));
  must(await primary.req('PUT', '/feature-views/cn', { source: 'counters', entity: 'n', features: [{ name: 'c', column: 'c' }] }));
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
      if (t === 'shared') return { asof: redis ? primary : undefined };
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

/** Leases HELD's names to an owner that is not the primary, for the suite's run (the prefix is deleted at the end). */
async function holdElsewhere(prefix: string): Promise<void> {
  const r = new Redis(SHARED_REDIS_URL);
  try {
    for (const [kind, name] of Object.entries(HELD)) await r.set(`${prefix}owner:${kind}:${name}`, 'elsewhere/4242/parity', 'PX', 600_000);
  } finally {
    r.disconnect();
  }
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
export type Cell = [unknown, string];

/** A lookup request: entities of one key column, and what to look up. */
export interface Lookup {
  key: string;
  entities: string[];
  features?: string[];
  view?: string;
  service?: string;
  /** Feast's full_feature_names (the Feast forms only). */
  fullFeatureNames?: boolean;
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
    const r = await asof.req('POST', '/get-online-features', { ...(q.features ? { features: q.features } : { feature_service: q.service }), entities: { [q.key]: q.entities }, full_feature_names: q.fullFeatureNames });
    if (r.status !== 200) return restError(r.status, r.body);
    return { answer: transpose(r.body.results, (v) => v) };
  };
  forms['Feast gRPC GetOnlineFeatures'] = async (asof) => {
    const sel = q.features ? { features: { val: q.features } } : { feature_service: q.service };
    const { res, err } = await call(asof.feast, 'GetOnlineFeatures', { ...sel, entities: { [q.key]: { val: q.entities.map((e) => ({ string_val: e })) } }, full_feature_names: q.fullFeatureNames });
    if (err) return grpcError(err);
    return { answer: transpose(res.results, feastJson) };
  };
  return forms;
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
