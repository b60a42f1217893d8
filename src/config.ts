/**
 * Configuration, parsed once from the environment and CLI flags (flags win).
 * Factories take the pieces they need, never the whole object.
 */
import { z } from 'zod';
import { parseKeyList, type KeyEntry } from './access.js';
import type { GateLimits, WorkKind } from './admission.js';
import { parseDuration } from './features/definitions.js';

const port = z.coerce.number().int().min(0).max(65535);
/** `10s`, `0s`, `1h`, `250ms` → milliseconds; `off` → null; milliseconds pass through. */
const duration = z.union([z.number().min(0), z.null(), z.string()]).transform((s, ctx) => {
  if (typeof s !== 'string') return s;
  if (s === 'off') return null;
  const ms = parseDuration(s);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a duration such as 10s, 5m, 1h (or off)` });
    return z.NEVER;
  }
  return ms;
});

export const ConfigSchema = z.object({
  port: port.default(8080),
  grpcPort: port.default(50051),
  host: z.string().min(1).default('127.0.0.1'),
  dataDir: z.string().min(1).default('./.asof'),
  redisUrl: z.string().url().optional(),
  /** Starts every Redis key, so deployments (or tests) can share one Redis. */
  redisPrefix: z.string().min(1).default('asof:'),
  /** primary: owns tables and materializes views; replica: serves what primaries wrote to the shared Redis, read-only. */
  role: z.enum(['primary', 'replica']).default('primary'),
  /** The cold tier: a folder (default <data dir>/lance) or an object-store URI (s3://...). */
  lanceUri: z.string().min(1).optional(),
  /** LanceDB storage options, JSON object of strings (credentials, endpoint, region, ...). */
  lanceStorageOptions: z.union([z.record(z.string(), z.string()), z.string()]).optional().transform((s, ctx) => {
    if (s === undefined || s === '') return {};
    if (typeof s !== 'string') return s;
    try {
      const o = JSON.parse(s) as unknown;
      if (o && typeof o === 'object' && !Array.isArray(o) && Object.values(o).every((v) => typeof v === 'string')) return o as Record<string, string>;
    } catch {
      /* reported below */
    }
    ctx.addIssue({ code: 'custom', message: 'must be a JSON object of string values, e.g. {"aws_region":"us-east-1"}' });
    return z.NEVER;
  }),
  /** Records are tiered into Lance once committed this long ago: a duration (`10s`, `0s`, `5m`), or `off` to keep every record in the hot log. */
  tierAfter: duration.default(10_000),
  /** Tiered records stay in the hot log this long after their commit (then their sealed segments are deleted). */
  hotRetention: duration.default(3_600_000),
  /** How often vector search moves new rows from memory into Lance, ms (they are searchable at once either way). */
  vectorFlushMs: z.coerce.number().int().positive().default(1000),
  /** Rows a vector column needs before its ANN index is trained (below it, exact search is as fast). */
  vectorIndexMinRows: z.coerce.number().int().positive().default(20_000),
  /** `key:scope+scope,...` (access.ts); a key without scopes has all. Unset (and no key file) means no auth, allowed only on loopback. */
  apiKeys: z
    .string()
    .optional()
    .transform((s, ctx): KeyEntry[] => {
      try {
        return s ? parseKeyList(s) : [];
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
        return z.NEVER;
      }
    }),
  /** A file of `key scope...` lines, re-read on SIGHUP. */
  apiKeysFile: z.string().min(1).optional(),
  /** Serve /metrics without a key even when keys are set. */
  metricsOpen: z
    .enum(['true', 'false', '1', '0'])
    .or(z.boolean())
    .default(false)
    .transform((v) => v === true || v === 'true' || v === '1'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Largest request body, bytes (413 beyond). */
  maxBodyBytes: z.coerce.number().int().positive().default(64 * 1024 * 1024),
  /** Most rows in one ingest request (413 beyond). */
  maxBatchRows: z.coerce.number().int().positive().default(100_000),
  /**
   * Most cells (rows x the table's columns) in one ingest request (413 beyond).
   * A cell left out of a row costs nothing in the body but 8 bytes and more in
   * each form the write takes (ingest/ingest.ts): this bounds that work.
   */
  maxBatchCells: z.coerce.number().int().positive().default(2_000_000),
  /** Threads that parse and validate large JSON write bodies off the event loop (ingest/parse-pool.ts); 0: none. Unset: half the cores, up to 4 (app.ts). */
  ingestThreads: z.coerce.number().int().min(0).max(64).optional(),
  /** Training sets with at most this many entity rows are answered inline; larger ones become jobs (202). */
  trainingSetInlineRows: z.coerce.number().int().min(0).default(10_000),
  /** Entity rows a training set joins per pass over its sources. */
  trainingSetChunkRows: z.coerce.number().int().positive().default(1_000_000),
  /** Source records one training-set pass keeps in memory, MiB; beyond it the pass is split by entity. */
  offlineMemoryMb: z.coerce.number().int().positive().default(512),
  /** Largest uploaded file (entity rows, imports), bytes. */
  maxUploadBytes: z.coerce.number().int().positive().default(4 * 1024 ** 3),
  /** Snapshot a table once replaying its changelog since the last snapshot would cost about this many records. */
  snapshotEvery: z.coerce.number().int().positive().default(200_000),
  /** Changelog segment size, bytes: the last segment is sealed and a new one begun once it holds this much. */
  segmentBytes: z.coerce.number().int().positive().default(64 << 20),
  /** Memory for recent online evaluations and their rendered answers, MiB (entities not written since their last lookup are answered from it); 0 turns it off. */
  lookupCacheMb: z.coerce.number().int().min(0).default(64),
  /** Ed25519 private key (PKCS#8 PEM, or the 32-byte seed in base64 or hex): signs chain heads and decisions; unset: unsigned. */
  auditSigningKey: z.string().min(1).optional(),
  /** Bounded work (admission.ts): requests of each kind worked on at once, and waiting beyond them (429 past both). */
  maxInFlightWrites: z.coerce.number().int().positive().default(16),
  maxQueuedWrites: z.coerce.number().int().min(0).default(256),
  /** Sum of the declared body sizes of the writes worked on at once, bytes (one larger body is admitted alone). */
  maxInFlightWriteBytes: z.coerce.number().int().positive().default(64 * 1024 * 1024),
  maxInFlightLookups: z.coerce.number().int().positive().default(1024),
  maxQueuedLookups: z.coerce.number().int().min(0).default(4096),
  maxInFlightTrainingSets: z.coerce.number().int().positive().default(2),
  maxQueuedTrainingSets: z.coerce.number().int().min(0).default(16),
  maxInFlightSearches: z.coerce.number().int().positive().default(32),
  maxQueuedSearches: z.coerce.number().int().min(0).default(256),
  /** Longest a request waits for a slot, ms (then 429). */
  maxQueueWaitMs: z.coerce.number().int().positive().default(10_000),
  /** Longest pause in the body of a request that holds a slot (REST bytes, gRPC WriteRows messages), ms; beyond, 408 / DEADLINE_EXCEEDED and the slot is freed. */
  bodyIdleTimeoutMs: z.coerce.number().int().positive().default(30_000),
  /** Least rate of such a body, bytes a second, averaged over each window of bodyRateWindowMs (the first is the grace); 0: none. Beyond, 408 / DEADLINE_EXCEEDED. */
  bodyMinBytesPerS: z.coerce.number().int().min(0).default(128 * 1024),
  bodyRateWindowMs: z.coerce.number().int().positive().default(5_000),
  /** Longest a body read into memory by a request that holds a slot (JSON, NDJSON, Arrow) may take to arrive in all, ms; beyond, 408. Imports, streamed to disk, have none. */
  bodyMaxMs: z.coerce.number().int().positive().default(60_000),
  /** Changelog follows (SSE and gRPC Follow) open at once; beyond, 429 / RESOURCE_EXHAUSTED. */
  maxFollows: z.coerce.number().int().positive().default(256),
  /** Training-set jobs queued or running at once (429 beyond). */
  maxTrainingSetJobs: z.coerce.number().int().positive().default(8),
  /** How long finished training-set jobs and their files are kept, hours. */
  trainingSetRetentionHours: z.coerce.number().positive().default(24),
  /** On SIGTERM: how long in-flight requests may take to finish, ms, before connections are closed. */
  shutdownGraceMs: z.coerce.number().int().min(0).default(10_000),
});
export type Config = z.infer<typeof ConfigSchema>;

const ENV: Record<keyof Config, string> = {
  port: 'PORT',
  grpcPort: 'GRPC_PORT',
  host: 'HOST',
  dataDir: 'ASOF_DATA_DIR',
  redisUrl: 'REDIS_URL',
  redisPrefix: 'ASOF_REDIS_PREFIX',
  role: 'ASOF_ROLE',
  lanceUri: 'ASOF_LANCE_URI',
  vectorFlushMs: 'ASOF_VECTOR_FLUSH_MS',
  vectorIndexMinRows: 'ASOF_VECTOR_INDEX_MIN_ROWS',
  lanceStorageOptions: 'ASOF_LANCE_STORAGE_OPTIONS',
  tierAfter: 'ASOF_TIER_AFTER',
  hotRetention: 'ASOF_HOT_RETENTION',
  apiKeys: 'ASOF_API_KEYS',
  apiKeysFile: 'ASOF_API_KEYS_FILE',
  metricsOpen: 'ASOF_METRICS_OPEN',
  logLevel: 'LOG_LEVEL',
  maxBodyBytes: 'ASOF_MAX_BODY_BYTES',
  maxBatchRows: 'ASOF_MAX_BATCH_ROWS',
  maxBatchCells: 'ASOF_MAX_BATCH_CELLS',
  ingestThreads: 'ASOF_INGEST_THREADS',
  trainingSetInlineRows: 'ASOF_TRAINING_SET_INLINE_ROWS',
  trainingSetChunkRows: 'ASOF_TRAINING_SET_CHUNK_ROWS',
  offlineMemoryMb: 'ASOF_OFFLINE_MEMORY_MB',
  maxUploadBytes: 'ASOF_MAX_UPLOAD_BYTES',
  snapshotEvery: 'ASOF_SNAPSHOT_EVERY',
  segmentBytes: 'ASOF_SEGMENT_BYTES',
  lookupCacheMb: 'ASOF_LOOKUP_CACHE_MB',
  auditSigningKey: 'ASOF_AUDIT_SIGNING_KEY',
  maxInFlightWrites: 'ASOF_MAX_IN_FLIGHT_WRITES',
  maxQueuedWrites: 'ASOF_MAX_QUEUED_WRITES',
  maxInFlightWriteBytes: 'ASOF_MAX_IN_FLIGHT_WRITE_BYTES',
  maxInFlightLookups: 'ASOF_MAX_IN_FLIGHT_LOOKUPS',
  maxQueuedLookups: 'ASOF_MAX_QUEUED_LOOKUPS',
  maxInFlightTrainingSets: 'ASOF_MAX_IN_FLIGHT_TRAINING_SETS',
  maxQueuedTrainingSets: 'ASOF_MAX_QUEUED_TRAINING_SETS',
  maxInFlightSearches: 'ASOF_MAX_IN_FLIGHT_SEARCHES',
  maxQueuedSearches: 'ASOF_MAX_QUEUED_SEARCHES',
  maxQueueWaitMs: 'ASOF_MAX_QUEUE_WAIT_MS',
  bodyIdleTimeoutMs: 'ASOF_BODY_IDLE_TIMEOUT_MS',
  bodyMinBytesPerS: 'ASOF_BODY_MIN_BYTES_PER_S',
  bodyRateWindowMs: 'ASOF_BODY_RATE_WINDOW_MS',
  bodyMaxMs: 'ASOF_BODY_MAX_MS',
  maxFollows: 'ASOF_MAX_FOLLOWS',
  maxTrainingSetJobs: 'ASOF_MAX_TRAINING_SET_JOBS',
  trainingSetRetentionHours: 'ASOF_TRAINING_SET_RETENTION_HOURS',
  shutdownGraceMs: 'ASOF_SHUTDOWN_GRACE_MS',
};

/** Write bodies of at most this many bytes are not charged to ASOF_MAX_IN_FLIGHT_WRITE_BYTES (admission.ts `smallBytes`). */
export const SMALL_WRITE_BYTES = 64 * 1024;

/** The gates of admission.ts from the configuration. */
export function admissionLimits(c: Config): Record<WorkKind, GateLimits> {
  const wait = c.maxQueueWaitMs;
  return {
    writes: { inFlight: c.maxInFlightWrites, queue: c.maxQueuedWrites, maxWaitMs: wait, bytes: c.maxInFlightWriteBytes, smallBytes: SMALL_WRITE_BYTES },
    lookups: { inFlight: c.maxInFlightLookups, queue: c.maxQueuedLookups, maxWaitMs: wait },
    trainingSets: { inFlight: c.maxInFlightTrainingSets, queue: c.maxQueuedTrainingSets, maxWaitMs: wait },
    searches: { inFlight: c.maxInFlightSearches, queue: c.maxQueuedSearches, maxWaitMs: wait },
    // A follow lasts as long as its client wants: waiting for one to end would be waiting indefinitely, so none queue.
    follows: { inFlight: c.maxFollows, queue: 0, maxWaitMs: wait },
  };
}

/** `--grpc-port` ↔ `grpcPort`. */
const flagName = (key: string): string => '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

export function loadConfig(env: NodeJS.ProcessEnv, argv: string[] = []): Config {
  const raw: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(ENV)) if (env[name] !== undefined && env[name] !== '') raw[key] = env[name];
  for (let i = 0; i < argv.length; i++) {
    // Cut at the first '=' only: a value may hold more (a padded base64 key, a URL's query, JSON).
    const eq = argv[i].indexOf('=');
    const flag = eq < 0 ? argv[i] : argv[i].slice(0, eq);
    const key = Object.keys(ENV).find((k) => flagName(k) === flag);
    if (!key) throw new Error(`unknown option ${flag} (known: ${Object.keys(ENV).map(flagName).join(', ')})`);
    const value = eq < 0 ? argv[++i] : argv[i].slice(eq + 1);
    if (value === undefined) throw new Error(`option ${flag} needs a value`);
    raw[key] = value;
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${ENV[i.path[0] as keyof Config] ?? i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${msg}`);
  }
  return parsed.data;
}

export const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || host.startsWith('127.');
