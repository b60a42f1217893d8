/**
 * The Redis online store (ioredis): one hash per namespace holding every
 * entity's state as JSON, plus the namespace's watermark and lineage in the
 * same hash, so one HMGET reads values and watermark together and one Lua
 * script writes them together. The key layout is a spec other programs read:
 * FORMAT.md.
 *
 * Failure behaviour: no offline queue and no retries per command, so while
 * Redis is unreachable every call fails at once (reads answer 503, the
 * materializer retries from its watermark) instead of piling up; a command
 * timeout bounds calls to a Redis that accepts connections but does not answer.
 * The client reconnects by itself.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { EntityState } from '../features/evaluator.js';
import type { Logger } from '../logger.js';
import { WatermarkConflict, type EncodedRead, type NamespaceMeta, type OnlineStore } from './store.js';
import { parseState } from './state-json.js';
import { heldElsewhere, LEASE_GUARD, leaseKey, type NameLeases } from './ownership.js';
import type { Values } from './redis-reader.js';

/** Hash fields of a namespace (FORMAT.md). Entity fields are `e:<key>`, so no key can collide with these. */
export const F_WATERMARK = '_w';
export const F_LINEAGE = '_l';
/** Set while the namespace is being (re)built from the changelog: its states are a past state, not to be served. */
export const F_BUILDING = '_b';
export const ENTITY_FIELD_PREFIX = 'e:';

/**
 * Compare-and-set write, refused (writing nothing) unless this primary holds the view's name (ownership.ts).
 * KEYS[1] the namespace hash, KEYS[2] the view's lease. ARGV: owner, expected watermark, new watermark,
 * number of fields to set (n), n field/value pairs, then the fields to delete. Fields go in chunks: Lua's
 * unpack has a stack limit.
 */
const WRITE_SCRIPT = `
${LEASE_GUARD}
local w = redis.call('HGET', KEYS[1], '${F_WATERMARK}')
if w ~= ARGV[2] then return {0, w or 'none'} end
local last = 4 + 2 * tonumber(ARGV[4])
local i = 5
while i <= last do
  local j = math.min(i + 999, last)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
while i <= #ARGV do
  local j = math.min(i + 999, #ARGV)
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
redis.call('HSET', KEYS[1], '${F_WATERMARK}', ARGV[3])
return {1, ARGV[3]}
`;

/** `reset` (ARGV[3] the lineage), `built` and `clear` (ARGV[2]) of a namespace, guarded as writes are. */
const ALTER_SCRIPT = `
${LEASE_GUARD}
if ARGV[2] == 'built' then redis.call('HDEL', KEYS[1], '${F_BUILDING}') else redis.call('DEL', KEYS[1]) end
if ARGV[2] == 'reset' then redis.call('HSET', KEYS[1], '${F_WATERMARK}', '-1', '${F_LINEAGE}', ARGV[3], '${F_BUILDING}', '1') end
return {1, ''}
`;

/**
 * Long argument lists go to ioredis as one array, which it flattens (documented), never spread: a spread of about
 * 130,000 arguments overflows the stack, and a commit of 100,000 entities (the default ASOF_MAX_BATCH_ROWS) writes
 * twice that many. Its types list spread fields only.
 */
type Guarded = (key: string, lease: string, args: string[]) => Promise<[number, string]>;
type WithScript = Redis & { asofWrite: Guarded; asofAlter: Guarded };
const hmgetBuffer = (r: Redis, key: string, fields: string[]): Promise<(Buffer | null)[]> => (r.hmgetBuffer as unknown as (key: string, fields: string[]) => Promise<(Buffer | null)[]>).call(r, key, fields);

/**
 * Scripts off the write path (ownership.ts's leases, the definitions' mirror) go out as they are: ioredis runs one
 * auto-pipeline at a time per connection, so one of them waiting on a hung Redis would hold the writes' next
 * pipeline back for its whole timeout (the mirror's MULTI, before it was a script, was never auto-pipelined).
 */
const OFF_WRITE_PATH = ['asofClaim', 'asofRelease', 'asofPublish'];

/**
 * Connects, tolerating a Redis that is down at start-up: the client keeps
 * reconnecting in the background (quickly at first, then every second,
 * forever) and calls fail (503) until it is back; see the header.
 * `commandTimeoutMs`: lookups wait little (a hung Redis answers 503 within it);
 * the materializer's writes, which may carry a large commit, wait longer.
 */
export async function connectRedis(url: string, logger: Logger, commandTimeoutMs: number): Promise<Redis> {
  const options: RedisOptions = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, connectTimeout: 2000, commandTimeout: commandTimeoutMs, enableAutoPipelining: true, autoPipeliningIgnoredCommands: OFF_WRITE_PATH };
  const redis = new Redis(url, { ...options, retryStrategy: (times) => Math.min(times * 100, 1000) });
  let down = false;
  redis.on('error', (e: Error) => {
    if (!down) logger.warn({ err: e.message }, 'redis unreachable; retrying in the background');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info({}, 'redis reachable again');
    down = false;
  });
  try {
    await redis.connect();
  } catch (e) {
    logger.warn({ err: (e as Error).message }, 'redis not reachable at start-up; serving 503 for online reads until it is');
  }
  return redis;
}

/** What lookups read with: an ioredis connection, or the lean client of redis-reader.ts (which also gives the reply's bytes). Values come as latin1 text of their bytes (state-json.ts). */
interface LookupReader {
  hmget(key: string, fields: string[]): Promise<Read>;
  close(): void;
  /** False while the reader cannot send lookups (the lean client reconnecting, or its AUTH or SELECT refused). */
  healthy?(): boolean;
}

