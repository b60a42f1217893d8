/**
 * The composition root: builds the engine and services from the parsed
 * configuration and starts the REST (and gRPC) servers over them.
 */
import type { FastifyInstance } from 'fastify';
import { admissionLimits, isLoopback, type Config } from './config.js';
import { Admission } from './admission.js';
import { ApiKeys, UNRESTRICTED } from './access.js';
import { join } from 'node:path';
import { Engine } from './engine/engine.js';
import { isReservedName } from './engine/schema.js';
import type { NameLeases } from './online/ownership.js';
import { openColdThread } from './engine/cold-thread.js';
import { IngestService } from './ingest/ingest.js';
import { ParsePool } from './ingest/parse-pool.js';
import { availableParallelism } from 'node:os';
import type { Logger } from './logger.js';
import type { Services } from './services.js';
import { buildHttpServer } from './http/server.js';
import { VERSION } from './version.js';
import { FeatureRegistry } from './features/registry.js';
import { Materializer } from './online/materializer.js';
import { OnlineService } from './online/service.js';
import { createOnlineStore } from './online/factory.js';
import { feastRoutes } from './http/feast.js';
import { startGrpcServer, type GrpcServer } from './grpc/server.js';
import { featureRoutes } from './http/features.js';
import { TrainingSets } from './offline/training-set.js';
import { TrainingSetJobs } from './offline/jobs.js';
import { trainingSetRoutes } from './http/training-sets.js';
import { importRoutes } from './http/import.js';
import { VectorService, vectorLocations } from './vectors/service.js';
import { vectorRoutes } from './http/vectors.js';
import { AuditService } from './audit/service.js';
import { auditRoutes } from './http/audit.js';


export interface Asof {
  services: Services;
  http: FastifyInstance;
  /** The bound REST address, e.g. http://127.0.0.1:8080. */
  url: string;
  /** The API keys REST and gRPC check; `keys.reload()` re-reads ASOF_API_KEYS_FILE (SIGHUP). */
  keys: ApiKeys;
  /** The bounds on work in flight REST and gRPC share (admission.ts). */
  admission: Admission;
  /** The bound gRPC port (GRPC_PORT, or the one picked for 0); undefined when not listening. */
  grpcPort?: number;
  close(): Promise<void>;
}

/**
 * The services over a data folder (taking its lock: see engine/lock.ts).
 * `materialize: false` leaves online state unmaterialized (the CLI's
 * data-folder commands: nothing serves lookups while they hold the folder,
 * and a server catches its views up from the changelog when it starts).
 */
export async function buildServices(
  config: Pick<Config, 'dataDir' | 'maxBatchRows' | 'maxBatchCells' | 'redisUrl' | 'trainingSetChunkRows' | 'offlineMemoryMb'> &
    Partial<Pick<Config, 'ingestThreads' | 'redisPrefix' | 'role' | 'snapshotEvery' | 'segmentBytes' | 'lookupCacheMb' | 'lanceUri' | 'lanceStorageOptions' | 'tierAfter' | 'hotRetention' | 'vectorFlushMs' | 'vectorIndexMinRows' | 'auditSigningKey' | 'maxTrainingSetJobs' | 'trainingSetRetentionHours' | 'maxBodyBytes'>>,
  logger: Logger,
  now: () => number = Date.now,
  opts: { materialize?: boolean } = {},
): Promise<Services> {
  const engine = await Engine.open({ dataDir: config.dataDir, logger, now, snapshotEvery: config.snapshotEvery, role: config.role, segmentBytes: config.segmentBytes, tiering: tieringOptions(config, logger) });
  const threads = config.ingestThreads ?? defaultIngestThreads();
  const ingest = new IngestService(engine, { maxRows: config.maxBatchRows, maxCells: config.maxBatchCells, parsePool: threads > 0 ? new ParsePool(threads, logger) : undefined });
  const { store: onlineStore, mirror, leases } = await createOnlineStore({ redisUrl: config.redisUrl, redisPrefix: config.redisPrefix, logger, owner: engine.role === 'primary' });
  const registry = await FeatureRegistry.open(config.dataDir, engine, now, { mirror, logger });
  if (leases) {
    try {
      await holdNames(leases, engine, registry);
    } catch (e) {
      await ingest.close();
      await onlineStore.close();
      await engine.close();
      throw e;
    }
  }
  // With the in-process store, views over pk tables read the table's own state (materializer.ts): no second copy of each row.
  const materializer = new Materializer(engine, registry, onlineStore, logger, now, leases);
  // A replica materializes nothing: it serves what the primaries write to the shared store.
  if (registry.role === 'primary' && opts.materialize !== false) await materializer.start();
  if (opts.materialize !== false) registry.startMirrorSync(1000);
  const online = new OnlineService(registry, onlineStore, materializer, now, (config.lookupCacheMb ?? 64) * 1024 * 1024);
  const trainingSets = new TrainingSets(engine, registry, { chunkRows: config.trainingSetChunkRows, memoryBytes: config.offlineMemoryMb * 1024 * 1024, maxLineBytes: config.maxBodyBytes });
  const trainingSetJobs = await TrainingSetJobs.open(config.dataDir, logger, now, (table, caller) => engine.mayRead(table, caller), {
    maxPending: config.maxTrainingSetJobs ?? 8,
    retentionMs: (config.trainingSetRetentionHours ?? 24) * 3600_000,
  });
  const vectors = await VectorService.open(
    engine,
    online,
    { ...vectorLocations(config.dataDir, config.lanceUri), storageOptions: config.lanceStorageOptions, flushMs: config.vectorFlushMs ?? 1000, indexMinRows: config.vectorIndexMinRows ?? 20_000, keepVersionsMs: 7 * 24 * 3600_000, now },
    logger,
  );
  const audit = await AuditService.open(engine, registry, now, config.auditSigningKey);
  return { engine, ingest, registry, onlineStore, materializer, online, trainingSets, trainingSetJobs, vectors, audit, logger, now };
}

