/**
 * Picks the online store from configuration: embedded unless a Redis URL is given.
 */
import { EmbeddedOnlineStore } from './embedded.js';
import type { OnlineStore } from './store.js';

export async function createOnlineStore(opts: { redisUrl?: string }): Promise<OnlineStore> {
  if (opts.redisUrl) throw new Error('the Redis online store is not built yet');
  return new EmbeddedOnlineStore();
}
