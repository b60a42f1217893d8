/**
 * Which primary owns a table or view name under a shared Redis prefix
 * (FORMAT.md, "Ownership"): `<prefix>owner:<table|view>:<name>` holds the
 * owner (`host/pid/random`, one per process start) with a TTL the owner
 * renews. Primaries with different names share a prefix; a second primary
 * holding a name another live one holds is refused, at start-up and when it
 * defines the name. Every write of a namespace or of the definitions' mirror
 * runs LEASE_GUARD in its own script, so an owner that lost a name (paused past
 * its TTL, the name taken meanwhile) can never overwrite the new owner's state.
 * Lookups never look at leases. Replicas hold none.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { AsofError } from '../errors.js';
import type { Logger } from '../logger.js';

export interface Name {
  kind: 'table' | 'view';
  name: string;
}

/** A lease lapses this long after its last renewal, ms; renewed every RENEW_MS, so two renewals may fail in a row. */
export const LEASE_TTL_MS = 10_000;
const RENEW_MS = 2_500;

export const leaseKey = (prefix: string, n: Name): string => `${prefix}owner:${n.kind}:${n.name}`;

/**
 * Lua, first in every guarded script: KEYS[2] the lease, ARGV[1] the owner ('' checks nothing: stores not owned
 * through leases, such as the contract tests'). Unless the lease is the owner's, returns {2, holder or ''} and
 * writes nothing. A free name is taken back by renewal, never here: a script still in flight at shutdown cannot
 * take a name just released.
 */
export const LEASE_GUARD = `if ARGV[1] ~= '' then
  local o = redis.call('GET', KEYS[2])
  if o ~= ARGV[1] then return {2, o or ''} end
end`;

/** Takes or renews KEYS for ARGV[1] (TTL ARGV[2]) unless another owner holds them; with ARGV[3] 'all', none unless all. Returns index, holder, ... of those held. */
const CLAIM = `local held = {}
for i, k in ipairs(KEYS) do
  local o = redis.call('GET', k)
  if o and o ~= ARGV[1] then held[#held + 1] = i; held[#held + 1] = o end
end
if ARGV[3] == 'all' and #held > 0 then return held end
local j = 1
for i, k in ipairs(KEYS) do
  if held[j] == i then j = j + 2 else redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) end
end
return held`;
/** Deletes the KEYS ARGV[1] still holds (compare-and-delete). */
const RELEASE = `for _, k in ipairs(KEYS) do if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end end return 0`;

type WithScripts = Redis & { asofClaim(...args: (string | number)[]): Promise<(string | number)[]>; asofRelease(...args: (string | number)[]): Promise<number> };

const holderText = (owner: string): string => {
  const [host, pid] = owner.split('/');
  return pid ? `host ${host}, pid ${pid}` : owner;
};

/** What a view answers while another primary holds its name or its table's (holder ''; the lease lapsed: until renewal takes it back): 503. */
export const heldElsewhere = (n: Name, holder: string): AsofError =>
  new AsofError(
    'ASOF_BACKEND_UNAVAILABLE',
    holder ? `another asof primary (${holderText(holder)}) holds ${n.kind} "${n.name}" in the shared Redis: this primary stopped writing it there` : `this primary's lease on ${n.kind} "${n.name}" in the shared Redis lapsed; it takes it back unless another primary has`,
    { [n.kind]: n.name, heldBy: holder || null },
  );

