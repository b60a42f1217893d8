/**
 * The gRPC adapter: asof.v1 (online features, ingest, changelog follow) and
 * Feast's feature.serving.ServingService over the same services as REST, with
 * server reflection so grpcurl and similar tools can discover them.
 */
import * as grpc from '@grpc/grpc-js';
import { AsofError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import type { Access, ApiKeys } from '../access.js';
import type { Admission } from '../admission.js';
import { requestIdInterceptor } from './request-id.js';
import { DECLARED_ACCESS, timed, type CallContext } from './calls.js';
import { auditService } from './audit.js';
import { changelogService, type FollowRegistry } from './changelog.js';
import { feastService } from './feast.js';
import { ingestService, ingestServiceDefinition } from './ingest.js';
import { onlineService, onlineServiceDefinition, type OnlineWire } from './online.js';
import { withGeneratedCodecs } from './codecs.js';
import { loadProtos } from './protos.js';
import { vectorService } from './vectors.js';
import { addReflection } from './reflection.js';
import { badMessageInterceptor, strictProtobufStrings, tolerantDeserializers } from './strict-decoding.js';

export interface GrpcOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The configured API keys; every method declares the access it needs (calls.ts). */
  keys: ApiKeys;
  /** Bounds on work in flight, shared with the REST server. */
  admission: Admission;
  /** Largest message a client may send, bytes. */
  maxMessageBytes: number;
  logger: Logger;
  version: string;
  /** GetOnlineFeatures' answer encoder (online.ts): the hand-written one unless bench:grpc asks for the generated one as its reference. */
  onlineWire?: OnlineWire;
}

export interface GrpcServer {
  /** The bound port. */
  port: number;
  /** Ends live follows, lets running calls finish (up to `graceMs`), then stops. */
  close(graceMs?: number): Promise<void>;
}

type ServiceDef = grpc.ServiceDefinition;

export async function startGrpcServer(services: Services, opts: GrpcOptions): Promise<GrpcServer> {
  const pkg = loadProtos();
  let closing = false;
  const ctx: CallContext = { logger: opts.logger, keys: opts.keys, admission: opts.admission, closing: () => closing };
  const follows: FollowRegistry = new Set();
  strictProtobufStrings();
  // Each method's declared access by path, filled by `add`: a request that does not decode is refused with it (strict-decoding.ts).
  const access = new Map<string, Access>();
  // A request that does not decode answers INVALID_ARGUMENT (strict-decoding.ts), not grpc-js's INTERNAL.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': opts.maxMessageBytes, interceptors: [requestIdInterceptor(), badMessageInterceptor(ctx, access)] });
  const add = (def: ServiceDef, impl: grpc.UntypedServiceImplementation): void => {
    // A method whose handler was not made by unary/clientStream/serverStream would skip auth: refuse to start.
    const wrapped: grpc.UntypedServiceImplementation = {};
    for (const [name, m] of Object.entries(def)) {
      const declared = (impl[name] as { [DECLARED_ACCESS]?: Access } | undefined)?.[DECLARED_ACCESS];
      if (declared === undefined) throw new Error(`gRPC method ${name} declares no access (make its handler with unary/clientStream/serverStream in grpc/calls.ts)`);
      access.set(m.path, declared);
      wrapped[name] = timed(m.path.slice(1), m, impl[name]);
    }
    server.addService(tolerantDeserializers(def), wrapped);
  };
  // Every message is encoded and decoded by the code generated from proto/ (codecs.ts).
  const service = (name: string): ServiceDef => withGeneratedCodecs(pkg[name] as ServiceDef);
  add(onlineServiceDefinition(service('asof.v1.OnlineService')), onlineService(ctx, services, opts.onlineWire));
  add(ingestServiceDefinition(service('asof.v1.IngestService')), ingestService(ctx, services));
  add(service('asof.v1.ChangelogService'), changelogService(ctx, services, follows));
  add(service('asof.v1.AuditService'), auditService(ctx, services));
  add(service('asof.v1.VectorService'), vectorService(ctx, services));
  add(service('feast.serving.ServingService'), feastService(ctx, services, opts.version));
  // Reflection is schema discovery, public like /openapi.json over REST.
  addReflection(server, pkg);

  const address = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(new Error(`gRPC cannot listen on ${address}: ${err.message}`)) : resolve(p)));
  });

  return {
    port,
    async close(graceMs = 5000) {
      if (closing) return;
      closing = true;
      const shuttingDown = new AsofError('ASOF_NOT_READY', 'the server is shutting down');
      for (const end of [...follows]) end(shuttingDown);
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
