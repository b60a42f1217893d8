/**
 * Picks the online store from configuration: embedded unless a Redis URL is
 * given. With Redis, the feature registry is mirrored there too (for replicas).
 */
import type { DefinitionMirror } from '../features/registry.js';
import type { Logger } from '../logger.js';
import { EmbeddedOnlineStore } from './embedded.js';
import type { OnlineStore } from './store.js';
import type { NameLeases } from './ownership.js';

/** A lookup waits at most this long for Redis before answering 503, ms. */
export const READ_TIMEOUT_MS = 500;
/** Materializer writes (a commit can be large) and definitions, ms. A hung Redis delays one acknowledgement by at most this; later ones go through at once while the view recovers. */
export const WRITE_TIMEOUT_MS = 3000;

export interface OnlineBackend {
  store: OnlineStore;
  /** Set when the store is shared between processes. */
  mirror?: DefinitionMirror;
  /** A primary's table and view names in the shared store (ownership.ts): to take at start-up; the store releases them when closed. */
  leases?: NameLeases;
}

/** `owner`: a primary, which holds its names in a shared store; replicas write nothing and hold none. */
export async function createOnlineStore(opts: { redisUrl?: string; redisPrefix?: string; logger: Logger; owner?: boolean }): Promise<OnlineBackend> {
  if (!opts.redisUrl) return { store: new EmbeddedOnlineStore() };
  // Loaded only for Redis: ioredis adds about 8 MB to the RSS of a process that never uses it.
  const [{ RedisOnlineStore, connectRedis }, { RedisDefinitionMirror }, { RedisLookupReader, leanReaderSupports }, { NameLeases }] = await Promise.all([import('./redis.js'), import('./redis-mirror.js'), import('./redis-reader.js'), import('./ownership.js')]);
  const prefix = opts.redisPrefix ?? 'asof:';
  const lookupLogger = opts.logger.child({ connection: 'lookups' });
  // Lookups go over a connection of their own: the lean client for plain redis:// URLs (a third of a lookup's CPU with ioredis), else ioredis.
  const lean = leanReaderSupports(opts.redisUrl) ? new RedisLookupReader(opts.redisUrl, READ_TIMEOUT_MS, lookupLogger) : undefined;
  // Waits briefly for the lookup connection, as connectRedis does for its own; lookups answer 503 until it is up.
  const [writer, reader] = await Promise.all([
    connectRedis(opts.redisUrl, opts.logger, WRITE_TIMEOUT_MS),
    lean ? lean.whenReady(2000).catch(() => lookupLogger.warn({}, 'redis not reachable at start-up for lookups; serving 503 for online reads until it is')).then(() => lean) : connectRedis(opts.redisUrl, lookupLogger, READ_TIMEOUT_MS),
  ]);
  const leases = opts.owner ? new NameLeases(writer, prefix, opts.logger) : undefined;
  return { store: new RedisOnlineStore(writer, prefix, reader, leases), mirror: new RedisDefinitionMirror(writer, prefix, leases), leases };
}
