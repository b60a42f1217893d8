/**
 * Real asof servers (REST and gRPC bound to free ports) and real grpc-js
 * clients built from proto/ with @grpc/proto-loader, for the gRPC and Feast tests.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ConfigSchema, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import { startAsof, type Asof } from '../../src/app.js';
import { injectJson, tempDir, type InjectResult } from '../helpers.js';
import { LOADER_OPTIONS, PROTO_FILES, protoDir } from '../../src/grpc/protos.js';

export type Client = grpc.Client & Record<string, any>;

export interface GrpcAsof extends Asof {
  address: string;
  online: Client;
  ingest: Client;
  changelog: Client;
  feast: Client;
  audit: Client;
  vectors: Client;
  /** JSON request to the REST server (`injectJson`). */
  req(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<InjectResult>;
  destroy(): Promise<void>;
}

const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [protoDir()] })) as any;

export function clientsFor(address: string, options: grpc.ClientOptions = {}) {
  const creds = grpc.credentials.createInsecure();
  return {
    online: new pkg.asof.v1.OnlineService(address, creds, options) as Client,
    ingest: new pkg.asof.v1.IngestService(address, creds, options) as Client,
    changelog: new pkg.asof.v1.ChangelogService(address, creds, options) as Client,
    feast: new pkg.feast.serving.ServingService(address, creds, options) as Client,
    audit: new pkg.asof.v1.AuditService(address, creds, options) as Client,
    vectors: new pkg.asof.v1.VectorService(address, creds, options) as Client,
  };
}

export async function grpcAsof(overrides: Partial<Config> = {}, opts: { now?: () => number } = {}): Promise<GrpcAsof> {
  const dir = await tempDir('asof-grpc-');
  const config = ConfigSchema.parse({ dataDir: dir.path, port: 0, grpcPort: 0, host: '127.0.0.1', ...overrides });
  const asof = await startAsof(config, silentLogger, { now: opts.now });
  const address = `127.0.0.1:${asof.grpcPort}`;
  const clients = clientsFor(address);
  return Object.assign(asof, clients, {
    address,
    req: (method: string, url: string, body?: unknown, headers?: Record<string, string>) => injectJson(asof.http, method, url, body, headers),
    async destroy() {
      for (const c of Object.values(clients)) c.close();
      await asof.close();
      await dir.cleanup();
    },
  });
}

export interface CallResult {
  res?: any;
  err?: grpc.ServiceError;
  /** Initial metadata the server sent. */
  headers?: grpc.Metadata;
}

/** A unary call as a promise that resolves with the answer or the error (never rejects). */
export function call(client: Client, method: string, request: unknown, metadata = new grpc.Metadata()): Promise<CallResult> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    const c = client[method](request, metadata, (err: grpc.ServiceError | null, res: unknown) => resolve(err ? { err, headers } : { res, headers }));
    c.on('metadata', (md: grpc.Metadata) => (headers = md));
  });
}

/** A client-streaming call: sends the messages in order, then ends. */
export function stream(client: Client, method: string, messages: unknown[], metadata = new grpc.Metadata()): Promise<CallResult> {
  return new Promise((resolve) => {
    const c = client[method](metadata, (err: grpc.ServiceError | null, res: unknown) => resolve(err ? { err } : { res }));
    for (const m of messages) c.write(m);
    c.end();
  });
}

/** The error's asof body (trailing metadata `asof-error`), parsed. */
export function asofError(err: grpc.ServiceError): { code: string; message: string; details?: any } {
  const raw = err.metadata.get('asof-error')[0];
  return JSON.parse(String(raw)).error;
}