type Read = Partial<Values> & Pick<Values, 'values'>;

const latin1 = (values: (Buffer | null)[]): Read => ({ values: values.map((v) => v && v.toString('latin1')) });

const isIoredis = (r: Redis | LookupReader): r is Redis => typeof (r as Redis).disconnect === 'function';

export class RedisOnlineStore implements OnlineStore {
  readonly kind = 'redis';
  private readonly redis: WithScript;
  private readonly reader: LookupReader;

  /**
   * `prefix` starts every key (default `asof:`), so several deployments or
   * tests can share one Redis. `reader`, when given, serves lookups on its own
   * connection (short timeout, never queued behind a large write). `leases`: a
   * primary's, whose names every write checks in its own script (ownership.ts);
   * closing the store releases them.
   */
  constructor(
    redis: Redis,
    private readonly prefix: string,
    reader?: Redis | LookupReader,
    private readonly leases?: NameLeases,
  ) {
    this.redis = redis as WithScript;
    const r = reader ?? redis;
    // ioredis (or a look-alike such as ioredis-mock), or a LookupReader.
    this.reader = isIoredis(r) ? { hmget: async (key, fields) => latin1(await hmgetBuffer(r, key, fields)), close: () => (r === redis ? undefined : r.disconnect()) } : r;
    if (!this.redis.asofWrite) {
      redis.defineCommand('asofWrite', { numberOfKeys: 2, lua: WRITE_SCRIPT });
      redis.defineCommand('asofAlter', { numberOfKeys: 2, lua: ALTER_SCRIPT });
    }
  }

  /**
   * Both connections can be used: ioredis's state is 'ready' (connected, selected, authenticated), and the lookup
   * reader's too. They can disagree: ioredis goes on after Redis refuses an AUTH it was not asked for, or a SELECT,
   * where the lean reader does not, so lookups would answer 503 while /readyz said ready.
   */
  healthy(): boolean {
    return (this.redis as Redis).status === 'ready' && this.reader.healthy?.() !== false;
  }

  /** The hash of a namespace. */
  key(ns: string): string {
    return `${this.prefix}ns:${ns}`;
  }

  readEncoded(ns: string, keys: string[], forWrite = false): Promise<EncodedRead> {
    const fields = new Array<string>(keys.length + 2);
    fields[0] = F_WATERMARK;
    fields[1] = F_BUILDING;
    for (let i = 0; i < keys.length; i++) fields[i + 2] = ENTITY_FIELD_PREFIX + keys[i];
    // Lookups of any size on the reader; the materializer's reads (one per commit) on the writer, in line with its own writes only.
    const read = forWrite ? hmgetBuffer(this.redis, this.key(ns), fields).then(latin1) : this.reader.hmget(this.key(ns), fields);
    return read.then((r) => this.encodedRead(r, keys.length));
  }

  private encodedRead({ values: got, bytes, starts }: Read, n: number): EncodedRead {
    const encoded = new Array<string | undefined>(n);
    for (let i = 0; i < n; i++) encoded[i] = got[i + 2] ?? undefined;
    // A namespace being rebuilt reads as none (a replica answers 503 until it is whole: its states are an older state's).
    const watermark = got[0] === null || got[1] !== null ? null : Number(got[0]);
    // States are parsed off the reply's bytes where the reader gives them, else off their latin1 text's.
    return { encoded, watermark, decode: (e) => parseState(encoded[e]!, bytes, starts?.[e + 2]) };
  }

  async meta(ns: string): Promise<NamespaceMeta | undefined> {
    const [w, l, b] = await this.redis.hmget(this.key(ns), F_WATERMARK, F_LINEAGE, F_BUILDING);
    return w === null ? undefined : { watermark: Number(w), lineage: l ?? '', ...(b === null ? {} : { building: true }) };
  }

  reset(ns: string, lineage: string): Promise<void> {
    return this.alter(ns, 'reset', lineage);
  }

  built(ns: string): Promise<void> {
    return this.alter(ns, 'built');
  }

  async write(ns: string, entries: [string, EntityState | undefined][], from: number, to: number): Promise<void> {
    const sets: string[] = [];
    const dels: string[] = [];
    for (const [k, v] of entries) {
      if (v === undefined) dels.push(ENTITY_FIELD_PREFIX + k);
      else sets.push(ENTITY_FIELD_PREFIX + k, JSON.stringify(v));
    }
    const args: string[] = [this.leases?.owner ?? '', String(from), String(to), String(sets.length / 2)];
    for (const x of sets) args.push(x);
    for (const x of dels) args.push(x);
    const [ok, found] = await this.guarded('asofWrite', ns, args);
    if (ok !== 1) throw new WatermarkConflict(ns, from, found === 'none' ? null : Number(found));
  }

  clear(ns: string): Promise<void> {
    return this.alter(ns, 'clear');
  }

  private async alter(ns: string, op: 'reset' | 'built' | 'clear', lineage = ''): Promise<void> {
    await this.guarded('asofAlter', ns, [this.leases?.owner ?? '', op, lineage]);
  }

  /** Runs a script on a namespace with the lease of its view (`view@version`); another owner's lease rejects with `heldElsewhere`. */
  private async guarded(script: 'asofWrite' | 'asofAlter', ns: string, args: string[]): Promise<[number, string]> {
    const view = { kind: 'view' as const, name: ns.slice(0, ns.lastIndexOf('@')) };
    const reply = await this.redis[script](this.key(ns), leaseKey(this.prefix, view), args);
    if (reply[0] === 2) throw heldElsewhere(view, reply[1]);
    return reply;
  }

  async close(): Promise<void> {
    await this.leases?.close();
    this.redis.disconnect();
    this.reader.close();
  }
}
