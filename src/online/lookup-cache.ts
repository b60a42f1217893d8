/**
 * The lookup cache: recent evaluations kept by what they were evaluated
 * from, the encoded state (views materialized in the online store) or the
 * version of the source row (views served from their pk table). A write
 * changes the encoding (or the version), so nothing needs invalidating; an
 * evaluation answers for as long as the evaluator says it holds
 * (`stableUntil`: ttl expiry, a future version becoming visible; never
 * across a millisecond for windows).
 */
import type { EntityEval } from './evaluation.js';

/**
 * What an evaluation is cached by within its namespace: the encoded state
 * (stored views), or the version of the source row (direct views).
 */
export type CacheKey = string | number;

/** One admitted evaluation, in the cache's eviction order. */
interface CacheSlot {
  map: Map<CacheKey, EntityEval>;
  key: CacheKey;
  ev: EntityEval;
  bytes: number;
}

/**
 * Recent evaluations by (namespace, CacheKey), within a memory budget,
 * evicted by CLOCK (second chance): a hit only marks its evaluation used;
 * when the cache is over budget, the oldest admitted evaluations go unless
 * marked, and marked ones lose the mark and go to the back of the line.
 * A hit costs one map lookup and no moves, and a working set up to the whole
 * budget stays put. (Two generations, the scheme before, held a working set
 * of half the budget at best, and moved every other hit between maps.)
 *
 * An evaluation is admitted on the second miss of its state only (a
 * `Doorkeeper` remembers states seen once): traffic that touches every
 * entity once in turn, more entities than the budget holds, would otherwise
 * fill the cache with evaluations that are evicted before anyone asks again,
 * and pay for keeping them.
 */
export class LookupCache {
  private spaces = new Map<string, Map<CacheKey, EntityEval>>();
  /** Admitted evaluations, oldest first from `head`; slots whose evaluation was replaced are dropped when reached. */
  private queue: (CacheSlot | undefined)[] = [];
  private head = 0;
  private bytes = 0;
  /** Remembers about as many states per generation as the cache holds. */
  private readonly doorkeeper: Doorkeeper;
  /** Lookups answered from the cache, and evaluated afresh; for /metrics. */
  hits = 0;
  misses = 0;
  /** Whether fewer than 1 in 64 of about the last 65,536 lookups that consulted the cache hit; then `get` samples (`lcg` draws). */
  private sampling = false;
  private skipped = false;
  private lcg = 0;
  private consulted = 0;
  private windowHits = 0;

  /** `budgetBytes` 0 disables the cache. */
  constructor(private readonly budgetBytes: number) {
    this.doorkeeper = new Doorkeeper(Math.max(1000, Math.floor(budgetBytes / 4096)));
  }

  get(ns: string, key: CacheKey, at: number): EntityEval | undefined {
    // Cold traffic (almost no hits lately): one lookup in 8, drawn at random (a counter beats with the order of entities
    // in batches), consults the cache. A miss hashes the key twice (map, doorkeeper): 0.3 µs for a 180-character state.
    this.skipped = this.sampling && this.draw() !== 0;
    if (this.skipped) {
      this.doorkeeper.tick();
      this.misses++;
      return undefined;
    }
    if (++this.consulted >= (this.sampling ? 8192 : 65536)) {
      this.sampling = this.windowHits * 64 < this.consulted;
      this.consulted = this.windowHits = 0;
    }
    const hit = this.spaces.get(ns)?.get(key);
    if (hit !== undefined && at >= hit.from && at <= hit.until) {
      hit.used = true;
      this.hits++;
      this.windowHits++;
      return hit;
    }
    this.misses++;
    return undefined;
  }

  /** Three random bits, a linear congruential generator's top ones: 0 one draw in 8. */
  private draw(): number {
    this.lcg = (Math.imul(this.lcg, 0x2c1b3c6d) + 0x297a2d39) | 0;
    return this.lcg >>> 29;
  }

  /** Offers a fresh evaluation of a state that missed (right after its `get`); true when the cache keeps it. */
  offer(ns: string, key: CacheKey, ev: EntityEval): boolean {
    if (this.budgetBytes <= 0 || this.skipped) return false;
    // Versions of different views over one table are the same numbers; sharing a doorkeeper entry only admits one of them a miss early.
    if (this.doorkeeper.firstSight(key)) return false;
    let map = this.spaces.get(ns);
    if (!map) this.spaces.set(ns, (map = new Map()));
    map.set(key, ev);
    // An estimate: the key (an encoding, or a number), the decoded values and (the usual adapter use) their rendered text.
    const bytes = (typeof key === 'string' ? 2 * key.length : 16) + 200 + valuesBytes(ev.values);
    this.queue.push({ map, key, ev, bytes });
    this.bytes += bytes;
    if (this.bytes > this.budgetBytes) this.evict();
    return true;
  }