/**
 * A primary on a shared Redis holds its names there (online/ownership.ts): its tables (asof's internal ones
 * only when a view reads them) and views, taken before anything is written; start-up is refused when another
 * live primary holds one. Tables created later take their name first.
 */
async function holdNames(leases: NameLeases, engine: Engine, registry: FeatureRegistry): Promise<void> {
  const views = registry.listViews();
  const tables = new Set([...engine.list(UNRESTRICTED).map((t) => t.name).filter((t) => !isReservedName(t)), ...views.map((v) => v.source)]);
  await leases.start([...[...tables].map((name) => ({ kind: 'table' as const, name })), ...views.map((v) => ({ kind: 'view' as const, name: v.name }))]);
  engine.claimName = (name) => leases.claim([{ kind: 'table', name }]);
}

/**
 * Ingest threads when ASOF_INGEST_THREADS is not set: one core in two, up to 4, and none on a
 * single core (the event loop would share it with them).
 */
export const defaultIngestThreads = (): number => Math.min(4, Math.floor(availableParallelism() / 2));

/** The cold tier (Lance) and its timing; undefined when ASOF_TIER_AFTER is off. A replica tiers nothing: the primary owns the tables. */
function tieringOptions(config: Pick<Config, 'dataDir'> & Partial<Pick<Config, 'role' | 'lanceUri' | 'lanceStorageOptions' | 'tierAfter' | 'hotRetention'>>, logger: Logger) {
  const tierAfterMs = config.tierAfter === undefined ? 10_000 : config.tierAfter;
  if (tierAfterMs === null || config.role === 'replica') return undefined;
  const uri = config.lanceUri ?? join(config.dataDir, 'lance');
  const cold = openColdThread(uri, config.lanceStorageOptions ?? {}, logger);
  return { cold, tierAfterMs, hotRetentionMs: config.hotRetention === undefined ? 3_600_000 : (config.hotRetention ?? Infinity) };
}

/** Stops the services in dependency order: no more materializing, then the store, then the tables. */
export async function closeServices(s: Services): Promise<void> {
  await s.ingest.close();
  await s.trainingSetJobs.close();
  await s.vectors.close();
  s.registry.close();
  await s.materializer.close();
  await s.onlineStore.close();
  await s.engine.close();
}

/** Runs `fn` over the services on a data folder without serving them (the CLI's `--data-dir` mode), then closes them. */
export async function withServices<T>(config: Parameters<typeof buildServices>[0], logger: Logger, fn: (s: Services) => Promise<T>): Promise<T> {
  const services = await buildServices(config, logger, Date.now, { materialize: false });
  try {
    return await fn(services);
  } finally {
    await closeServices(services);
  }
}

/** Starts asof: recovers the tables, then serves. `listen: false` builds without binding (tests use inject). */
export async function startAsof(config: Config, logger: Logger, opts: { now?: () => number; listen?: boolean } = {}): Promise<Asof> {
  const keys = new ApiKeys({ keys: config.apiKeys, file: config.apiKeysFile });
  if (!keys.enabled && !isLoopback(config.host)) {
    throw new Error(`refusing to serve without auth on ${config.host}: set ASOF_API_KEYS (or ASOF_API_KEYS_FILE), or bind HOST to 127.0.0.1`);
  }
  const services = await buildServices(config, logger, opts.now);
  let ready = false;
  const admission = new Admission(admissionLimits(config), { idleMs: config.bodyIdleTimeoutMs, minBytesPerS: config.bodyMinBytesPerS, windowMs: config.bodyRateWindowMs, maxMs: config.bodyMaxMs });
  const http = await buildHttpServer(services, { logger, admission, maxBodyBytes: config.maxBodyBytes, keys, metricsOpen: config.metricsOpen, ready: () => ready, version: VERSION }, [
    featureRoutes,
    feastRoutes,
    vectorRoutes,
    trainingSetRoutes({ inlineRows: config.trainingSetInlineRows, maxUploadBytes: config.maxUploadBytes }),
    importRoutes({ maxUploadBytes: config.maxUploadBytes, maxBatchRows: config.maxBatchRows, maxLineBytes: config.maxBodyBytes }),
    auditRoutes,
  ]);
  let url = '';
  let grpc: GrpcServer | undefined;
  if (opts.listen !== false) {
    url = await http.listen({ port: config.port, host: config.host });
    try {
      grpc = await startGrpcServer(services, { host: config.host, port: config.grpcPort, keys, admission, maxMessageBytes: config.maxBodyBytes, logger, version: VERSION });
    } catch (e) {
      await http.close();
      await closeServices(services);
      throw e;
    }
  }
  ready = true;
  let closed = false;
  return {
    services,
    http,
    url,
    keys,
    admission,
    grpcPort: grpc?.port,
    /**
     * Graceful stop: refuse new requests (503) and queued ones, let the ones
     * in flight finish for up to ASOF_SHUTDOWN_GRACE_MS, then close what is
     * left; then the services (tables flush and fsync, the online store and
     * its Redis connections close).
     */
    async close() {
      if (closed) return;
      closed = true;
      ready = false;
      admission.drain();
      const grace = config.shutdownGraceMs;
      const force = setTimeout(() => http.server.closeAllConnections(), grace);
      force.unref();
      await Promise.all([http.close(), grpc?.close(grace)]);
      clearTimeout(force);
      await closeServices(services);
    },
  };
}
