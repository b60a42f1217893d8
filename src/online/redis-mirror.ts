/**
 * The feature registry mirrored in Redis, for read replicas (FORMAT.md):
 * `<prefix>registry` is a hash of `view:<name>`, `service:<name>` and
 * `table:<name>` to JSON definitions; `<prefix>registry:rev` counts changes,
 * from a base taken from the clock when it is created: after a flush the
 * count starts above every value it had, so a replica never takes a new
 * revision for one it has loaded. Each primary writes only its own
 * definitions, so primaries owning different tables can share one Redis; a
 * primary's views and tables are written only while it holds their names
 * (ownership.ts), checked in the same script.
 */
import type { Redis } from 'ioredis';
import type { FeatureServiceDef, FeatureViewDef } from '../features/definitions.js';
import type { DefinitionMirror, MirroredDefinitions } from '../features/registry.js';
import type { TableDef } from '../engine/schema.js';
import { leaseKey, type NameLeases } from './ownership.js';

/**
 * KEYS[1] the hash, KEYS[2] the revision. ARGV: owner ('' checks nothing), the revision's base, then field, value
 * and the field's lease key ('' for none) for each field. A field whose lease is not the owner's is not written
 * (as LEASE_GUARD); returns those fields.
 */
const PUBLISH = `local refused, n = {}, 0
for i = 3, #ARGV, 3 do
  local k = ARGV[i + 2]
  if ARGV[1] == '' or k == '' or redis.call('GET', k) == ARGV[1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]); n = n + 1
  else refused[#refused + 1] = ARGV[i] end
end
if n > 0 then redis.call('SET', KEYS[2], ARGV[2], 'NX'); redis.call('INCR', KEYS[2]) end
return refused`;

export class RedisDefinitionMirror implements DefinitionMirror {
  private readonly hashKey: string;
  private readonly revKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly leases?: NameLeases,
  ) {
    this.hashKey = `${prefix}registry`;
    this.revKey = `${prefix}registry:rev`;
    if (!(redis as { asofPublish?: unknown }).asofPublish) redis.defineCommand('asofPublish', { numberOfKeys: 2, lua: PUBLISH });
  }

  /** Rejects, naming them, when fields were not written because another primary holds their names (the others are). */
  async publish(defs: MirroredDefinitions): Promise<void> {
    const args: (string | number)[] = [this.leases?.owner ?? '', Date.now() * 1000];
    const add = (field: string, def: object, kind?: 'table' | 'view') => args.push(field, JSON.stringify(def), kind ? leaseKey(this.prefix, { kind, name: field.slice(kind.length + 1) }) : '');
    for (const v of defs.views) add(`view:${v.name}`, v, 'view');
    for (const s of defs.services) add(`service:${s.name}`, s);
    for (const t of defs.tables) add(`table:${t.name}`, t, 'table');
    if (args.length === 2) return;
    const refused = await (this.redis as unknown as { asofPublish(hash: string, rev: string, args: (string | number)[]): Promise<string[]> }).asofPublish(this.hashKey, this.revKey, args);
    if (refused.length) throw new Error(`not mirrored while this primary does not hold their names: ${refused.join(', ')}`);
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