  clear(): void {
    this.spaces = new Map();
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
    this.doorkeeper.clear();
  }

  /** Evaluations held (for tests). */
  get size(): number {
    let n = 0;
    for (const m of this.spaces.values()) n += m.size;
    return n;
  }

  /** Brings the cache to 7/8 of its budget, so that eviction runs once per many admissions. */
  private evict(): void {
    const target = (this.budgetBytes * 7) / 8;
    const q = this.queue;
    while (this.bytes > target && this.head < q.length) {
      const slot = q[this.head]!;
      q[this.head++] = undefined;
      if (slot.map.get(slot.key) !== slot.ev) this.bytes -= slot.bytes;
      else if (slot.ev.used) {
        slot.ev.used = false;
        q.push(slot);
      } else {
        slot.map.delete(slot.key);
        this.bytes -= slot.bytes;
      }
    }
    if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head);
      this.head = 0;
    }
  }
}

/**
 * What an evaluation's values and their rendered text take, about: 160 bytes a
 * value, and for a string or a list its length twice over (the value, unless
 * shared with the table, and its text). Counting 160 a value whatever its size
 * let a cache of 1 MB keep 12 MB of 10,000-character values' text
 * (test/integration/lookup-cache-memory.test.ts).
 */
function valuesBytes(values: unknown[]): number {
  let n = 160 * values.length;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'string') n += 2 * v.length;
    else if (Array.isArray(v)) n += 32 * v.length;
    else if (v !== null && typeof v === 'object') n += 256;
  }
  return n;
}

/**
 * States seen once, remembered by a 32-bit hash in two generations of a fixed
 * open-addressing table: memory is fixed (4-byte slots, 2 to 4 per state a
 * generation remembers) whatever the keys' size, where a Set of the encoded
 * states themselves held them all (megabytes each for large window states),
 * and a generation ends by clearing its slots, not by allocating a Set. Two
 * keys with one hash only let the second in on its first miss: an early
 * admission, never a wrong answer (the cache itself is keyed by the key).
 */
export class Doorkeeper {
  /** Both generations in one table, interleaved (slot i of generation g at 2i + g): a miss probes one cache line for both. */
  private readonly table: Int32Array;
  private current = 0;
  private count = 0;
  private readonly mask: number;

  constructor(private readonly perGeneration: number) {
    const slots = 2 ** Math.ceil(Math.log2(perGeneration * 2));
    this.mask = slots - 1;
    this.table = new Int32Array(2 * slots);
  }

  /** True (and the key remembered) when neither generation holds the key's hash. */
  firstSight(key: CacheKey): boolean {
    const h = hashOf(key);
    const t = this.table;
    const cur = this.current;
    let i = h & this.mask;
    // At most half of each generation's slots are used: a probe ends at an empty slot soon.
    for (let j = i; t[2 * j + 1 - cur] !== 0; j = (j + 1) & this.mask) if (t[2 * j + 1 - cur] === h) return false;
    for (; t[2 * i + cur] !== 0; i = (i + 1) & this.mask) if (t[2 * i + cur] === h) return false;
    t[2 * i + cur] = h;
    this.tick();
    return true;
  }

  /** Counts a state toward the generation (a lookup that skipped the cache, too: memory spans as many lookups). */
  tick(): void {
    if (++this.count < this.perGeneration) return;
    // The older generation is forgotten and becomes the current one.
    this.current = 1 - this.current;
    for (let k = this.current; k < this.table.length; k += 2) this.table[k] = 0;
    this.count = 0;
  }

  clear(): void {
    this.table.fill(0);
    this.count = 0;
  }
}

/**
 * A nonzero 32-bit hash. A long string is hashed by its length and 64 of its
 * characters spread over it (the first and last 16 among them), so the cost
 * of a miss stays bounded; a state that differs from another only elsewhere
 * is just admitted early.
 */
function hashOf(key: CacheKey): number {
  let h: number;
  if (typeof key === 'number') {
    h = Math.imul((key / 4294967296) | 0, 0x9e3779b1) ^ (key | 0);
  } else {
    const n = key.length;
    h = n ^ 0x811c9dc5;
    if (n <= 64) for (let i = 0; i < n; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    else {
      for (let i = 0; i < 16; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
      const step = (n - 32) / 32;
      for (let k = 0; k < 32; k++) h = Math.imul(h ^ key.charCodeAt(16 + Math.floor(k * step)), 0x01000193);
      for (let i = n - 16; i < n; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    }
  }
  // murmur3's finalizer: every input bit reaches the low bits the table indexes by.
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 1 : h;
}