export function bearer(key: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${key}`);
  return md;
}

export { grpc };

/**
 * A pk table with a column of every type, a view over all of them (`typed`),
 * a log table with a 1h-ttl view (`recent`), and a feature service.
 * Row "a" has a value everywhere, row "n" only its key (nulls).
 */
export const TYPED_TABLE = {
  kind: 'pk',
  primaryKey: ['id'],
  columns: [
    { name: 'id', type: 'string', nullable: false },
    { name: 'b', type: 'bool' },
    { name: 'i32', type: 'int32' },
    { name: 'i64', type: 'int64' },
    { name: 'f32', type: 'float32' },
    { name: 'f64', type: 'float64' },
    { name: 's', type: 'string' },
    { name: 'ts', type: 'timestamp' },
    { name: 'j', type: 'json' },
    { name: 'lb', type: 'list<bool>' },
    { name: 'li32', type: 'list<int32>' },
    { name: 'li64', type: 'list<int64>' },
    { name: 'lf32', type: 'list<float32>' },
    { name: 'lf64', type: 'list<float64>' },
    { name: 'ls', type: 'list<string>' },
    { name: 'lts', type: 'list<timestamp>' },
    { name: 'lst', type: 'list<struct<a:int32>>' },
    { name: 'lj', type: 'list<json>' },
    { name: 'st', type: 'struct<name:string,n:int64>' },
    { name: 'v', type: 'vector<3>' },
  ],
};

export const ROW_A = {
  id: 'a',
  b: true,
  i32: -7,
  i64: '9007199254740993',
  f32: 0.5,
  f64: 2.25,
  s: 'x',
  ts: '2024-05-01T10:00:00.250Z',
  j: { k: [1, 'v'] },
  lb: [true, false],
  li32: [1, -2],
  li64: [3, -4],
  lf32: [0.25, null],
  lf64: [1.5, -0.5],
  ls: ['p', 'q'],
  lts: ['1970-01-01T00:00:01Z', 2000],
  lst: [{ a: 1 }, { a: 2 }],
  lj: [{ x: 1 }, 'y'],
  st: { name: 'n', n: 5 },
  v: [0.5, 1, -1.5],
};

/**
 * Values at the edges of what the wire formats carry: int64 at its limits and
 * beyond 2^53 (alone, in lists, in structs), float32 that is not a float64,
 * times before the epoch and with milliseconds, strings long and non-ASCII,
 * null items. Vector values are exact in float32 (asof.v1 sends float32).
 */
export const ROW_EDGES = {
  id: 'edges',
  b: false,
  i32: -2147483648,
  i64: '-9223372036854775808',
  f32: 0.1,
  f64: -1.7976931348623157e308,
  s: 'ü✓𝄞 '.repeat(60),
  ts: '1969-12-31T23:59:59.999Z',
  j: [1, { x: null }, 'é'],
  lb: [],
  li32: [2147483647, null],
  li64: ['9223372036854775807', -1, '9007199254740993'],
  lf32: [0.1, -3.5],
  lf64: [5e-324],
  ls: ['', 'x'.repeat(300)],
  lts: ['1900-01-01T00:00:00.001Z', 0],
  lst: [{ a: null }, null],
  lj: [null, [1]],
  st: { name: null, n: '9007199254740993' },
  v: [0.25, -2, 1024],
};

export const TYPED_FEATURES = TYPED_TABLE.columns.slice(1).map((c) => c.name);

export async function defineFixture(asof: GrpcAsof): Promise<void> {
  const ok = (r: { status: number; body: unknown }) => {
    if (r.status >= 300) throw new Error(JSON.stringify(r.body));
  };
  ok(await asof.req('PUT', '/tables/typed', TYPED_TABLE));
  ok(await asof.req('POST', '/tables/typed/rows', { rows: [ROW_A, { id: 'n' }] }));
  await asof.services.registry.defineView('typed', { source: 'typed', entity: 'id', features: TYPED_FEATURES.map((name) => ({ name, column: name })) });
  ok(
    await asof.req('PUT', '/tables/events', {
      kind: 'log',
      eventTime: 'at',
      columns: [
        { name: 'user', type: 'int64', nullable: false },
        { name: 'at', type: 'timestamp', nullable: false },
        { name: 'amount', type: 'float64' },
      ],
    }),
  );
  const now = Date.now();
  ok(await asof.req('POST', '/tables/events/rows', { rows: [{ user: 1, at: now - 60_000, amount: 3 }, { user: 2, at: now - 2 * 86_400_000, amount: 4 }] }));
  await asof.services.registry.defineView('recent', { source: 'events', entity: 'user', ttl: '1h', features: [{ name: 'amount', column: 'amount' }, { name: 'n', agg: { fn: 'count', window: '1d' } }] });
  await asof.services.registry.defineService('scoring', { features: ['recent:n', 'typed:s', 'recent:amount'] });
}

/**
 * Views whose features are named like entity key columns (the Feast adapters' name collisions): drv_v over pk table drv
 * (key driver_id) with features city, driver_id (the key itself) and user_id; usr_v over pk table usr (key user_id) with name.
 * Rows: driver 1001 = {sf, u2}, user u1 = {ann}.
 */
export async function defineKeyNamedFeatures(asof: GrpcAsof): Promise<void> {
  const ok = (r: { status: number; body: unknown }) => {
    if (r.status >= 300) throw new Error(JSON.stringify(r.body));
  };
  ok(await asof.req('PUT', '/tables/drv', { kind: 'pk', primaryKey: ['driver_id'], columns: [{ name: 'driver_id', type: 'int64', nullable: false }, { name: 'city', type: 'string' }, { name: 'user_id', type: 'string' }] }));
  ok(await asof.req('POST', '/tables/drv/rows', { rows: [{ driver_id: 1001, city: 'sf', user_id: 'u2' }] }));
  await asof.services.registry.defineView('drv_v', { source: 'drv', entity: 'driver_id', features: ['city', 'driver_id', 'user_id'].map((name) => ({ name, column: name })) });
  ok(await asof.req('PUT', '/tables/usr', { kind: 'pk', primaryKey: ['user_id'], columns: [{ name: 'user_id', type: 'string', nullable: false }, { name: 'name', type: 'string' }] }));
  ok(await asof.req('POST', '/tables/usr/rows', { rows: [{ user_id: 'u1', name: 'ann' }] }));
  await asof.services.registry.defineView('usr_v', { source: 'usr', entity: 'user_id', features: [{ name: 'name', column: 'name' }] });
}

/** A decoded oneof value → [set field, its value] (drops proto-loader's virtual oneof name). */
export function setField(v: Record<string, unknown>, oneof: 'kind' | 'val'): [string, unknown] {
  const name = v[oneof] as string;
  return [name, v[name]];
}