export class NameLeases {
  readonly owner = `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  private readonly redis: WithScripts;
  /** Lease keys this process holds or wants back → the other owner holding it, undefined while it is this one's. */
  private readonly wanted = new Map<string, string | undefined>();
  private timer?: NodeJS.Timeout;
  private renewing?: Promise<void>;
  private listener?: (n: Name, holder: string | undefined) => void;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    this.redis = redis as WithScripts;
    if (!this.redis.asofClaim) {
      redis.defineCommand('asofClaim', { lua: CLAIM });
      redis.defineCommand('asofRelease', { lua: RELEASE });
    }
  }

  /** Called when another primary took a name (holder set) or it is this one's again (undefined). */
  onChange(listener: (n: Name, holder: string | undefined) => void): void {
    this.listener = listener;
  }

  /**
   * Takes the names a primary starts with, all or none, then renews them. A name held by another owner is
   * tried again until its lease could have lapsed (a holder that died); still held, start-up is refused
   * (ASOF_CONFLICT, naming it and its holder). A Redis that does not answer does not stop the start: renewal
   * takes the names once it is back, and writes are refused meanwhile by the guard.
   */
  async start(names: Name[]): Promise<void> {
    const keys = names.map((n) => leaseKey(this.prefix, n));
    for (let waited = 0; keys.length; waited += 500) {
      const held = await this.claimAll(keys).catch((e: Error) => this.logger.warn({ err: e.message }, "redis not reachable to take this primary's table and view names; taking them once it is"));
      if (!held) break;
      if (waited > LEASE_TTL_MS + RENEW_MS) throw this.conflict(held);
      if (!waited) this.logger.warn({ [held.n.kind]: held.n.name, heldBy: held.holder }, `${held.n.kind} "${held.n.name}" is held in the shared Redis by ${holderText(held.holder)}; waiting up to ${(LEASE_TTL_MS + RENEW_MS) / 1000} s for its lease to lapse (it does if that process is gone)`);
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const k of keys) this.wanted.set(k, undefined);
    this.timer = setInterval(() => void this.renew().catch(() => undefined), RENEW_MS).unref();
  }

  /** Takes names at run time (a table or view being defined), all or none: ASOF_CONFLICT naming the holder when another primary holds one. */
  async claim(names: Name[]): Promise<void> {
    const keys = names.map((n) => leaseKey(this.prefix, n)).filter((k) => !this.wanted.has(k) || this.wanted.get(k) !== undefined);
    if (!keys.length) return;
    const held = await this.claimAll(keys).catch((e: Error) => {
      throw new AsofError('ASOF_BACKEND_UNAVAILABLE', `the online store (redis) is unavailable: ${e.message}`, { store: 'redis' });
    });
    if (held) throw this.conflict(held);
    for (const k of keys) this.wanted.set(k, undefined);
  }

  /** Asks Redis now (renewing) and throws `heldElsewhere` for a name another primary holds: a failed view checks this before it serves again. */
  async verify(names: Name[]): Promise<void> {
    await this.renew();
    for (const n of names) {
      const holder = this.wanted.get(leaseKey(this.prefix, n));
      if (holder) throw heldElsewhere(n, holder);
    }
  }

  /** The first name another primary took from this one, as its views answer it; undefined while it holds them all. */
  problem(): AsofError | undefined {
    for (const [k, holder] of this.wanted) if (holder) return heldElsewhere(this.nameOf(k), holder);
    return undefined;
  }

  /** Clean shutdown, once nothing writes any more: deletes the leases still this process's, so another primary may take the names at once. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing?.catch(() => undefined);
    const keys = [...this.wanted.keys()];
    this.wanted.clear();
    if (keys.length) await this.redis.asofRelease(keys.length, ...keys, this.owner).catch((e: Error) => this.logger.warn({ err: e.message }, 'could not release table and view names in redis; they lapse by themselves'));
  }

  /** One renewal at a time; callers meanwhile share it. */
  private renew(): Promise<void> {
    return (this.renewing ??= this.renewOnce().finally(() => (this.renewing = undefined)));
  }

  private async renewOnce(): Promise<void> {
    const keys = [...this.wanted.keys()];
    if (!keys.length) return;
    const reply = await this.redis.asofClaim(keys.length, ...keys, this.owner, LEASE_TTL_MS, 'each');
    const others = new Map<string, string>();
    for (let i = 0; i < reply.length; i += 2) others.set(keys[Number(reply[i]) - 1], String(reply[i + 1]));
    for (const k of keys) {
      const holder = others.get(k);
      if (!this.wanted.has(k) || this.wanted.get(k) === holder) continue;
      this.wanted.set(k, holder);
      const n = this.nameOf(k);
      if (holder) this.logger.error({ [n.kind]: n.name, heldBy: holder }, `another asof primary (${holderText(holder)}) took ${n.kind} "${n.name}" in the shared Redis: this primary stopped writing it there, and its lookups answer 503 until the name is free again`);
      else this.logger.warn({ [n.kind]: n.name }, `${n.kind} "${n.name}" is free again in the shared Redis: this primary holds it again and catches it up`);
      this.listener?.(n, holder);
    }
  }

  /** The first key another owner holds and its holder; undefined once this process holds them all. */
  private async claimAll(keys: string[]): Promise<{ n: Name; holder: string } | undefined> {
    const reply = await this.redis.asofClaim(keys.length, ...keys, this.owner, LEASE_TTL_MS, 'all');
    return reply.length ? { n: this.nameOf(keys[Number(reply[0]) - 1]), holder: String(reply[1]) } : undefined;
  }

  private conflict({ n, holder }: { n: Name; holder: string }): AsofError {
    return new AsofError(
      'ASOF_CONFLICT',
      `${n.kind} "${n.name}" is held in the shared Redis (prefix "${this.prefix}") by another asof primary (${holderText(holder)}): primaries may share a prefix only with different tables and views; give this one an ASOF_REDIS_PREFIX of its own, or stop the other`,
      { [n.kind]: n.name, heldBy: holder },
    );
  }

  private nameOf(key: string): Name {
    const rest = key.slice(this.prefix.length + 'owner:'.length);
    const i = rest.indexOf(':');
    return { kind: rest.slice(0, i) as Name['kind'], name: rest.slice(i + 1) };
  }
}
