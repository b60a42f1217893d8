/**
 * Real asof servers (REST and gRPC bound to free ports) and real grpc-js
 * clients built from proto/ with @grpc/proto-loader, for the gRPC and Feast tests.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ConfigSchema, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import { startAsof, type Asof } from '../../src/app.js';
import { tempDir } from '../helpers.js';
import { LOADER_OPTIONS, PROTO_FILES, protoDir } from '../../src/grpc/protos.js';

export type Client = grpc.Client & Record<string, any>;

export interface GrpcAsof extends Asof {
  address: string;
  online: Client;
  ingest: Client;
  changelog: Client;
  feast: Client;
  /** JSON request to the REST server (inject), as test/helpers.ts does. */
  req(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  destroy(): Promise<void>;
}

const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_FILES, { ...LOADER_OPTIONS, includeDirs: [protoDir()] })) as any;

export function clientsFor(address: string) {
  const creds = grpc.credentials.createInsecure();
  return {
    online: new pkg.asof.v1.OnlineService(address, creds) as Client,
    ingest: new pkg.asof.v1.IngestService(address, creds) as Client,
    changelog: new pkg.asof.v1.ChangelogService(address, creds) as Client,
    feast: new pkg.feast.serving.ServingService(address, creds) as Client,
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
    async req(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
      const res = await asof.http.inject({
        method: method as 'GET',
        url,
        payload: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
        headers: body === undefined || typeof body === 'string' ? headers : { 'content-type': 'application/json', ...headers },
      });
      let parsed: unknown = res.body;
      try {
        parsed = JSON.parse(res.body);
      } catch {
        /* not JSON */
      }
      return { status: res.statusCode, body: parsed as any, headers: res.headers as Record<string, unknown> };
    },
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
