/**
 * The composition root: builds the engine and services from the parsed
 * configuration and starts the REST (and gRPC) servers over them.
 */
import type { FastifyInstance } from 'fastify';
import { isLoopback, type Config } from './config.js';
import { Engine } from './engine/engine.js';
import { IngestService } from './ingest/ingest.js';
import type { Logger } from './logger.js';
import type { Services } from './services.js';
import { buildHttpServer } from './http/server.js';
import { VERSION } from './version.js';


export interface Asof {
  services: Services;
  http: FastifyInstance;
  /** The bound REST address, e.g. http://127.0.0.1:8080. */
  url: string;
  close(): Promise<void>;
}

export async function buildServices(config: Pick<Config, 'dataDir' | 'maxBatchRows'> & Partial<Pick<Config, 'snapshotEvery'>>, logger: Logger, now: () => number = Date.now): Promise<Services> {
  const engine = await Engine.open({ dataDir: config.dataDir, logger, now, snapshotEvery: config.snapshotEvery });
  const ingest = new IngestService(engine, { maxRows: config.maxBatchRows, idempotencyCapacity: 100_000, idempotencyTtlMs: 24 * 3600_000 }, now);
  return { engine, ingest, logger, now };
}

/** Starts asof: recovers the tables, then serves. `listen: false` builds without binding (tests use inject). */
export async function startAsof(config: Config, logger: Logger, opts: { now?: () => number; listen?: boolean } = {}): Promise<Asof> {
  if (config.apiKeys.length === 0 && !isLoopback(config.host)) {
    throw new Error(`refusing to serve without auth on ${config.host}: set ASOF_API_KEYS, or bind HOST to 127.0.0.1`);
  }
  const services = await buildServices(config, logger, opts.now);
  let ready = false;
  const http = await buildHttpServer(services, { logger, maxBodyBytes: config.maxBodyBytes, apiKeys: config.apiKeys, ready: () => ready, version: VERSION });
  let url = '';
  if (opts.listen !== false) url = await http.listen({ port: config.port, host: config.host });
  ready = true;
  let closed = false;
  return {
    services,
    http,
    url,
    async close() {
      if (closed) return;
      closed = true;
      ready = false;
      await http.close();
      await services.engine.close();
    },
  };
}
