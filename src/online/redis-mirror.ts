/**
 * The feature registry mirrored in Redis, for read replicas (FORMAT.md):
 * `<prefix>registry` is a hash of `view:<name>`, `service:<name>` and
 * `table:<name>` to JSON definitions; `<prefix>registry:rev` counts changes,
 * from a base taken from the clock when it is created: after a flush the
 * count starts above every value it had, so a replica never takes a new
 * revision for one it has loaded. Each primary writes only its own
 * definitions, so primaries owning different tables can share one Redis.
 */
import type { Redis } from 'ioredis';
import type { FeatureServiceDef, FeatureViewDef } from '../features/definitions.js';
import type { DefinitionMirror, MirroredDefinitions } from '../features/registry.js';
import type { TableDef } from '../engine/schema.js';

export class RedisDefinitionMirror implements DefinitionMirror {
  private readonly hashKey: string;
  private readonly revKey: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.hashKey = `${prefix}registry`;
    this.revKey = `${prefix}registry:rev`;
  }

  async publish(defs: MirroredDefinitions): Promise<void> {
    const fields: string[] = [];
    for (const v of defs.views) fields.push(`view:${v.name}`, JSON.stringify(v));
    for (const s of defs.services) fields.push(`service:${s.name}`, JSON.stringify(s));
    for (const t of defs.tables) fields.push(`table:${t.name}`, JSON.stringify(t));
    if (!fields.length) return;
    await this.redis
      .multi()
      .hset(this.hashKey, ...fields)
      .set(this.revKey, String(Date.now() * 1000), 'NX')
      .incr(this.revKey)
      .exec();
  }

  async revision(): Promise<number | null> {
    const rev = await this.redis.get(this.revKey);
    return rev === null ? null : Number(rev);
  }


  async load(): Promise<MirroredDefinitions & { revision: number }> {
    const res = await this.redis.multi().get(this.revKey).hgetall(this.hashKey).exec();
    if (!res) throw new Error('redis transaction aborted');
    for (const [err] of res) if (err) throw err;
    const revision = Number(res[0][1] ?? 0);
    const all = (res[1][1] ?? {}) as Record<string, string>;
    const out: MirroredDefinitions & { revision: number } = { views: [], services: [], tables: [], revision };
    for (const [field, json] of Object.entries(all)) {
      const i = field.indexOf(':');
      const kind = field.slice(0, i);
      if (kind === 'view') out.views.push(JSON.parse(json) as FeatureViewDef);
      else if (kind === 'service') out.services.push(JSON.parse(json) as FeatureServiceDef);
      else if (kind === 'table') out.tables.push(JSON.parse(json) as TableDef);
    }
    return out;
  }
}
