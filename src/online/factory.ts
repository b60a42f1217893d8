/**
 * Picks the online store from configuration: embedded unless a Redis URL is
 * given. With Redis, the feature registry is mirrored there too (for replicas).
 */
import type { DefinitionMirror } from '../features/registry.js';
import type { Logger } from '../logger.js';
import { EmbeddedOnlineStore } from './embedded.js';
import { RedisDefinitionMirror } from './redis-mirror.js';
import { RedisOnlineStore, connectRedis } from './redis.js';
import type { OnlineStore } from './store.js';

export interface OnlineBackend {
  store: OnlineStore;
  /** Set when the store is shared between processes. */
  mirror?: DefinitionMirror;
}

export async function createOnlineStore(opts: { redisUrl?: string; redisPrefix?: string; logger: Logger }): Promise<OnlineBackend> {
  if (!opts.redisUrl) return { store: new EmbeddedOnlineStore() };
  const prefix = opts.redisPrefix ?? 'asof:';
  const redis = await connectRedis(opts.redisUrl, opts.logger);
  return { store: new RedisOnlineStore(redis, prefix), mirror: new RedisDefinitionMirror(redis, prefix) };
}
