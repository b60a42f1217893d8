/**
 * The services every adapter (REST, gRPC, CLI) calls. Built once by the
 * composition root (app.ts); nothing in here knows about HTTP or gRPC.
 */
import type { AuditService } from './audit/service.js';
import type { Engine } from './engine/engine.js';
import type { IngestService } from './ingest/ingest.js';
import type { Logger } from './logger.js';
import type { FeatureRegistry } from './features/registry.js';
import type { Materializer } from './online/materializer.js';
import type { OnlineService } from './online/service.js';
import type { OnlineStore } from './online/store.js';
import type { TrainingSets } from './offline/training-set.js';
import type { TrainingSetJobs } from './offline/jobs.js';
import type { VectorService } from './vectors/service.js';

export interface Services {
  engine: Engine;
  ingest: IngestService;
  registry: FeatureRegistry;
  onlineStore: OnlineStore;
  materializer: Materializer;
  online: OnlineService;
  /** Point-in-time training sets (offline/). */
  trainingSets: TrainingSets;
  /** Background training-set jobs and their files. */
  trainingSetJobs: TrainingSetJobs;
  /** Vector search over vector<D> columns (vectors/). */
  vectors: VectorService;
  /** Decisions, reconstruction, trails and hash-chain verification (audit/). */
  audit: AuditService;
  logger: Logger;
  /** Epoch ms; injected so tests control time. */
  now: () => number;
}
